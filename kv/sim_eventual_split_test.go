package kv

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/records"
)

// Splits of eventual ranges in the simulator (kv/eventual/split.go):
// TestSimEventual's clients, nemesis and checks, with every range split
// as soon as one replica's records pass simEvRangeMaxBytes, which the
// clients' eight keys pass again and again: the ranges split until most
// hold one key. Every check of TestSimEventual holds across the splits:
// W+R > N reads see every write acknowledged before them, the
// compare-and-swap keys' histories (the flash sale) are linearizable,
// and the replicas converge, every record in the prefix of the range
// that holds its key (none left behind in an ancestor's).

// simEvRangeMaxBytes is the split limit: about one record.
const simEvRangeMaxBytes = 20

// simEvSplitShapes are TestSimEventualSplits' clusters.
var simEvSplitShapes = []simEvShape{
	{name: "nodes=3,N=3,W=2,R=2", nodes: 3, ks: evKeyspace(3, 2, 2), rangeMaxBytes: simEvRangeMaxBytes},
	// A replica is down from before the first split until after several.
	{name: "nodes=3,N=3,W=2,R=2,down", nodes: 3, ks: evKeyspace(3, 2, 2), rangeMaxBytes: simEvRangeMaxBytes, downDuringSplits: true},
	// Nodes crash in the middle of moving a split's records.
	{name: "nodes=5,N=3,W=2,R=2,crash-in-sweep", nodes: 5, ks: evKeyspace(3, 2, 2), rangeMaxBytes: simEvRangeMaxBytes, crashSweeps: true},
}

// simEvMinSplits is how many splits each run must see at least.
const simEvMinSplits = 3

func TestSimEventualSplits(t *testing.T) {
	for _, shape := range simEvSplitShapes {
		t.Run(shape.name, func(t *testing.T) {
			var mu sync.Mutex // the seeds run in parallel
			splits, crashes := 0, 0
			t.Cleanup(func() {
				t.Logf("%s: %d splits, %d crashes in a sweep", shape.name, splits, crashes)
				if shape.crashSweeps && crashes == 0 && !t.Failed() {
					t.Errorf("no node crashed in the middle of a sweep")
				}
			})
			sim.RunSeeds(t, 5, func(t *testing.T, seed uint64) {
				ev := runSimEventual(t, seed, shape)
				if ev.stale > 0 {
					t.Errorf("%d reads missed a write acknowledged before they started, with W+R > N", ev.stale)
				}
				if ev.c.evSplits < simEvMinSplits {
					t.Errorf("%d splits of the eventual ranges, want at least %d", ev.c.evSplits, simEvMinSplits)
				}
				t.Logf("seed %d: %d splits, %d ranges, %d crashes in a sweep", seed, ev.c.evSplits,
					len(ev.c.catalog().Ranges[shape.ks.Name]), ev.sweepCrashes)
				mu.Lock()
				defer mu.Unlock()
				splits += ev.c.evSplits
				crashes += ev.sweepCrashes
			})
		})
	}
}

// Canaries of eventual splits: as TestSimEventualCanaries, on
// TestSimEventualSplits' first shape.
func TestSimEventualSplitCanaries(t *testing.T) {
	for _, cn := range []struct {
		name  string
		hooks eventual.Hooks
	}{
		// A range born of a split serves its prefix alone until the old
		// range is swept: reads miss the writes made before the split.
		{"new range served without pulling from the old one", eventual.Hooks{SplitNoPull: true}},
		// A split moves the records but loses the acceptor states.
		{"acceptor states not moved", eventual.Hooks{Move: records.MoveCanaries{DropAcceptor: true}}},
	} {
		t.Run(cn.name, func(t *testing.T) {
			shape := simEvSplitShapes[0]
			shape.hooks = cn.hooks
			seeds := sim.Seeds(t, 20)
			for _, seed := range seeds {
				var ev *simEv
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					ev = newSimEv(t, shape, true)
					ev.run(seed)
				})
				if ev.stale > 0 {
					ev.violations = append(ev.violations, fmt.Sprintf("%d reads missed a write acknowledged before they started", ev.stale))
				}
				if len(ev.violations) > 0 {
					t.Logf("canary %q caught by seed %d (seeds tried: %d..%d); first of %d violations:\n%s",
						cn.name, seed, seeds[0], seed, len(ev.violations), ev.violations[0])
					return
				}
			}
			t.Errorf("canary %q not caught by seeds %d..%d", cn.name, seeds[0], seeds[len(seeds)-1])
		})
	}
}

// startSplitFaults starts the faults of the shape's splits: the last node
// down from 0.2 s to 3 s (the splits begin with the clients' first
// writes).
func (ev *simEv) startSplitFaults() {
	if !ev.shape.downDuringSplits {
		return
	}
	c := ev.c
	id := sim.NodeID(c.ids[len(c.ids)-1])
	c.s.After(200*time.Millisecond, func() {
		if c.s.Up(id) {
			c.s.Tracef("n%d down during the splits", id)
			c.s.Crash(id)
		}
	})
	c.s.After(3*time.Second, func() {
		if !c.s.Up(id) {
			c.s.Restart(id)
		}
	})
}

// crashSweep is the SweepStop hook of crashSweeps: half the time, a node
// that moved its first key of a sweep crashes there (losing the moves
// not synced) and restarts soon after.
func (ev *simEv) crashSweep(id, rangeID uint64, moved int) bool {
	c := ev.c
	if ev.healed || moved != 1 || c.s.Rand().IntN(2) != 0 || !c.oneMoreMayCrash() {
		return false
	}
	ev.sweepCrashes++
	c.crashSoon(id, fmt.Sprintf("in the middle of sweeping range %d", rangeID))
	return true
}
