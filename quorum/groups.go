package quorum

import (
	"fmt"
	"strings"
)

// A rule defines the quorums of one phase by groups of voters (the rows or
// columns of a grid, the zones of a cluster), in one of two ways:
//
//	cover: the set holds every voter of some group   (grid rows or columns, one zone)
//	hit:   the set holds a voter of every group      (a node in every zone)
//
// A cover of group g meets a hit of all groups, since the hit holds a voter
// of g. Two covers meet only if their groups do: a grid's rows and columns
// cross, but two rows do not, and two zones never do.
type rule struct {
	groups [][]uint64
	hit    bool // false: cover
	name   string
}

func (r rule) isQuorum(in func(uint64) bool) bool {
	for _, g := range r.groups {
		has := 0
		for _, id := range g {
			if in(id) {
				has++
			}
		}
		if r.hit && has == 0 {
			return false
		}
		if !r.hit && has == len(g) {
			return true
		}
	}
	return r.hit
}

// quorumIndex: a cover holds index i once every voter of some group has
// acked i, so the answer is the best group's lowest ack; a hit needs every
// group's best ack, so the answer is the lowest of those.
func (r rule) quorumIndex(acked func(uint64) uint64) uint64 {
	var best uint64
	for gi, g := range r.groups {
		var low, high uint64
		for i, id := range g {
			a := acked(id)
			if i == 0 || a < low {
				low = a
			}
			high = max(high, a)
		}
		switch {
		case r.hit && (gi == 0 || high < best):
			best = high
		case !r.hit:
			best = max(best, low)
		}
	}
	return best
}

func (r rule) bits(u *universe) func(uint64) bool {
	masks := make([]uint64, len(r.groups))
	for i, g := range r.groups {
		masks[i] = u.mask(g)
	}
	if r.hit {
		return func(s uint64) bool {
			for _, g := range masks {
				if s&g == 0 {
					return false
				}
			}
			return true
		}
	}
	return func(s uint64) bool {
		for _, g := range masks {
			if s&g == g {
				return true
			}
		}
		return false
	}
}

// grouped is a geometry whose two phases are rules over groups.
type grouped struct {
	voterSet
	spec   string
	p1, p2 rule
}

func (g grouped) rule(p Phase) rule {
	if p == Phase1 {
		return g.p1
	}
	return g.p2
}

func (g grouped) String() string                              { return g.spec }
func (g grouped) Describe(p Phase) string                     { return g.rule(p).name }
func (g grouped) IsQuorum(p Phase, in func(uint64) bool) bool { return g.rule(p).isQuorum(in) }

func (g grouped) QuorumIndex(p Phase, acked func(uint64) uint64) uint64 {
	return g.rule(p).quorumIndex(acked)
}

func (g grouped) bits(u *universe) bitQuorum {
	b1, b2 := g.p1.bits(u), g.p2.bits(u)
	return func(p Phase, s uint64) bool {
		if p == Phase1 {
			return b1(s)
		}
		return b2(s)
	}
}

// newGrid lays the voters out row by row, in the order given: phase 1 is a
// full row and phase 2 a full column. Every row crosses every column, so a
// 3x3 grid needs quorums of 3 where a majority of 9 needs 5 — at the price
// of surviving fewer failures (three on a diagonal block both phases).
func newGrid(vs voterSet, rows, cols int) (System, error) {
	if rows*cols != len(vs.ids) {
		return nil, fmt.Errorf("%w: grid:%dx%d needs exactly %d voters, the cluster has %d", ErrInvalid, rows, cols, rows*cols, len(vs.ids))
	}
	rowGroups := make([][]uint64, rows)
	colGroups := make([][]uint64, cols)
	for i, id := range vs.ids {
		r, c := i/cols, i%cols
		rowGroups[r] = append(rowGroups[r], id)
		colGroups[c] = append(colGroups[c], id)
	}
	return grouped{
		voterSet: vs,
		spec:     fmt.Sprintf("grid:%dx%d", rows, cols),
		p1:       rule{groups: rowGroups, name: fmt.Sprintf("a full row (%d voters) of a %dx%d grid", cols, rows, cols)},
		p2:       rule{groups: colGroups, name: fmt.Sprintf("a full column (%d voters) of a %dx%d grid", rows, rows, cols)},
	}, nil
}

// newZones groups the voters by zone, zones in order of first appearance:
// phase 1 holds a voter of every zone and phase 2 every voter of one zone,
// so a write is decided inside a single zone (one datacenter's round trip)
// and an election or read reaches into all of them.
func newZones(vs voterSet, nodes []Node) (System, error) {
	var zones [][]uint64
	var names []string
	index := map[string]int{}
	for _, n := range nodes {
		if n.Zone == "" {
			return nil, fmt.Errorf("%w: zones geometry needs a zone for every node; node %d has none", ErrInvalid, n.ID)
		}
		i, ok := index[n.Zone]
		if !ok {
			i = len(zones)
			index[n.Zone] = i
			zones = append(zones, nil)
			names = append(names, n.Zone)
		}
		zones[i] = append(zones[i], n.ID)
	}
	list := strings.Join(names, ", ")
	return grouped{
		voterSet: vs,
		spec:     "zones",
		p1:       rule{groups: zones, hit: true, name: fmt.Sprintf("a voter in every zone (%s)", list)},
		p2:       rule{groups: zones, name: fmt.Sprintf("every voter of one zone (%s)", list)},
	}, nil
}
