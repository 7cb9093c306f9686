package kv

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// simSplitInterval is the period of the split driver's passes in the
// simulator (kvd's is splitInterval).
const simSplitInterval = 50 * time.Millisecond

// simSweepInterval is the period of the sweeps of split eventual ranges
// in the simulator (kvd runs them with every split pass): slower than the
// splits, so that replicas serve ranges not swept yet (pulling keys from
// their old ranges) for long stretches.
const simSweepInterval = 400 * time.Millisecond

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
	n.eventualSplitPass(now)
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

// eventualSplitPass is Node.eventualSplitPass without waiting, and
// without the sweeps, which run on a slower timer of their own
// (simSweepInterval): the eventual ranges' splits proposed to meta's
// leader.
func (n *simNode) eventualSplitPass(now time.Duration) {
	for _, t := range n.node.ev.SplitTasks(int64(n.c.rangeMaxBytes)) {
		if deadline, busy := n.splitting[t.Op.Range]; busy && now < deadline {
			continue
		}
		n.splitting[t.Op.Range] = now + time.Second
		op := t.Op
		n.c.s.Tracef("n%d splits eventual range %d (%d bytes) at %016x", n.id, op.Range, t.Bytes, op.Mid)
		n.metaPropose(catalog.CatalogOp{SplitEventual: &op}, func(res command.Result) {
			if res.Err != nil {
				n.c.s.Tracef("n%d: split of eventual range %d refused: %v", n.id, op.Range, res.Err)
				return
			}
			n.c.evSplits++
			n.c.s.Tracef("eventual range %d split: new range %d", op.Range, res.ID)
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

// splitRanges counts the ranges of the cluster's first keyspace (rk, or
// pk for paxos) in the catalog.
func (c *simCluster) splitRanges() int { return len(c.catalog().Ranges[c.keyspaces[0].Name]) }

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
func TestSimSplits(t *testing.T) { simSplits(t, simSplitKeyspace) }

// simSplits runs TestSimSplits's scenario on the one keyspace of ks (raft
// or paxos).
func simSplits(t *testing.T, ks []catalog.KeyspaceDescriptor) {
	for _, seed := range sim.Seeds(t, 3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			c := newSimClusterWith(t, seed, 3, ks, func(c *simCluster) {
				c.rangeMaxBytes, c.keys, c.splitCrashes = 40, 8, true
			})
			c.runWorkload(simShape{nodes: 3})
			c.check()
			if n := c.splitRanges(); n < 3 {
				t.Fatalf("keyspace %s has %d ranges after the run; want it split more than once\n%s", ks[0].Name, n, c.describeRanges())
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
				for _, rd := range c.catalog().Ranges[c.keyspaces[0].Name] {
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

// TestSplitCanaries: the simulator catches the bugs splits must not have
// (kv/store/canary.go): a range that keeps serving the half it gave away
// (writes no read sees, reads that miss what the new range holds), and a
// split that loses its right half's last key.
func TestSplitCanaries(t *testing.T) { splitCanaries(t, simSplitKeyspace) }

// splitCanaries hunts TestSplitCanaries's canaries in the one keyspace of
// ks (raft or paxos).
func splitCanaries(t *testing.T, ks []catalog.KeyspaceDescriptor) {
	for _, tc := range []struct {
		name string
		bug  store.Canary
	}{
		{"serve-moved-keys", store.Canary{ServeMovedKeys: true}},
		{"split-drops-last-key", store.Canary{SplitDropsLastKey: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			huntCanary(t, 20, func(tb testing.TB, seed uint64) {
				c := newSimClusterWith(tb, seed, 3, ks, func(c *simCluster) {
					c.rangeMaxBytes, c.keys, c.canary = 40, 8, tc.bug
				})
				c.runWorkload(simShape{nodes: 3})
				c.check()
			})
		})
	}
}

// A range far larger than one storage batch splits all the same (its
// split is an ingested file, not a batch): here it grows to about ten
// times MaxBatchBytes under a RangeMaxBytes that never splits it, then
// the limit is lowered and the clients run under the nemesis while it
// splits again and again. The history is linearizable, the replicas of
// every range agree, and every key written before is read back, on every
// replica of the range the catalog names for it, and on no other. The
// same for a paxos keyspace (subtest paxos).
func TestSimLargeSplit(t *testing.T) {
	for _, ks := range [][]catalog.KeyspaceDescriptor{simSplitKeyspace, simPaxosSplitKeyspace} {
		t.Run(string(ks[0].Mode), func(t *testing.T) { simLargeSplit(t, ks) })
	}
}

func simLargeSplit(t *testing.T, keyspaces []catalog.KeyspaceDescriptor) {
	name := keyspaces[0].Name
	c := newSimClusterWith(t, 1, 3, keyspaces, func(c *simCluster) {
		c.rangeMaxBytes, c.maxBatchBytes, c.splitCrashes = 1<<30, 8<<10, true
	})
	rd := c.catalog().Ranges[name][0]
	const keys = 200
	value := func(i int) []byte { return fmt.Appendf(nil, "%0400d", i) }
	// Each put goes to the range's leader, again if leadership moved
	// before it was applied (an election while the range is young).
	for i := range keys {
		cmd := &command.Command{Op: command.OpPut, Key: fmt.Appendf(nil, "big%03d", i), Value: value(i)}
		for attempt := 1; ; attempt++ {
			var leader *simNode
			c.require(fmt.Sprintf("a leader for put %d", i), 5*time.Second, func() bool {
				leader = c.node(c.rangeLeader(rd.ID))
				return leader != nil
			})
			var answered, ok bool
			_, err := leader.store.StartPropose(rd.ID, cmd, func(res command.Result) { answered, ok = true, res.Err == nil })
			if err == nil {
				leader.round()
				c.require(fmt.Sprintf("put %d", i), time.Second, func() bool { return answered })
			}
			if ok {
				break
			}
			if attempt == 5 {
				t.Fatalf("put %d failed %d times (%v)", i, attempt, err)
			}
		}
	}
	c.rangeMaxBytes = 24 << 10
	for _, id := range c.ids {
		c.node(id).store.Config.RangeMaxBytes = c.rangeMaxBytes
	}
	c.runWorkload(simShape{nodes: 3})
	c.check()
	if n := c.splitRanges(); n < 3 {
		t.Fatalf("the range split into %d ranges, want at least 3\n%s", n, c.describeRanges())
	}
	cat := c.catalog()
	for i := range keys {
		key := fmt.Appendf(nil, "big%03d", i)
		for _, r := range cat.Ranges[name] {
			holds := r.Span.Contains(catalog.HashKey(key))
			for _, rep := range r.Replicas {
				raw, err := c.node(rep.NodeID).store.DB.Get(storage.DataKey(r.ID, key))
				switch {
				case !holds && err == nil:
					t.Errorf("n%d: range %d holds %q, which is not in its span", rep.NodeID, r.ID, key)
				case !holds:
				case err != nil:
					t.Errorf("n%d: range %d lost %q: %v", rep.NodeID, r.ID, key, err)
				default:
					if v, err := command.DecodeValue(raw); err != nil || !bytes.Equal(v.Data, value(i)) {
						t.Errorf("n%d: range %d holds %q = %.20q (%v)", rep.NodeID, r.ID, key, v.Data, err)
					}
				}
			}
		}
	}
	t.Logf("%d ranges; %d crashes right after a split", c.splitRanges(), c.splitRestarts)
}
