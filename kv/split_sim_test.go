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

// simSplitInterval is the period of the split driver's passes in the
// simulator (kvd's is splitInterval).
const simSplitInterval = 50 * time.Millisecond

// simSplitKeyspace is one raft range of three replicas, which splits
// under the clients' writes when its nodes' RangeMaxBytes is tiny.
var simSplitKeyspace = []catalog.KeyspaceDescriptor{{Name: "rk", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 1}}

// splitPass is one pass of the split driver, as Node.splitPass runs it in
// kvd, without waiting: meta's proposals go straight to meta's leader's
// store (the Peer service's Split call, without its network), and the
// split is proposed on this node's loop when meta answers. A range whose
// split is under way is not asked again for a second.
func (n *simNode) splitPass() {
	now := n.env.Now()
	for _, t := range n.store.SplitTasks() {
		if deadline, busy := n.splitting[t.Range]; busy && now < deadline {
			continue
		}
		if t.Catalog {
			n.c.s.Tracef("n%d records the split of range %d at %016x into %d", n.id, t.Range, t.Mid, t.NewRange)
			n.metaPropose(catalog.CatalogOp{Split: &catalog.SplitRange{Range: t.Range, Mid: t.Mid, NewRange: t.NewRange}}, nil)
			continue
		}
		rangeID := t.Range
		n.splitting[rangeID] = now + time.Second
		n.metaPropose(catalog.CatalogOp{ReserveRange: rangeID}, func(res command.Result) {
			if res.Err != nil {
				return
			}
			n.env.After(0, func() {
				if n.c.node(n.id) != n {
					return // crashed since
				}
				n.c.s.Tracef("n%d splits range %d into %d", n.id, rangeID, res.ID)
				_, err := n.store.StartSplit(rangeID, res.ID, func(res command.Result) {
					if res.Err == nil && n.c.splitCrashes && n.c.s.Rand().IntN(3) == 0 {
						n.c.crashSoon(n.id, "right after it applied a split it led")
					}
				})
				if err != nil {
					n.c.s.Tracef("n%d: split of range %d refused: %v", n.id, rangeID, err)
				}
				n.round()
			})
		})
	}
}

// metaPropose proposes op on meta's leader, if there is one, and calls
// done (if set) with its result.
func (n *simNode) metaPropose(op catalog.CatalogOp, done func(command.Result)) {
	leader := n.c.metaLeader()
	if leader == nil {
		return
	}
	cmd := &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(op)}
	if _, err := leader.store.StartPropose(catalog.MetaRangeID, cmd, func(res command.Result) {
		if done != nil {
			done(res)
		}
	}); err == nil {
		leader.round()
	}
}

// crashSoon crashes node id a moment from now, if a majority stays up,
// and restarts it soon after.
func (c *simCluster) crashSoon(id uint64, why string) {
	if !c.oneMoreMayCrash() {
		return
	}
	node := sim.NodeID(id)
	c.s.After(0, func() {
		if !c.s.Up(node) {
			return
		}
		c.s.Tracef("crash n%d %s", id, why)
		c.splitRestarts++
		c.s.Crash(node)
		c.s.After(time.Duration(20+c.s.Rand().IntN(200))*time.Millisecond, func() {
			if !c.s.Up(node) {
				c.s.Restart(node)
			}
		})
	})
}

// splitRanges counts the ranges of keyspace rk in the catalog.
func (c *simCluster) splitRanges() int { return len(c.catalog().Ranges["rk"]) }

// TestSimSplits: a raft keyspace whose ranges split whenever they hold
// more than 40 bytes (two or three of the clients' keys) splits again and
// again while the clients write, read and compare-and-swap eight keys
// under the nemesis (lossy links, crashes of a minority), and the leader
// of a split crashes, one time in three, right after it applied it. The
// history is linearizable (nothing acknowledged is lost: the final reads
// see it), no write with an idempotency key takes effect twice, every
// range's replicas converge on the same data (the new ranges' too: a
// replica that was down during a split catches up by the log or a
// snapshot of the new range), and the range count grew.
func TestSimSplits(t *testing.T) {
	for _, seed := range sim.Seeds(t, 3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, simSplitKeyspace, func(c *simCluster) {
				c.rangeMaxBytes, c.keys, c.splitCrashes = 40, 8, true
			})
			c.runWorkload(simShape{nodes: 3})
			c.check()
			if n := c.splitRanges(); n < 3 {
				t.Fatalf("keyspace rk has %d ranges after the run; want it split more than once\n%s", n, c.describeRanges())
			}
			t.Logf("seed %d: %d ranges, %d crashes right after a split", seed, c.splitRanges(), c.splitRestarts)
		})
	}
}

// TestSimSplitCatchUp: a node down while its range splits comes back, and
// its replicas of both halves catch up with the others (the old range by
// its log or a snapshot, the new one from the new range's leader), with
// the same data.
func TestSimSplitCatchUp(t *testing.T) {
	for _, seed := range sim.Seeds(t, 2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, simSplitKeyspace, func(c *simCluster) { c.rangeMaxBytes, c.keys = 40, 8 })
			down := sim.NodeID(3)
			c.s.Crash(down)
			c.startClients()
			c.require("the range to split while node 3 is down", 20*time.Second, func() bool { return c.splitRanges() >= 2 })
			c.s.Restart(down)
			c.require("node 3 to hold every range", 20*time.Second, func() bool {
				n := c.node(3)
				if n == nil {
					return false
				}
				for _, rd := range c.catalog().Ranges["rk"] {
					if n.store.Replicas[rd.ID] == nil {
						return false
					}
				}
				return true
			})
			c.check()
		})
	}
}

// TestSplitCanaries: the simulator catches the bug splits must not have
// (kv/store/canary.go): a range that keeps serving the half it gave away
// (writes no read sees, reads that miss what the new range holds).
func TestSplitCanaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		bug  store.Canary
	}{
		{"serve-moved-keys", store.Canary{ServeMovedKeys: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			huntCanary(t, 20, func(tb testing.TB, seed uint64) {
				c := newSimClusterWith(tb, seed, 3, simSplitKeyspace, func(c *simCluster) {
					c.rangeMaxBytes, c.keys, c.canary = 40, 8, tc.bug
				})
				c.runWorkload(simShape{nodes: 3})
				c.check()
			})
		})
	}
}

// A range larger than one storage batch is not split (its right half
// would not fit the split's batch, and the range would stop): here it
// grew to twice MaxBatchBytes under a high RangeMaxBytes, and the nodes
// restart with a tiny one. It stays whole and serves, and no replica of
// it fails.
func TestSimTooLargeToSplit(t *testing.T) {
	c := newSimClusterWith(t, 1, 3, simSplitKeyspace, func(c *simCluster) { c.rangeMaxBytes, c.maxBatchBytes = 1<<20, 8<<10 })
	rd := c.catalog().Ranges["rk"][0]
	for i := range 40 {
		leader := c.node(c.rangeLeader(rd.ID))
		done := false
		cmd := &command.Command{Op: command.OpPut, Key: fmt.Appendf(nil, "k%02d", i), Value: make([]byte, 400)}
		if _, err := leader.store.StartPropose(rd.ID, cmd, func(res command.Result) { done = res.Err == nil }); err != nil {
			t.Fatal(err)
		}
		leader.round()
		c.require(fmt.Sprintf("put %d", i), time.Second, func() bool { return done })
	}
	c.rangeMaxBytes = 40
	for _, id := range c.ids {
		c.s.Crash(sim.NodeID(id))
		c.s.Restart(sim.NodeID(id))
		c.require(fmt.Sprintf("range %d led again after n%d restarted", rd.ID, id), 5*time.Second, func() bool { return c.rangeLeader(rd.ID) != 0 })
	}
	if err := c.s.RunFor(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := c.splitRanges(); n != 1 {
		t.Fatalf("the range split in %d though it is larger than a batch", n)
	}
	for _, id := range c.ids {
		if f := c.node(id).store.Failed; len(f) != 0 {
			t.Fatalf("n%d has failed ranges: %v", id, f)
		}
	}
	if leader := c.rangeLeader(rd.ID); leader == 0 || !c.node(leader).store.Unsplittable(rd.ID) {
		t.Fatalf("range %d's leader n%d did not find it too large to split", rd.ID, leader)
	}
	c.startClients()
	c.check()
}
