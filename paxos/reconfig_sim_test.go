package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

func members(geometry string, ids ...uint64) paxos.Membership {
	m := paxos.Membership{Geometry: geometry}
	for _, id := range ids {
		m.Voters = append(m.Voters, quorum.Node{ID: id})
	}
	return m
}

// reconfigs are the configurations the reconfiguration runs move
// between: growing, shrinking, replacing every voter, changing geometry.
var reconfigs = []paxos.Membership{
	members("majority", 1, 2, 3, 4, 5),
	members("flexible:4,2", 1, 2, 3, 4, 5),
	members("majority", 3, 4, 5),
	members("grid:2x2", 1, 2, 4, 5),
	members("majority", 1, 2, 3),
}

// runReconfigSim runs five nodes of which three start as voters, with
// faults, while the leader keeps changing the configuration.
func runReconfigSim(seed uint64, c paxos.Canary, steps int) error {
	cl := newCluster(seed, members("majority", 1, 2, 3), c, nil)
	for _, id := range []uint64{4, 5} {
		cl.addNode(id, paxos.Bootstrap(members("majority", 1, 2, 3)))
	}
	f := cl.drawFaults()
	next := 0
	for i := range steps {
		cl.randomStep(f)
		if cl.err != nil {
			return cl.err
		}
		if i%50 == 0 {
			if ls := cl.leaders(); len(ls) > 0 {
				if cl.nodes[ls[0]].rn.ProposeConfig(reconfigs[next%len(reconfigs)]) == nil {
					next++
				}
				cl.process()
			}
		}
	}
	return cl.heal(600)
}

func TestReconfigSim(t *testing.T) {
	seeds := simSeeds(250)
	for seed := range uint64(seeds) {
		if err := runReconfigSim(seed, paxos.CanaryNone, 2000); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestReconfigCanary: a leader that prepares only with the configurations
// it already knows is caught choosing over a slot that a configuration
// found only in the Promises had chosen.
func TestReconfigCanary(t *testing.T) {
	seeds := simSeeds(250) * 2
	for seed := range uint64(seeds) {
		if err := runReconfigSim(seed, paxos.CanaryKnownConfigsOnly, 2000); err != nil {
			t.Logf("caught at seed %d: %v", seed, err)
			return
		}
	}
	t.Fatalf("canary not caught in %d seeds", seeds)
}
