package paxos_test

import (
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

func simSeeds(def int) int {
	if s, err := strconv.Atoi(os.Getenv("QKV_PAXOS_SEEDS")); err == nil && s > 0 {
		return s
	}
	return def
}

func runMultiSim(seed uint64, m paxos.Membership, c paxos.Canary, steps int) error {
	return runMultiSimWith(seed, m, c, steps, nil)
}

// runMultiLeaseSim runs a seed with read leases and transfers.
func runMultiLeaseSim(seed uint64, m paxos.Membership, c paxos.Canary, steps int) error {
	return runMultiSimWith(seed, m, c, steps, func(cfg *paxos.Config) { cfg.ReadLease = true })
}

func runMultiSimWith(seed uint64, m paxos.Membership, c paxos.Canary, steps int, tweak func(*paxos.Config)) error {
	cl := newCluster(seed, m, c, tweak)
	cl.checkLeases = cl.lease
	f := cl.drawFaults()
	for range steps {
		cl.randomStep(f)
		if cl.err != nil {
			return cl.err
		}
	}
	return cl.heal(400)
}

func memberships() map[string]paxos.Membership {
	grid := paxos.Membership{Geometry: "grid:2x3"}
	for i := 1; i <= 6; i++ {
		grid.Voters = append(grid.Voters, quorum.Node{ID: uint64(i)})
	}
	flex := majority(5)
	flex.Geometry = "flexible:4,2"
	return map[string]paxos.Membership{"majority3": majority(3), "majority5": majority(5), "grid2x3": grid, "flex5-4,2": flex}
}

func TestMultiPaxosSim(t *testing.T) {
	seeds := simSeeds(250)
	for name, m := range memberships() {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(seeds) {
				if err := runMultiSim(seed, m, paxos.CanaryNone, 1500); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		})
	}
}

// TestMultiPaxosCanaries: each planted bug is caught by the invariants on
// some seed of the ones TestMultiPaxosSim passes with the correct code.
func TestMultiPaxosCanaries(t *testing.T) {
	seeds := simSeeds(250) * 2
	ms := memberships()
	names := slices.Sorted(maps.Keys(ms))
	for _, c := range paxos.Canaries {
		t.Run(c.String(), func(t *testing.T) {
			for seed := range uint64(seeds) {
				for _, name := range names {
					if err := runMultiSim(seed, ms[name], c, 1500); err != nil {
						t.Logf("caught at seed %d on %s: %v", seed, name, err)
						return
					}
				}
			}
			t.Fatalf("canary %v not caught in %d seeds", c, seeds)
		})
	}
}

// TestMultiPaxosLeaseSim: with read leases, and leaders handing over now
// and then, every read still sees every write delivered before it began,
// however late messages arrive (ticks are in lockstep: the clock rates
// leases trust are equal here).
func TestMultiPaxosLeaseSim(t *testing.T) {
	seeds := simSeeds(250)
	for name, m := range memberships() {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(seeds) {
				if err := runMultiLeaseSim(seed, m, paxos.CanaryNone, 1500); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		})
	}
}

// TestMultiPaxosLeaseCanaries: each planted bug of read leases is caught
// on some seed of the ones TestMultiPaxosLeaseSim passes.
func TestMultiPaxosLeaseCanaries(t *testing.T) {
	seeds := simSeeds(250) * 2
	ms := memberships()
	names := slices.Sorted(maps.Keys(ms))
	for _, c := range paxos.LeaseCanaries {
		t.Run(c.String(), func(t *testing.T) {
			for seed := range uint64(seeds) {
				for _, name := range names {
					if err := runMultiLeaseSim(seed, ms[name], c, 1500); err != nil {
						t.Logf("caught at seed %d on %s: %v", seed, name, err)
						return
					}
				}
			}
			t.Fatalf("canary %v not caught in %d seeds", c, seeds)
		})
	}
}
