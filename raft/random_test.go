package raft

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestRandomized drives clusters of each geometry with random ticks,
// proposals, drops, partitions, crashes and restarts, checking after every
// step that each Term has one leader and that nodes apply the same entry
// at each index; after healing, the cluster must elect a leader and commit.
// A failure names its seed. (The simulator suite in internal/sim goes much
// further; this is the core's own smoke test.)
func TestRandomized(t *testing.T) {
	geometries := map[string]ConfState{
		"majority3": majorityConf(3),
		"majority5": majorityConf(5),
		"grid3x3":   gridConf(),
		"zones3x2": {Geometry: "zones", Voters: []Member{{ID: 1, Zone: "a"}, {ID: 2, Zone: "a"},
			{ID: 3, Zone: "b"}, {ID: 4, Zone: "b"}, {ID: 5, Zone: "c"}, {ID: 6, Zone: "c"}}},
		"weighted": {Geometry: "weighted", Voters: []Member{{ID: 1, Weight: 3}, {ID: 2}, {ID: 3}, {ID: 4}}},
	}
	seeds := 20
	if testing.Short() {
		seeds = 5
	}
	for name, cs := range geometries {
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				randomRun(t, cs, seed)
			})
		}
	}
}

func gridConf() ConfState {
	cs := ConfState{Geometry: "grid:3x3"}
	for i := uint64(1); i <= 9; i++ {
		cs.Voters = append(cs.Voters, Member{ID: i})
	}
	return cs
}

func randomRun(t *testing.T, cs ConfState, seed uint64) {
	e := newEnv(t)
	e.quiet, e.seed = true, seed
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, m := range cs.Voters {
		e.addNode(m.ID, Config{MaxSizePerMsg: 64}, &cs)
	}
	ids := e.ids()
	pick := func() uint64 { return ids[rng.IntN(len(ids))] }
	proposals := 0
	for step := range 3000 {
		switch r := rng.IntN(100); {
		case r < 50:
			n := e.node(pick())
			if !n.crashed {
				n.rn.Tick()
			}
		case r < 70:
			id := pick()
			if !e.node(id).crashed {
				e.processReady(id)
			}
		case r < 85:
			id := pick()
			if msgs := e.inbox[id]; len(msgs) > 0 && rng.IntN(10) == 0 {
				e.inbox[id] = msgs[1:] // drop one
			}
			e.deliver(id)
		case r < 93:
			if l := e.leader(); l != 0 {
				proposals++
				_ = e.node(l).rn.Propose(fmt.Appendf(nil, "p%d", proposals))
			}
		case r < 94 && rng.IntN(4) == 0:
			var a, b []uint64
			for _, id := range ids {
				if rng.IntN(2) == 0 {
					a = append(a, id)
				} else {
					b = append(b, id)
				}
			}
			e.partition(a, b)
		case r < 96:
			e.heal()
		case r < 98:
			if id := pick(); !e.node(id).crashed && rng.IntN(4) == 0 {
				e.crash(id)
			}
		default:
			for _, id := range ids {
				if e.node(id).crashed {
					e.restart(id)
					break
				}
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d: invariant broken at step %d", seed, step)
		}
	}
	t.Logf("seed %d: random phase: %d proposals, %d committed, %d leaders", seed, proposals, len(e.committed), len(e.leaders))
	// Liveness: heal everything; a leader must emerge and commit.
	e.heal()
	for _, id := range ids {
		if e.node(id).crashed {
			e.restart(id)
		}
	}
	for round := 0; ; round++ {
		if round > 200 {
			t.Fatalf("seed %d: no leader commits after healing", seed)
		}
		for _, id := range ids {
			e.node(id).rn.Tick()
		}
		e.stabilize()
		if l := e.leader(); l != 0 && e.node(l).rn.Propose([]byte("final")) == nil {
			e.stabilize()
			last := e.node(l).applied[len(e.node(l).applied)-1]
			if string(last.Data) == "final" {
				t.Logf("seed %d: %d proposals, %d entries committed, %d terms with a leader",
					seed, proposals, len(e.committed), len(e.leaders))
				return
			}
		}
	}
}
