package raft

import (
	"fmt"
	"slices"
	"strings"
)

// ProgressState is how the leader replicates to one follower.
type ProgressState uint8

const (
	// StateProbe: the leader does not know where the follower's log ends;
	// it sends one MsgApp at a time and waits for the answer.
	StateProbe ProgressState = iota
	// StateReplicate: the follower accepted the last MsgApp; the leader
	// streams entries optimistically, up to the in-flight limits.
	StateReplicate
	// StateSnapshot: the follower needs entries the leader compacted; the
	// leader sent a snapshot and sends nothing else until it is applied.
	StateSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case StateProbe:
		return "StateProbe"
	case StateReplicate:
		return "StateReplicate"
	case StateSnapshot:
		return "StateSnapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// Progress is the leader's view of one follower (or of itself).
type Progress struct {
	// Match is the highest index known to be persisted on the follower.
	Match uint64
	// Next is the index of the next entry to send.
	Next  uint64
	State ProgressState
	// PendingSnapshot is the index of the snapshot in flight (StateSnapshot).
	PendingSnapshot uint64
	// RecentActive: the follower was heard from since the last check-quorum.
	RecentActive bool
	// MsgAppProbesPaused: in StateProbe, a MsgApp is outstanding.
	MsgAppProbesPaused bool
	// ReadSeq is the highest heartbeat round the follower acknowledged in
	// the current Term.
	ReadSeq   uint64
	IsLearner bool
	// sentCommit is the highest commit index sent to the follower: an
	// empty MsgApp that would tell it nothing new is not sent.
	sentCommit uint64
	// matchAtCheck is Match at the last stall check (see checkStalled).
	matchAtCheck uint64

	inflights *inflights
}

func (pr *Progress) resetState(state ProgressState) {
	pr.MsgAppProbesPaused = false
	pr.PendingSnapshot = 0
	pr.State = state
	pr.inflights.reset()
}

// becomeProbe starts probing from Match+1 (or after the snapshot sent).
func (pr *Progress) becomeProbe() {
	if pr.State == StateSnapshot {
		pending := pr.PendingSnapshot
		pr.resetState(StateProbe)
		pr.Next = max(pr.Match+1, pending+1)
		return
	}
	pr.resetState(StateProbe)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeReplicate() {
	pr.resetState(StateReplicate)
	pr.Next = pr.Match + 1
}

func (pr *Progress) becomeSnapshot(snapIndex uint64) {
	pr.resetState(StateSnapshot)
	pr.PendingSnapshot = snapIndex
}

// maybeUpdate records an acknowledgement of index n and reports whether
// it was news (Match grew).
func (pr *Progress) maybeUpdate(n uint64) bool {
	updated := false
	if pr.Match < n {
		pr.Match = n
		updated = true
		pr.MsgAppProbesPaused = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// sentEntries records a MsgApp whose entries end at last, of bytes bytes.
func (pr *Progress) sentEntries(entries int, last, bytes uint64) {
	switch pr.State {
	case StateReplicate:
		if entries > 0 {
			pr.Next = last + 1
			pr.inflights.add(last, bytes)
		}
	case StateProbe:
		pr.MsgAppProbesPaused = true
	default:
		panic(fmt.Sprintf("raft: sending entries to a follower in %s", pr.State))
	}
}

// maybeDecrTo handles a rejection of the MsgApp at rejected, with the
// follower's hint matchHint: the highest index the follower might share.
// It reports false for a stale rejection.
func (pr *Progress) maybeDecrTo(rejected, matchHint uint64) bool {
	if pr.State == StateReplicate {
		// Only a rejection of something above Match is news; older ones
		// are out-of-order answers to messages already superseded.
		if rejected <= pr.Match {
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	// In probe the only MsgApp in flight was for Next-1.
	if pr.Next-1 != rejected {
		return false
	}
	pr.Next = max(min(rejected, matchHint+1), pr.Match+1)
	pr.MsgAppProbesPaused = false
	return true
}

// isPaused reports whether the leader must not send this follower more
// entries now.
func (pr *Progress) isPaused() bool {
	switch pr.State {
	case StateProbe:
		return pr.MsgAppProbesPaused
	case StateReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

func (pr *Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s match=%d next=%d", pr.State, pr.Match, pr.Next)
	if pr.IsLearner {
		b.WriteString(" learner")
	}
	if pr.inflights != nil && pr.isPaused() {
		b.WriteString(" paused")
	}
	if pr.PendingSnapshot > 0 {
		fmt.Fprintf(&b, " pendingSnap=%d", pr.PendingSnapshot)
	}
	if !pr.RecentActive {
		b.WriteString(" inactive")
	}
	if pr.inflights != nil && pr.inflights.count > 0 {
		fmt.Fprintf(&b, " inflight=%s", pr.inflights)
	}
	return b.String()
}

// progressMap is the leader's Progress per member of the configuration.
type progressMap map[uint64]*Progress

// sortedIDs returns the IDs in ascending order, for deterministic loops
// (map order is random and the core must replay exactly).
func (m progressMap) sortedIDs() []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
