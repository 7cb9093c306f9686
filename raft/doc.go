// Package raft is quorumkv's Raft core: a pure, deterministic state machine
// in the style of etcd's RawNode, whose quorums come from a pluggable
// quorum.System (majority, weighted, grid, zones, flexible, and the joint
// system of two of them during a configuration change).
//
// The core does no IO, starts no goroutines and reads no clock. Time is the
// number of Tick calls; randomness (the election timeout) comes from the
// *rand.Rand in Config. The caller drives it:
//
//	rn.Tick() / rn.Step(msg) / rn.Propose(data) / rn.ReadIndex(ctx)
//	rd := rn.Ready()
//	persist rd.Snapshot, rd.Entries, rd.HardState   (durably, in this order)
//	send rd.Messages                                (only after persisting)
//	apply rd.CommittedEntries, serve rd.ReadStates
//	rn.Advance()
//
// A caller that does not wait for its writes to be durable uses
// AdvanceWritten instead: it writes the Ready, sends the messages that
// do not depend on its own copy (a leader's appends in a term that was
// durable before), applies and advances at once, and sends the rest once
// its sync returns, calling Synced then; a leader counts its own copy of
// entries toward commit only at Synced. The simulator runs it so
// (TestSimAsyncPersist), with crashes before syncs.
//
// # Quorums
//
// The two phases of Raft use the two kinds of quorum of the configuration's
// geometry (see package quorum):
//
//   - Phase 1, the election: a candidate needs a phase-1 quorum of votes
//     (quorum.Vote with quorum.Phase1). Pre-votes count the same way.
//   - Phase 2, replication: the commit index is the highest index held by a
//     phase-2 quorum (quorum.CommittedIndex), restricted to entries of the
//     leader's own Term. Check-quorum, ReadIndex and leases are confirmed by
//     a phase-2 quorum too: it meets every phase-1 quorum, so no election
//     can finish without one of its members.
//
// Raft's proof that a Term has one leader uses that two election quorums
// meet. Geometries whose phase-1 quorums can be disjoint (the rows of a
// grid) break that, so in such configurations every candidate only takes
// Terms it owns (terms.go), as Paxos ballots <round, node> are unique.
//
// # Configuration
//
// A configuration (ConfState) names a geometry and its voters with their
// zones and weights, plus learners. Changes go through joint consensus
// (quorum.NewJoint): the leader commits a joint configuration in which
// every decision needs quorums of the old and the new geometry, and then
// leaves it automatically. Configuration entries carry the whole resulting
// ConfState, so a node that replays the log from its first entry learns
// every configuration without other state. A configuration takes effect on
// a node when it has been applied (at Advance), never earlier.
package raft
