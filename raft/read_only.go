package raft

import "slices"

// readOnly tracks ReadIndex requests on a leader.
//
// Every heartbeat round the leader broadcasts gets a new sequence number
// (ReadSeq), and followers echo it. A read asked for while round s was the
// latest is confirmed once a phase-2 quorum has acknowledged a round >= s:
// those acknowledgements were sent after the request, so at that moment no
// other leader could have been elected (every election needs a phase-1
// quorum, which meets this phase-2 quorum, whose members still followed
// us). The read index is the commit index at the time of the request.
type readOnly struct {
	option ReadOnlyOption
	// seq is the last round sent in this Term.
	seq uint64
	// sentAt[i] is the leader tick at which round sentAt[i].seq was sent,
	// for the lease; rounds older than an election timeout are dropped.
	sentAt []roundSent
	// pending are requests waiting for a quorum, in seq order.
	pending []readRequest
	// waitingCommit are requests made before the leader committed an entry
	// of its own Term: until then its commit index may be behind entries
	// an earlier leader committed, and a read at it could miss them.
	waitingCommit [][]byte
	// noLease: a leadership transfer began in this Term, so no lease is
	// trusted until the Term ends. The target's vote requests ignore
	// leases (Message.Transfer), and one delayed in the network may reach
	// a voter after it acknowledged any later round, even once the
	// transfer was aborted: every round of the Term is suspect.
	noLease bool
}

// forgetLease stops the rounds sent so far from vouching for a lease: a
// read needs a round sent after this call, acknowledged by a phase-2
// quorum, or a lease from one.
func (ro *readOnly) forgetLease() { ro.sentAt = nil }

type roundSent struct {
	seq  uint64
	tick int
}

type readRequest struct {
	ctx   []byte
	index uint64
	seq   uint64
}

// newRound starts heartbeat round seq+1 at tick now.
func (ro *readOnly) newRound(now, electionTicks int) uint64 {
	ro.seq++
	ro.sentAt = append(ro.sentAt, roundSent{seq: ro.seq, tick: now})
	old := 0
	for old < len(ro.sentAt)-1 && ro.sentAt[old].tick+electionTicks < now {
		old++
	}
	ro.sentAt = ro.sentAt[old:]
	return ro.seq
}

// sentTick returns the tick round seq was sent at, if still known.
func (ro *readOnly) sentTick(seq uint64) (int, bool) {
	i, ok := slices.BinarySearchFunc(ro.sentAt, seq, func(r roundSent, s uint64) int {
		switch {
		case r.seq < s:
			return -1
		case r.seq > s:
			return 1
		}
		return 0
	})
	if !ok {
		return 0, false
	}
	return ro.sentAt[i].tick, true
}
