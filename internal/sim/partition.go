package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Partition is a set of directed links that carry no messages while the
// partition is active. Build one with Isolate, Split, Bridge, CutOneWay or
// MajorityRing and activate it with Network.Partition. A Partition is an
// immutable value.
type Partition struct {
	name string
	cut  map[link]struct{}
}

// Blocks reports whether p cuts the link from -> to.
func (p Partition) Blocks(from, to NodeID) bool {
	_, ok := p.cut[link{from, to}]
	return ok
}

// String describes the shape, e.g. "split{1,2,3|4,5}".
func (p Partition) String() string { return p.name }

func newPartition(name string) Partition {
	return Partition{name: name, cut: make(map[link]struct{})}
}

func (p Partition) cutBoth(a, b NodeID) {
	if a == b {
		return
	}
	p.cut[link{a, b}] = struct{}{}
	p.cut[link{b, a}] = struct{}{}
}

func idList(ids []NodeID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(uint64(id))
	}
	return strings.Join(parts, ",")
}

// Isolate cuts victim off from every other node of all, both ways.
func Isolate(all []NodeID, victim NodeID) Partition {
	p := newPartition(fmt.Sprintf("isolate{%d}", victim))
	for _, id := range all {
		p.cutBoth(victim, id)
	}
	return p
}

// Split cuts every link between nodes of different groups, both ways;
// nodes within a group still talk. Split(majority, minority) is the classic
// majority/minority partition. A node listed in no group is unaffected.
func Split(groups ...[]NodeID) Partition {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = idList(g)
	}
	p := newPartition("split{" + strings.Join(names, "|") + "}")
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					p.cutBoth(a, b)
				}
			}
		}
	}
	return p
}

// Bridge splits left from right, both ways, except for bridge, which talks
// to both halves. With 5 nodes as {1,2} 3 {4,5}, node 3 is in two
// majorities ({1,2,3} and {3,4,5}) that cannot talk to each other: a
// protocol whose leader election relies on majority connectivity alone can
// flip-flop or elect two leaders.
func Bridge(left []NodeID, bridge NodeID, right []NodeID) Partition {
	p := Split(left, right)
	p.name = fmt.Sprintf("bridge{%s|%d|%s}", idList(left), bridge, idList(right))
	return p
}

// CutOneWay drops every message from a node of from to a node of to, while
// messages from to to from still flow. CutOneWay([]NodeID{b}, []NodeID{a})
// lets a send to b but not b answer a: a leader that can send heartbeats
// but not hear acknowledgements.
func CutOneWay(from, to []NodeID) Partition {
	p := newPartition(fmt.Sprintf("oneway{%s->x->%s}", idList(from), idList(to)))
	for _, a := range from {
		for _, b := range to {
			if a != b {
				p.cut[link{a, b}] = struct{}{}
			}
		}
	}
	return p
}

// MajorityRing arranges nodes on a ring in the given order; each node keeps
// links only to the nodes closest to it on the ring, just enough that it
// (with itself) sees a majority, and no two nodes see the same majority.
// Every node can form a quorum, yet the quorums differ (Jepsen's
// "majorities ring"). With 3 nodes nothing is cut.
func MajorityRing(nodes []NodeID) Partition {
	p := newPartition("ring{" + idList(nodes) + "}")
	n := len(nodes)
	// A node sees itself and k neighbours on each side: 2k+1 >= n/2+1.
	k := (n/2 + 1) / 2
	for i := range nodes {
		for j := i + 1; j < n; j++ {
			d := min(j-i, n-(j-i))
			if d > k {
				p.cutBoth(nodes[i], nodes[j])
			}
		}
	}
	return p
}

type activePartition struct {
	id uint64
	p  Partition
}

// Partition activates p until the returned heal function is called (or
// Network.Heal / Sim.Heal). Active partitions add up: a link is cut while
// any of them cuts it. Calling heal twice is harmless.
func (n *Network) Partition(p Partition) (heal func()) {
	n.nextPart++
	ap := &activePartition{id: n.nextPart, p: p}
	n.parts = append(n.parts, ap)
	n.s.record(TraceEvent{Kind: EvPartition, Text: p.String()})
	return func() { n.heal(ap) }
}

func (n *Network) heal(ap *activePartition) {
	i := slices.Index(n.parts, ap)
	if i < 0 {
		return
	}
	n.parts = slices.Delete(n.parts, i, i+1)
	n.s.record(TraceEvent{Kind: EvHeal, Text: ap.p.String()})
}

// Heal ends every partition and stops every Flap. Link configurations are
// left as they are.
func (n *Network) Heal() {
	for _, f := range slices.Clone(n.flaps) {
		f.Stop()
	}
	for len(n.parts) > 0 {
		n.heal(n.parts[0])
	}
}

// Flap is a partition that repeatedly heals and re-forms.
type Flap struct {
	n        *Network
	p        Partition
	min, max time.Duration
	heal     func() // non-nil while the partition is active
	timer    *Timer
}

// Flap activates p now and then keeps toggling it: each period, active or
// healed, lasts a random time in [min, max]. The flapping network is where
// protocols that elect a leader on a timeout tend to livelock or lose
// writes.
func (n *Network) Flap(p Partition, min, max time.Duration) *Flap {
	if max < min {
		max = min
	}
	f := &Flap{n: n, p: p, min: min, max: max}
	n.flaps = append(n.flaps, f)
	f.toggle()
	return f
}

func (f *Flap) toggle() {
	if f.heal != nil {
		f.heal()
		f.heal = nil
	} else {
		f.heal = f.n.Partition(f.p)
	}
	f.timer = f.n.s.After(randDuration(f.n.s, f.min, f.max), f.toggle)
}

// Stop ends the flapping and heals the partition.
func (f *Flap) Stop() {
	f.timer.Stop()
	if f.heal != nil {
		f.heal()
		f.heal = nil
	}
	if i := slices.Index(f.n.flaps, f); i >= 0 {
		f.n.flaps = slices.Delete(f.n.flaps, i, i+1)
	}
}

// randDuration draws uniformly from [lo, hi].
func randDuration(s *Sim, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}
