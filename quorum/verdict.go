package quorum

import "fmt"

// Protocol is a way of using a geometry, as a keyspace's mode names it.
type Protocol string

const (
	Raft     Protocol = "raft"
	Paxos    Protocol = "paxos"
	Eventual Protocol = "eventual"
)

// Protocols lists every protocol, in the order reports print them.
var Protocols = []Protocol{Raft, Paxos, Eventual}

// ParseProtocol accepts raft, paxos or eventual.
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range Protocols {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: unknown mode %q: want raft, paxos or eventual", ErrInvalid, s)
}

// Safe says whether the proven geometry is safe for protocol p and why.
//
// Every protocol needs phase-1 quorums to meet phase-2 quorums:
//   - Paxos: a Prepare quorum meets every Accept quorum, so a new proposer
//     learns any value that may have been chosen and proposes it again.
//   - Raft: an election quorum meets every commit quorum, so the winner's
//     vote from a node holding each committed entry forces, by the
//     up-to-date rule, a log that holds them all.
//   - Eventual: a read set meets every write set, so a read sees the latest
//     acknowledged write (W+R>N for sizes).
//
// Raft also relies on two election quorums meeting, so that one term has
// one leader. Where phase-1 quorums can be disjoint (a grid's rows, zones
// with two nodes each) quorumkv's Raft makes terms unique per candidate,
// as Paxos ballots are, so two leaders are never in one term; the geometry
// stays safe and the reason says so.
func (r *Report) Safe(p Protocol) (bool, string) {
	if !r.Intersect {
		return false, "a phase-1 quorum and a phase-2 quorum can be disjoint (see the counterexample)"
	}
	switch p {
	case Raft:
		if !r.Phase1Intersect {
			return true, "every election quorum meets every commit quorum; election quorums " +
				"can be disjoint, so each candidate takes only terms it owns"
		}
		return true, "every election quorum meets every commit quorum and every other election quorum"
	case Paxos:
		return true, "every Prepare quorum meets every Accept quorum"
	case Eventual:
		return true, "every read set meets every write set"
	}
	return false, fmt.Sprintf("unknown protocol %q", p)
}
