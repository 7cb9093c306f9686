package kv

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/store"
)

// mergePass is the catalog step of the merge driver, as Node.mergePass
// runs it in kvd: meta's proposal goes straight to meta's leader's store.
// The merges themselves run in the stores' ticks.
func (n *simNode) mergePass() {
	for _, t := range n.store.MergeTasks() {
		n.c.s.Tracef("n%d records the merge of range %d into %d", n.id, t.Right, t.Left)
		n.metaPropose(catalog.CatalogOp{Merge: &catalog.MergeRanges{Left: t.Left, Right: t.Right, Hi: t.Hi}}, func(res command.Result) {
			if res.Err == nil && n.c.splitCrashes && n.c.s.Rand().IntN(3) == 0 {
				n.c.crashSoon(n.id, "right after meta recorded a merge it led")
			}
		})
	}
}

// setMergeLimits sets every node's split and merge sizes, now and at
// their next starts: a node down meanwhile starts with the same (it used
// to start with merges off, so that a range it came back to lead never
// merged).
func (c *simCluster) setMergeLimits(rangeMax, mergeBelow int64) {
	c.rangeMaxBytes, c.mergeBelowBytes, c.mergeLimits = rangeMax, mergeBelow, true
	for _, id := range c.ids {
		if n := c.node(id); n != nil {
			n.store.Config.RangeMaxBytes, n.store.Config.MergeBelowBytes = rangeMax, mergeBelow
		}
	}
}

// startMergeBelow is a starting store's MergeBelowBytes: off (-1) until
// setMergeLimits.
func (c *simCluster) startMergeBelow() int64 {
	if !c.mergeLimits {
		return -1
	}
	return c.mergeBelowBytes
}

// checkNoStrayData requires that no node holds data under a range the
// catalog does not have (a merged range's prefix is emptied by the merge).
func (c *simCluster) checkNoStrayData() {
	cat := c.catalog()
	known := map[uint64]bool{}
	for _, rs := range cat.Ranges {
		for _, r := range rs {
			known[r.ID] = true
		}
	}
	for _, id := range c.ids {
		n := c.node(id)
		for rid := uint64(2); rid < 200; rid++ {
			if known[rid] {
				continue
			}
			keys := 0
			_ = command.EachData(n.store.DB, rid, nil, nil, func(_, _ []byte) (bool, error) { keys++; return true, nil })
			if keys > 0 {
				c.t.Errorf("n%d holds %d keys of range %d, which the catalog does not have", id, keys, rid)
			}
		}
	}
}

// mergeOnceSplit raises the limits (merges below 1 MiB, no splits below
// 1 MiB) once keyspace rk has split into three ranges or more, or 3/4
// into the faults. It returns where it keeps the most ranges rk had.
func (c *simCluster) mergeOnceSplit() *int {
	most, switched := 0, false
	var watch func()
	watch = func() {
		most = max(most, c.splitRanges())
		if !switched && (most >= 3 || c.s.Now() > simFaults*3/4) {
			switched = true
			c.s.Tracef("merges on: every range is small now")
			c.setMergeLimits(1<<20, 1<<20)
		}
		c.s.After(50*time.Millisecond, watch)
	}
	c.s.After(0, watch)
	return &most
}

// mergedBack waits until keyspace rk is one range again.
func (c *simCluster) mergedBack() {
	c.require("keyspace rk to merge back into one range", 60*time.Second, func() bool {
		if c.splitRanges() != 1 {
			return false
		}
		rd := c.catalog().Ranges["rk"][0]
		return rd.Span == (catalog.Span{})
	})
}

// TestSimMerges: a raft keyspace splits under the clients' writes (more
// than 40 bytes a range), then, halfway through the faults, its limits
// change so that every range is small (merges below 1 MiB, no splits
// below 1 MiB) and its ranges merge back, one pair at a time, while the
// clients go on under the nemesis (lossy links, crashes of a minority,
// and a crash, one time in three, of the node right after meta recorded
// a merge it led). The history is linearizable (every key read back at
// the end through the range the catalog names), no write with an
// idempotency key takes effect twice, the replicas agree, and no node
// keeps data under a range that merged away.
func TestSimMerges(t *testing.T) {
	for _, seed := range sim.Seeds(t, 3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, simSplitKeyspace, func(c *simCluster) {
				c.rangeMaxBytes, c.keys, c.splitCrashes = 40, 8, true
			})
			most := c.mergeOnceSplit()
			c.runWorkload(simShape{nodes: 3})
			c.mergedBack()
			c.check()
			c.checkNoStrayData()
			if *most < 3 {
				t.Fatalf("keyspace rk had at most %d ranges; want it split before it merged", most)
			}
			t.Logf("seed %d: split into up to %d ranges and merged back; %d crashes right after a split or merge", seed, *most, c.splitRestarts)
		})
	}
}

// TestSimMergeEmptied: ranges that split under writes and are then
// emptied (every key deleted) merge back under the default limit (a
// quarter of RangeMaxBytes), with no client running. A node is down
// while the keys are deleted: no range is subsumed while it is (a merge
// needs every replica to apply its subsume, and the subsumed range would
// serve nothing until the node came back), and the merges happen once it
// is back.
func TestSimMergeEmptied(t *testing.T) {
	for _, seed := range sim.Seeds(t, 2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, simSplitKeyspace, func(c *simCluster) {
				c.rangeMaxBytes, c.keys = 40, 8
			})
			c.runWorkload(simShape{nodes: 3})
			c.check()
			split := c.splitRanges()
			if split < 3 {
				t.Fatalf("keyspace rk has %d ranges; want it split", split)
			}
			c.setMergeLimits(40, 0)
			down := sim.NodeID(3)
			c.s.Crash(down)
			for k := range c.numKeys() {
				c.deleteKey(fmt.Appendf(nil, "k%d", k))
			}
			if err := c.s.RunFor(2 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, id := range c.ids {
				if n := c.node(id); n != nil {
					for rid, st := range n.store.RangeStatusesOnLoop() {
						if st.SubsumedInto != 0 {
							t.Fatalf("n%d: range %d was subsumed into %d while node %d was down", id, rid, st.SubsumedInto, down)
						}
					}
				}
			}
			if got := c.splitRanges(); got < split {
				t.Fatalf("keyspace rk has %d ranges with node %d down, had %d: nothing merges without it", got, down, split)
			}
			c.s.Restart(down)
			c.mergedBack()
			c.require("node 3 to catch up", 30*time.Second, func() bool { return c.converged() })
			c.checkReplicasAgree()
			c.checkNoStrayData()
			t.Logf("seed %d: %d ranges merged back into one", seed, split)
		})
	}
}

// deleteKey deletes key through the leader of the range the catalog
// names for it, retrying until the delete is applied.
func (c *simCluster) deleteKey(key []byte) {
	c.writeKey(command.Command{Op: command.OpDelete, Key: key})
}

// writeKey applies w, a put or a delete of a key of keyspace rk, through
// the leader of the range the catalog names for the key, retrying until
// it is applied (one attempt at a time).
func (c *simCluster) writeKey(w command.Command) {
	done, pending := false, false
	c.require(fmt.Sprintf("write %q", w.Key), 20*time.Second, func() bool {
		if done || pending {
			return done
		}
		for _, rd := range c.catalog().Ranges["rk"] {
			if !rd.Span.Contains(catalog.HashKey(w.Key)) {
				continue
			}
			leader := c.node(c.rangeLeader(rd.ID))
			if leader == nil {
				return false
			}
			cmd := w
			_, err := leader.store.StartPropose(rd.ID, &cmd, func(res command.Result) {
				pending, done = false, done || res.Err == nil
			})
			if err == nil {
				pending = true
				leader.round()
			}
		}
		return done
	})
}

// TestMergeCanary: a merge that does not wait for every replica of the
// right range to apply its subsume (kv/store/canary.go MergeWithoutWait)
// loses writes or leaves replicas that disagree, and the simulator
// catches it.
func TestMergeCanary(t *testing.T) {
	huntCanary(t, 20, func(tb testing.TB, seed uint64) {
		c := newSimClusterWith(tb, seed, 3, simSplitKeyspace, func(c *simCluster) {
			c.rangeMaxBytes, c.keys, c.canary = 40, 8, store.Canary{MergeWithoutWait: true}
		})
		c.mergeOnceSplit()
		c.runWorkload(simShape{nodes: 3})
		c.check()
		c.checkNoStrayData()
	})
}
