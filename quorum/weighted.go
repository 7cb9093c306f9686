package quorum

import (
	"fmt"
	"slices"
)

// MaxWeight bounds a node's votes so that total weights cannot overflow.
const MaxWeight = 1 << 20

// weighted: a set is a quorum of either phase when its votes exceed half of
// all votes. Two such sets cannot be disjoint (together they would hold more
// than all votes), so weights buy placement preferences, never safety risks.
type weighted struct {
	voterSet
	weight map[uint64]int
	total  int
}

func newWeighted(vs voterSet, nodes []Node) (System, error) {
	w := weighted{voterSet: vs, weight: make(map[uint64]int, len(nodes))}
	for _, n := range nodes {
		wt := n.Weight
		if wt == 0 {
			wt = 1
		}
		if wt < 0 || wt > MaxWeight {
			return nil, fmt.Errorf("%w: node %d has weight %d, want 1 to %d", ErrInvalid, n.ID, n.Weight, MaxWeight)
		}
		w.weight[n.ID] = wt
		w.total += wt
	}
	return w, nil
}

func (w weighted) String() string { return "weighted" }

func (w weighted) Describe(Phase) string {
	return fmt.Sprintf("more than %d of %d votes", w.total/2, w.total)
}

func (w weighted) enough(votes int) bool { return 2*votes > w.total }

func (w weighted) IsQuorum(_ Phase, in func(uint64) bool) bool {
	votes := 0
	for _, id := range w.ids {
		if in(id) {
			votes += w.weight[id]
		}
	}
	return w.enough(votes)
}

// QuorumIndex walks the voters from the highest acknowledged index down,
// adding their votes until they are enough: that index is held by them all.
func (w weighted) QuorumIndex(_ Phase, acked func(uint64) uint64) uint64 {
	type ack struct {
		idx    uint64
		weight int
	}
	acks := make([]ack, len(w.ids))
	for i, id := range w.ids {
		acks[i] = ack{acked(id), w.weight[id]}
	}
	slices.SortFunc(acks, func(a, b ack) int {
		switch {
		case a.idx > b.idx:
			return -1
		case a.idx < b.idx:
			return 1
		}
		return 0
	})
	votes := 0
	for _, a := range acks {
		votes += a.weight
		if w.enough(votes) {
			return a.idx
		}
	}
	return 0 // unreachable: all votes together are enough
}

func (w weighted) bits(u *universe) bitQuorum {
	type bitWeight struct {
		bit    uint64
		weight int
	}
	bw := make([]bitWeight, len(w.ids))
	for i, id := range w.ids {
		bw[i] = bitWeight{1 << u.pos[id], w.weight[id]}
	}
	return func(_ Phase, s uint64) bool {
		votes := 0
		for _, b := range bw {
			if s&b.bit != 0 {
				votes += b.weight
			}
		}
		return w.enough(votes)
	}
}
