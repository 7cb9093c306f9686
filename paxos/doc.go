// Package paxos is quorumkv's Paxos core: Basic Paxos (one decree, or one
// register changed by a series of decrees) and Multi-Paxos (a log of slots).
//
// Both are pure, deterministic state machines. They do no IO, start no
// goroutine, read no clock and draw randomness only from the *rand.Rand they
// are given. The caller moves data in and out:
//
//   - Basic Paxos: an Acceptor's Step returns an AcceptorReady holding the
//     state to persist and the reply to send, in that order; a Proposer's
//     Step returns the messages to send and, once decided, an Outcome.
//   - Multi-Paxos: a RawNode takes Step (a message), Tick (one unit of
//     logical time), Propose and ReadIndex, and hands back a Ready: hard
//     state and accepted entries to persist, then messages to send, then
//     chosen entries to apply and reads that may be served; the caller
//     calls Advance when done. The Raft core has the same shape, so one
//     replica driver runs either protocol.
//
// Vocabulary (one meaning each, as in the papers):
//
//	Ballot   <Round, NodeID>, totally ordered; unique per proposer.
//	Prepare  phase 1: "promise to ignore ballots below mine, and tell me
//	         what you have accepted". Sent to a phase-1 quorum.
//	Promise  the acceptor's answer to a Prepare it grants.
//	Accept   phase 2: "accept this value at my ballot". A value accepted
//	         by a phase-2 quorum at one ballot is Chosen.
//	Chosen   decided forever; a slot's chosen value never changes.
//
// Quorums come from a quorum.System: Prepare waits for a phase-1 quorum,
// Accept for a phase-2 quorum. With any geometry whose phase-1 quorums meet
// its phase-2 quorums (Flexible Paxos, Howard et al. 2016) the protocol is
// safe: a proposer that completes phase 1 hears from at least one acceptor of
// every phase-2 quorum that may have chosen a value, and proposes that value
// again instead of its own.
//
// The article quorumkv grows out of ("Paxos从入门到学会Raft") makes an
// engineering point this package follows: an acceptor that refuses a Prepare
// or an Accept says which ballot it has promised, so the proposer jumps past
// it in one step instead of climbing one round per timeout.
//
// Leadership transfer (RawNode.TransferLeader, for a graceful stop) needs
// no new safety argument: any node may run phase 1 at any time. A live
// leader's acceptors refuse other candidates so that a node that was cut
// off cannot depose a working leader (a liveness rule); a Prepare the
// leader asked for (MsgTimeoutNow) is marked and granted.
//
// Read leases (Config.ReadLease, off by default) turn that refusal into a
// promise a leader counts on: an acceptor that acknowledged a heartbeat
// round grants no other proposer's Prepare for ElectionTicks of its own
// ticks (nor within ElectionTicks of a restart, nor a transfer asked by
// another leader than the one it defers to), so a leader whose round a
// phase-2 quorum acknowledged less than ElectionTicks-2 ticks ago serves
// reads without a round trip. It trusts the nodes' ticks to run at
// nearly the same rate (within 10% with the default timeout); lease.go
// has the argument and what ends a lease.
//
// Files: ballot.go; Basic Paxos in acceptor.go, proposer.go, basic.go;
// Multi-Paxos in rawnode.go (the API and Ready), follower.go (acceptor and
// learner), election.go (phase 1), leader.go (phase 2, pipelining,
// catch-up), read.go (linearizable reads), lease.go (read leases and
// the promise acceptors keep for them), reconfig.go (configuration
// changes and why they are safe), log.go (slots), config.go (limits and
// defaults). canary.go lists the bugs tests plant on purpose.
package paxos
