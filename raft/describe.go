package raft

import (
	"fmt"
	"strings"
)

// DescribeEntry formats e on one line: "term/index type data".
func DescribeEntry(e Entry) string {
	switch e.Type {
	case EntryConfChange:
		cs, err := decodeConfState(e.Data)
		if err != nil {
			return fmt.Sprintf("%d/%d EntryConfChange <%v>", e.Term, e.Index, err)
		}
		c, err := newConfig(cs)
		if err != nil {
			return fmt.Sprintf("%d/%d EntryConfChange <%v>", e.Term, e.Index, err)
		}
		return fmt.Sprintf("%d/%d EntryConfChange %s", e.Term, e.Index, c)
	}
	return fmt.Sprintf("%d/%d EntryNormal %q", e.Term, e.Index, e.Data)
}

// DescribeMessage formats m on one line, for logs and test output.
func DescribeMessage(m Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s Term:%d", m.From, m.To, m.Type, m.Term)
	if m.Reject {
		fmt.Fprintf(&b, " Rejected (Hint: %d)", m.RejectHint)
	}
	switch m.Type {
	case MsgApp, MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
	case MsgHeartbeatResp:
		fmt.Fprintf(&b, " LastIndex:%d", m.Index)
	case MsgAppResp:
		if m.Reject {
			fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
		} else {
			fmt.Fprintf(&b, " Log:0/%d", m.Index)
		}
	}
	if m.Commit != 0 {
		fmt.Fprintf(&b, " Commit:%d", m.Commit)
	}
	if m.ReadSeq != 0 {
		fmt.Fprintf(&b, " ReadSeq:%d", m.ReadSeq)
	}
	if m.Transfer {
		b.WriteString(" Transfer")
	}
	if len(m.Entries) > 0 {
		b.WriteString(" Entries:[")
		for i, e := range m.Entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(DescribeEntry(e))
		}
		b.WriteString("]")
	}
	if m.Snapshot != nil {
		md := m.Snapshot.Metadata
		c, _ := newConfig(md.ConfState)
		fmt.Fprintf(&b, " Snapshot: Index:%d Term:%d Config:%s", md.Index, md.Term, c)
	}
	return b.String()
}

// DescribeReady formats rd over several lines, for test output.
func DescribeReady(rd Ready) string {
	var b strings.Builder
	if rd.SoftState != nil {
		fmt.Fprintf(&b, "Lead:%d State:%s\n", rd.Lead, rd.State)
	}
	if !rd.HardState.IsEmpty() {
		fmt.Fprintf(&b, "HardState Term:%d Vote:%d Commit:%d\n", rd.HardState.Term, rd.HardState.Vote, rd.HardState.Commit)
	}
	if !rd.Snapshot.IsEmpty() {
		c, _ := newConfig(rd.Snapshot.Metadata.ConfState)
		fmt.Fprintf(&b, "Snapshot Index:%d Term:%d Config:%s\n", rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Term, c)
	}
	if len(rd.Entries) > 0 {
		b.WriteString("Entries:\n")
		for _, e := range rd.Entries {
			fmt.Fprintf(&b, "%s\n", DescribeEntry(e))
		}
	}
	if len(rd.CommittedEntries) > 0 {
		b.WriteString("CommittedEntries:\n")
		for _, e := range rd.CommittedEntries {
			fmt.Fprintf(&b, "%s\n", DescribeEntry(e))
		}
	}
	if len(rd.ReadStates) > 0 {
		b.WriteString("ReadStates:\n")
		for _, rs := range rd.ReadStates {
			fmt.Fprintf(&b, "Index:%d RequestCtx:%q\n", rs.Index, rs.RequestCtx)
		}
	}
	if len(rd.Messages) > 0 {
		b.WriteString("Messages:\n")
		for _, m := range rd.Messages {
			fmt.Fprintf(&b, "%s\n", DescribeMessage(m))
		}
	}
	return b.String()
}
