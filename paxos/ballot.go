package paxos

import (
	"cmp"
	"fmt"
)

// Ballot orders proposals. Rounds are compared first, then node IDs, so two
// proposers never share a ballot: a proposer only uses ballots that carry
// its own ID. The zero Ballot is below every ballot a proposer uses and
// stands for "nothing promised" or "nothing accepted".
type Ballot struct {
	Round  uint64
	NodeID uint64
}

// Compare returns -1, 0 or +1 as b is below, equal to or above o.
func (b Ballot) Compare(o Ballot) int {
	if c := cmp.Compare(b.Round, o.Round); c != 0 {
		return c
	}
	return cmp.Compare(b.NodeID, o.NodeID)
}

// Less reports whether b is below o.
func (b Ballot) Less(o Ballot) bool { return b.Compare(o) < 0 }

// IsZero reports whether b is the zero Ballot.
func (b Ballot) IsZero() bool { return b == Ballot{} }

// String prints round.node, e.g. "3.2".
func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.NodeID) }

// next returns the lowest ballot owned by id that is above every ballot in
// seen: the proposer skips straight past whatever it has heard of.
func nextBallot(id uint64, seen ...Ballot) Ballot {
	var round uint64
	for _, b := range seen {
		round = max(round, b.Round)
	}
	return Ballot{Round: round + 1, NodeID: id}
}

func maxBallot(a, b Ballot) Ballot {
	if a.Less(b) {
		return b
	}
	return a
}
