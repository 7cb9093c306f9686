package raft

import (
	"fmt"
	"math"
)

// Messages from the network are checked before they change anything.
// Peers are meant to be authenticated (mutual TLS) before their messages
// reach a core, but a check that costs a few comparisons keeps one forged
// or corrupted message from panicking the node, which would stop every
// range it serves: before, a heartbeat whose commit index was past the
// follower's log panicked in commitTo, a MsgSnap without a snapshot
// dereferenced nil, and a configuration entry that did not decode
// panicked once applied (FuzzStep). A refused message changes nothing,
// and Step says why (ErrInvalidMessage).
//
// The checks are the shape a correct peer's messages always have, and the
// few facts of this node's state they must agree with; they cannot tell a
// forged message of a correct shape from a real one (that is what
// authenticating peers is for).

// checkMessage returns why m is not a message a correct peer sends to this
// node now, or nil.
func (r *raft) checkMessage(m Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s from %d: %s", ErrInvalidMessage, m.Type, m.From, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Type < MsgApp || m.Type > MsgTimeoutNow:
		return bad("unknown message type %d", uint8(m.Type))
	case m.From == None || m.From == r.id:
		return bad("sender %d", m.From)
	case m.To != r.id:
		return bad("sent to %d, not to %d", m.To, r.id)
	case m.Term == 0:
		return bad("no Term")
	case m.Type != MsgApp && len(m.Entries) > 0:
		return bad("%d entries outside a MsgApp", len(m.Entries))
	case (m.Type == MsgSnap) != (m.Snapshot != nil):
		return bad("a snapshot is carried by MsgSnap, and only by it")
	}
	switch m.Type {
	case MsgApp:
		return checkEntries(m, bad)
	case MsgSnap:
		md := m.Snapshot.Metadata
		switch {
		case md.Index == 0 || md.Term == 0 || md.Term > m.Term:
			return bad("snapshot at index %d of Term %d in Term %d", md.Index, md.Term, m.Term)
		}
		if _, err := newConfig(md.ConfState); err != nil {
			return bad("snapshot configuration: %v", err)
		}
	case MsgHeartbeat:
		// The leader sends min(our Match, its commit): entries we hold.
		if last := r.log.lastIndex(); m.Commit > last {
			return bad("commit index %d past this node's last index %d", m.Commit, last)
		}
	case MsgAppResp:
		// An acknowledgement of this leader's Term is of entries it sent.
		if last := r.log.lastIndex(); r.state == StateLeader && m.Term == r.Term && !m.Reject && m.Index > last {
			return bad("acknowledges index %d past the leader's last index %d", m.Index, last)
		}
	}
	return nil
}

// checkEntries checks a MsgApp's entries: consecutive from m.Index+1,
// Terms not decreasing from m.LogTerm and at most m.Term, of known types,
// configuration entries that decode to a valid configuration.
func checkEntries(m Message, bad func(string, ...any) error) error {
	if m.LogTerm > m.Term {
		return bad("previous entry's Term %d past the message's Term %d", m.LogTerm, m.Term)
	}
	if m.Index > math.MaxUint64-uint64(len(m.Entries)) {
		return bad("index %d leaves no room for %d entries", m.Index, len(m.Entries))
	}
	prev := m.LogTerm
	for i, e := range m.Entries {
		switch {
		case e.Index != m.Index+1+uint64(i):
			return bad("entry %d at index %d, want %d", i, e.Index, m.Index+1+uint64(i))
		case e.Term < prev || e.Term > m.Term:
			return bad("entry %d of Term %d after Term %d, in Term %d", e.Index, e.Term, prev, m.Term)
		case e.Type != EntryNormal && e.Type != EntryConfChange:
			return bad("entry %d of unknown type %d", e.Index, uint8(e.Type))
		case e.Type == EntryConfChange:
			cs, err := decodeConfState(e.Data)
			if err == nil {
				_, err = newConfig(cs)
			}
			if err != nil {
				return bad("configuration entry %d: %v", e.Index, err)
			}
		}
		prev = e.Term
	}
	return nil
}
