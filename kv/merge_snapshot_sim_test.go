package kv

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// TestSimMergeBySnapshot: a node that misses the merge entries of a range
// (cut off from that range alone, right after it applied a subsume into
// it) catches up by a snapshot of the merged range, past the merges. Its
// replicas of the ranges merged away, subsumed and waiting for merge
// entries that will never come, go then: their data, log and Raft state,
// as a merge applied here removes them, and they keep refusing their keys
// as moved. Before, they stayed: a replica still running until the
// node's catalog changed again (found by TestSimMerges seed 22: "n3 holds
// 6 keys of range 14, which the catalog does not have" at the end of the
// run), and for good the state of one the node did not start after a
// restart, the catalog no longer listing it (its state waits in Pebble
// for the merge entry, which a merge here reads).
//
// "running": the node is only cut off; "restarted": it also restarts,
// with the merges in its catalog, before it is let back.
func TestSimMergeBySnapshot(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "running", true: "restarted"}[restart]
		t.Run(name, func(t *testing.T) {
			for _, seed := range sim.Seeds(t, 2) {
				t.Run(fmt.Sprint(seed), func(t *testing.T) { mergeBySnapshot(t, seed, restart) })
			}
		})
	}
}

func mergeBySnapshot(t *testing.T, seed uint64, restart bool) {
	c := newSimClusterWith(t, seed, 3, simSplitKeyspace, func(c *simCluster) {
		c.rangeMaxBytes, c.keys = 40, 8
	})
	for k := range c.numKeys() {
		c.writeKey(command.Command{Op: command.OpPut, Key: fmt.Appendf(nil, "k%d", k), Value: []byte("0123456789")})
	}
	c.require("keyspace rk to split", 20*time.Second, func() bool { return c.splitRanges() >= 2 && c.converged() })
	// The keyspace's first range, which no merge takes away: every merge
	// from here on is into it.
	left := c.catalog().Ranges["rk"][0].ID
	c.setMergeLimits(1<<20, 1<<20)

	// The first follower of the left range to apply a subsume into it is
	// cut off from it at once: the merge is proposed only once every
	// replica reported its subsume, so its entry does not reach it.
	var victim uint64
	c.require("a follower of the left range to apply a subsume into it", 20*time.Second, func() bool {
		for _, id := range c.ids {
			if n := c.node(id); n != nil && c.rangeLeader(left) != id && subsumedInto(n, left) {
				victim = id
				return true
			}
		}
		return false
	})
	c.s.Tracef("n%d is cut off from range %d", victim, left)
	cut := true
	c.drop = func(from, rangeID uint64, m consensus.PeerMessage) bool {
		return cut && rangeID == left && (from == victim || m.To() == victim)
	}
	// The other two merge every range back into the left one, record the
	// merges, and compact the left range's log past them.
	c.mergedBack()
	v := c.node(victim)
	c.require(fmt.Sprintf("n%d's catalog to have the merges", victim), 10*time.Second, func() bool {
		return len(v.store.Catalog().Ranges["rk"]) == 1
	})
	for i := range 100 {
		c.writeKey(command.Command{Op: command.OpPut, Key: []byte("k0"), Value: fmt.Appendf(nil, "v%d", i)})
	}
	merged := mergedAway(c, v)
	if len(merged) == 0 {
		t.Fatalf("n%d holds no state of a range merged away; want the ranges merged while it was cut off", victim)
	}
	if restart {
		// Durable, so that the restarted node's catalog has the merges and
		// it does not start the ranges merged away.
		if err := v.db.SyncWAL(); err != nil {
			t.Fatal(err)
		}
		c.s.Crash(sim.NodeID(victim))
		c.s.Restart(sim.NodeID(victim))
		v = c.node(victim)
		for _, rid := range merged {
			if v.store.Replicas[rid] != nil {
				t.Fatalf("restarted n%d started range %d, which its catalog no longer has", victim, rid)
			}
		}
	}

	snapshot := false
	c.received = func(to, rangeID uint64, m consensus.PeerMessage) {
		snapshot = snapshot || to == victim && rangeID == left && m.Raft != nil && m.Raft.Type == raft.MsgSnap
	}
	cut = false
	c.require(fmt.Sprintf("n%d to catch up", victim), 20*time.Second, func() bool { return snapshot && c.converged() })
	c.checkReplicasAgree()
	c.checkNoStrayData()
	for _, rid := range merged {
		if why := holdsState(v.db, rid); why != "" {
			t.Errorf("n%d holds %s of range %d, merged away", victim, why, rid)
		}
		// A request to it (from a node whose catalog is behind) is told
		// its key moved, as after a merge applied here.
		_, err := v.store.StartPropose(rid, &command.Command{Op: command.OpPut, Key: []byte("k0"), Value: []byte("x")}, func(command.Result) {})
		if !errors.Is(err, store.ErrKeyMoved) {
			t.Errorf("n%d: a write to range %d, merged away: %v, want ErrKeyMoved", victim, rid, err)
		}
	}
	t.Logf("seed %d: n%d caught up on range %d by a snapshot past the merges of ranges %v", seed, victim, left, merged)
}

// subsumedInto reports whether node n holds a replica subsumed into range
// into.
func subsumedInto(n *simNode, into uint64) bool {
	sts := n.store.RangeStatusesOnLoop()
	for _, rid := range slices.Sorted(maps.Keys(sts)) {
		if sts[rid].SubsumedInto == into {
			return true
		}
	}
	return false
}

// mergedAway returns the ranges the catalog no longer has whose replica
// state node n still holds.
func mergedAway(c *simCluster, n *simNode) []uint64 {
	known := map[uint64]bool{}
	for _, rs := range c.catalog().Ranges {
		for _, rd := range rs {
			known[rd.ID] = true
		}
	}
	var out []uint64
	for rid := uint64(2); rid < 200; rid++ {
		if !known[rid] && holdsState(n.db, rid) != "" {
			out = append(out, rid)
		}
	}
	return out
}

// holdsState says what replica state of range rid db holds ("" if none):
// a merge leaves only the range's split state, as a tombstone.
func holdsState(db *storage.DB, rid uint64) string {
	if has, err := consensus.HasRangeState(db, rid); err != nil || has {
		return fmt.Sprintf("Raft state (%v)", err)
	}
	if _, err := db.Get(storage.AppliedStateKey(rid)); !errors.Is(err, storage.ErrNotFound) {
		return fmt.Sprintf("an applied state (%v)", err)
	}
	keys := 0
	if err := command.EachData(db, rid, nil, nil, func(_, _ []byte) (bool, error) { keys++; return true, nil }); err != nil || keys > 0 {
		return fmt.Sprintf("%d keys (%v)", keys, err)
	}
	return ""
}
