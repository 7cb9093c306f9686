package kv

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// simPaxosSplitKeyspace is one paxos range of three replicas, which
// splits under the clients' writes when its nodes' RangeMaxBytes is tiny.
var simPaxosSplitKeyspace = []catalog.KeyspaceDescriptor{{Name: "pk", Mode: catalog.ModePaxos, Replicas: 3, Ranges: 1}}

// TestSimPaxosSplits is TestSimSplits for a paxos keyspace: its ranges
// split whenever they hold more than 40 bytes, again and again, while the
// clients write, read and compare-and-swap eight keys under the nemesis
// (lossy links, crashes of a minority), and the leader of a split crashes,
// one time in three, right after it applied it. The history is
// linearizable (nothing acknowledged is lost: the final reads see it),
// no write with an idempotency key takes effect twice, every range's
// replicas converge on the same data (a replica that was down during a
// split gets the new range's snapshot from its leader), and the range
// count grew.
func TestSimPaxosSplits(t *testing.T) { simSplits(t, simPaxosSplitKeyspace) }

// TestSimPaxosSplitCatchUp: a node down while its paxos range splits
// comes back; its replica of the old range catches up by the log or a
// snapshot, and its replica of the new range, which it starts from the
// catalog without having applied the split, founds no log of its own: it
// joins empty and waits for the new range's leader's snapshot (unless it
// applied the split from the old range's log first: then it founds the
// new range at the split's slot as the others did). Then every replica
// holds the same data. The seeds must show the joiner at least once.
func TestSimPaxosSplitCatchUp(t *testing.T) {
	// Seeds 4-7, 9-11 of 1-12 had the joiner when the count was last set.
	seeds := sim.Seeds(t, 4)
	joiners := 0
	defer func() {
		if joiners == 0 && len(seeds) > 1 && !t.Failed() {
			t.Error("no seed had node 3 start a range born of a split as a joiner")
		}
	}()
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, simPaxosSplitKeyspace, func(c *simCluster) { c.rangeMaxBytes, c.keys = 40, 8 })
			down := sim.NodeID(3)
			c.s.Crash(down)
			c.startClients()
			c.require("the range to split while node 3 is down", 20*time.Second, func() bool { return c.splitRanges() >= 2 })
			c.s.Restart(down)
			// joining: whether node 3's replica of each range born while it
			// was down was a joiner when first seen (checked after every
			// step of the simulation).
			joining := map[uint64]bool{}
			c.require("node 3 to hold every range", 20*time.Second, func() bool {
				n := c.node(3)
				if n == nil {
					return false
				}
				all := true
				for _, rd := range c.catalog().Ranges["pk"] {
					r := n.store.Replicas[rd.ID]
					if r == nil {
						all = false
						continue
					}
					if _, seen := joining[rd.ID]; !seen && rd.Parent != 0 {
						joining[rd.ID] = r.Core.Status().Joining
					}
				}
				return all
			})
			if len(joining) == 0 {
				t.Fatal("no range was born of a split while node 3 was down")
			}
			// A range first seen founded is one whose split node 3 applied
			// from the old range's log as it caught up: founded at the
			// split's slot like the others'.
			for id, j := range joining {
				if j {
					joiners++
				}
				t.Logf("seed %d: node 3 started range %d as a joiner: %v", seed, id, j)
			}
			c.check()
		})
	}
}

// TestPaxosSplitCanaries: the simulator catches, in a paxos keyspace, the
// bugs splits must not have (kv/store/canary.go): a range that keeps
// serving the half it gave away, and a split that loses its right half's
// last key.
func TestPaxosSplitCanaries(t *testing.T) { splitCanaries(t, simPaxosSplitKeyspace) }
