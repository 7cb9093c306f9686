package quorum

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalid marks every error about a geometry or a cluster that cannot
// carry it. Callers test for it with errors.Is to tell bad input apart.
var ErrInvalid = errors.New("quorum: invalid geometry")

// Phase names one of the two kinds of quorum.
type Phase uint8

const (
	// Phase1 quorums learn the past: Raft elections, Paxos Prepare, W/R/N reads.
	Phase1 Phase = 1
	// Phase2 quorums decide: Raft commit, Paxos Accept, W/R/N writes.
	Phase2 Phase = 2
)

func (p Phase) String() string {
	switch p {
	case Phase1:
		return "phase 1"
	case Phase2:
		return "phase 2"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Node is a voter as a geometry sees it.
type Node struct {
	// ID identifies the node; 0 is reserved for "no node" by the protocols.
	ID uint64
	// Zone is the node's failure domain; only the zones geometry reads it.
	Zone string
	// Weight is the node's number of votes in the weighted geometry; 0 means
	// the default of 1. Other geometries ignore it.
	Weight int
}

// System is a quorum geometry over a fixed set of voters.
//
// Implementations are immutable and safe for concurrent use. The set of
// implementations is closed: systems are built by New, Parse and NewJoint.
type System interface {
	// String returns the geometry in the syntax ParseSpec accepts, or
	// "joint(OLD,NEW)" for a joint system.
	String() string
	// Voters returns the voters in ascending ID order, in a new slice.
	Voters() []uint64
	// IsQuorum reports whether the voters for which in returns true include
	// a phase-p quorum. in is called only with voter IDs.
	IsQuorum(p Phase, in func(id uint64) bool) bool
	// QuorumIndex returns the largest index i such that the voters with
	// acked(id) >= i include a phase-p quorum: with acked a follower's match
	// index and p = Phase2, the leader's commit index.
	QuorumIndex(p Phase, acked func(id uint64) uint64) uint64
	// Describe says in a few words what a phase-p quorum is.
	Describe(p Phase) string

	// bits compiles the system into a test on bit sets, where voter v is bit
	// u.pos[v]. Used by the proof; it also keeps the interface closed.
	bits(u *universe) bitQuorum
}

// bitQuorum reports whether the set of voters m includes a phase-p quorum.
type bitQuorum func(p Phase, m uint64) bool

// IsQuorumOf reports whether ids include a phase-p quorum of s.
func IsQuorumOf(s System, p Phase, ids ...uint64) bool {
	return s.IsQuorum(p, func(id uint64) bool { return slices.Contains(ids, id) })
}

// CommittedIndex is the phase-2 quorum index: the highest log index that a
// phase-2 quorum has stored, given each voter's match index.
func CommittedIndex(s System, match func(id uint64) uint64) uint64 {
	return s.QuorumIndex(Phase2, match)
}

// VoteResult is the state of a vote (an election, a Prepare round, a read).
type VoteResult uint8

const (
	// VotePending means the outcome depends on voters yet to answer.
	VotePending VoteResult = 1 + iota
	// VoteLost means the voters that did not refuse form no quorum.
	VoteLost
	// VoteWon means the voters that granted form a quorum.
	VoteWon
)

func (r VoteResult) String() string {
	switch r {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return fmt.Sprintf("VoteResult(%d)", uint8(r))
}

// Vote tallies a phase-p vote: votes[id] is true for a grant, false for a
// refusal, and a voter missing from votes has not answered.
func Vote(s System, p Phase, votes map[uint64]bool) VoteResult {
	if s.IsQuorum(p, func(id uint64) bool { return votes[id] }) {
		return VoteWon
	}
	notRefused := func(id uint64) bool {
		granted, answered := votes[id]
		return granted || !answered
	}
	if s.IsQuorum(p, notRefused) {
		return VotePending
	}
	return VoteLost
}

// voterSet is the part every geometry shares: its voters, validated.
type voterSet struct {
	ids    []uint64 // in the order given: the grid's layout
	sorted []uint64
}

func newVoterSet(nodes []Node) (voterSet, error) {
	if len(nodes) == 0 {
		return voterSet{}, fmt.Errorf("%w: no voters", ErrInvalid)
	}
	vs := voterSet{ids: make([]uint64, len(nodes))}
	for i, n := range nodes {
		if n.ID == 0 {
			return voterSet{}, fmt.Errorf("%w: node ID 0 is reserved", ErrInvalid)
		}
		vs.ids[i] = n.ID
	}
	vs.sorted = slices.Clone(vs.ids)
	slices.Sort(vs.sorted)
	for i := 1; i < len(vs.sorted); i++ {
		if vs.sorted[i] == vs.sorted[i-1] {
			return voterSet{}, fmt.Errorf("%w: node %d is listed twice", ErrInvalid, vs.sorted[i])
		}
	}
	return vs, nil
}

func (vs voterSet) Voters() []uint64 { return slices.Clone(vs.sorted) }

// count returns how many voters in holds.
func (vs voterSet) count(in func(uint64) bool) int {
	n := 0
	for _, id := range vs.ids {
		if in(id) {
			n++
		}
	}
	return n
}

// kth returns the k-th largest acked index (k from 1), or 0 if k is out of range.
func (vs voterSet) kth(k int, acked func(uint64) uint64) uint64 {
	if k < 1 || k > len(vs.ids) {
		return 0
	}
	idx := make([]uint64, len(vs.ids))
	for i, id := range vs.ids {
		idx[i] = acked(id)
	}
	slices.Sort(idx)
	return idx[len(idx)-k]
}

// mask returns the bit set of ids in u.
func (u *universe) mask(ids []uint64) uint64 {
	var m uint64
	for _, id := range ids {
		m |= 1 << u.pos[id]
	}
	return m
}
