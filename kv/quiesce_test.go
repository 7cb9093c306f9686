package kv

import (
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// An idle cluster quiesces, and when the node leading quiesced ranges
// crashes, the survivors notice by its silence (no beacons) and elect new
// leaders: nothing else would wake them, since a quiesced follower does
// not count toward an election.
func TestSimQuiescedLeaderCrash(t *testing.T) {
	sim.RunSeeds(t, 8, func(t *testing.T, seed uint64) { quiescedLeaderCrash(t, seed) })
}

func quiescedLeaderCrash(t *testing.T, seed uint64) {
	c := newSimCluster(t, seed, 3)
	cat := c.node(1).store.Catalog()
	var all []*catalog.RangeDescriptor
	for _, ks := range simKeyspaces {
		all = append(all, cat.Ranges[ks.Name]...)
	}
	c.require("the raft and paxos ranges of the idle cluster to quiesce", 10*time.Second, func() bool {
		for _, rd := range all {
			for _, id := range c.ids {
				if r := c.node(id).store.Replicas[rd.ID]; r == nil || !r.Quiesced {
					return false
				}
			}
		}
		return true
	})
	// Crash the node leading the most ranges.
	led := map[uint64]int{}
	var ranges []uint64
	for _, rd := range all {
		led[c.rangeLeader(rd.ID)]++
		ranges = append(ranges, rd.ID)
	}
	victim := uint64(1)
	for id, n := range led {
		if n > led[victim] {
			victim = id
		}
	}
	var followersQuiesced int
	for _, id := range c.ids {
		if id != victim {
			followersQuiesced += len(c.node(id).store.Quiesce.Followers[victim])
		}
	}
	if followersQuiesced == 0 {
		t.Fatalf("no follower quiesced under node %d", victim)
	}
	c.s.Crash(sim.NodeID(victim))
	c.require("every range to have a leader on a live node", 10*time.Second, func() bool {
		for _, id := range ranges {
			if l := c.rangeLeader(id); l == 0 || l == victim {
				return false
			}
		}
		return true
	})
	// The survivors woke by silence, not by a message from the dead node.
	for _, id := range c.ids {
		if id != victim && len(c.node(id).store.Quiesce.Followers[victim]) != 0 {
			t.Fatalf("node %d still has ranges quiesced under dead node %d", id, victim)
		}
	}
}
