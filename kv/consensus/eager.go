package consensus

import (
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// Which messages may leave before their Ready is durable.
//
// The store writes a round's entries and hard states in one batch and
// syncs it; a message that depends on that state (a vote, an
// acknowledgement of entries, a promise) may go out only after the sync,
// or a crash in between would forget what others already counted. A
// leader's messages to its followers are different: an append asks a
// follower to store entries, and says nothing about the leader's own copy.
// The leader counts its own copy towards a commit either when it handles
// its followers' answers, which the store loop does in a later round,
// after this round's sync returned, or, as the only voter, in this very
// Ready, whose committed entries the store applies only after the sync.
// So sending the appends first lets the followers write and sync their
// copy while the leader syncs its own, and takes one sync off the latency
// of every write.
//
// That holds only for a term (or ballot) that was durable before the
// round. A leader elected in the round it sends from (a range with one
// voter and a learner campaigns and leads at once) would, after a crash
// that lost the new term, take the same term again and send other entries
// at the same indexes under it: a follower that kept the first ones would
// hold a log that matches the leader's by (index, term) and differs in
// content. So an eager message must carry the term or ballot that the
// core's log held before this Ready, and the Ready must not change it.

// eagerRaft reports whether m, sent in a Ready whose hard state is hs
// (empty if unchanged), may go out before that Ready is synced; durable is
// the hard state the log held before it.
func eagerRaft(m *raft.Message, hs, durable raft.HardState) bool {
	switch m.Type {
	case raft.MsgApp, raft.MsgHeartbeat, raft.MsgSnap:
	default:
		return false
	}
	if !hs.IsEmpty() && (hs.Term != durable.Term || hs.Vote != durable.Vote) {
		return false
	}
	return m.Term == durable.Term
}

// eagerPaxos is eagerRaft for Multi-Paxos: a leader's Accepts, heartbeats
// and snapshots at the ballot its acceptor promised durably before this
// Ready, which does not change the promise.
func eagerPaxos(m *paxos.Message, hs, durable paxos.HardState) bool {
	switch m.Type {
	case paxos.MsgAccept, paxos.MsgHeartbeat, paxos.MsgSnapshot:
	default:
		return false
	}
	return hs.Promised == durable.Promised && m.Ballot == durable.Promised
}

// splitEager moves the messages for which eager holds from out.Messages
// to out.Eager, keeping the order of each part. With none eager it
// allocates nothing.
func splitEager(out *Ready, eager func(PeerMessage) bool) {
	n := 0
	for _, m := range out.Messages {
		if eager(m) {
			n++
		}
	}
	if n == 0 {
		return
	}
	out.Eager = make([]PeerMessage, 0, n)
	rest := out.Messages[:0]
	for _, m := range out.Messages {
		if eager(m) {
			out.Eager = append(out.Eager, m)
		} else {
			rest = append(rest, m)
		}
	}
	out.Messages = rest
}
