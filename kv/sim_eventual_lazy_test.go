package kv

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/wrn"
)

// A write asks W replicas for a durable acknowledgement and the others
// lazily (eventual.writeOp). Here a node that holds no replica of the
// range coordinates W=1 writes: one replica is asked synced, two lazily.
// The moment each write is acknowledged, all three replica nodes crash,
// losing what their disks had not synced, and the coordinator is cut
// off from them, so that no hint or repair reaches them. At least one
// replica must still hold the write when they come back: the one whose
// answer counted.
//
// Two ways: as is, where the canary that counts a lazy answer toward W
// is caught (a lazy replica often answers before the synced one has
// written); and with one replica refusing every write (skewed), so that
// when it is the one asked synced the lazy ones are asked again, synced:
// each finds the version it stored lazily and must sync its WAL before
// it answers. The canary that answers then without the sync is caught.
func TestSimEventualLazyReplicas(t *testing.T) {
	for _, c := range []struct {
		name   string
		skewed bool
		hooks  eventual.Hooks
		canary bool
	}{
		{"lazy answers wait", false, eventual.Hooks{}, false},
		{"canary LazyCountsTowardW", false, eventual.Hooks{LazyCountsTowardW: true}, true},
		{"asked again, synced", true, eventual.Hooks{}, false},
		{"canary StaleUnsynced", true, eventual.Hooks{StaleUnsynced: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			lost := lazyWritesLost(t, c.hooks, 12, c.skewed)
			switch {
			case !c.canary && len(lost) > 0:
				t.Fatalf("acknowledged W=1 writes on no replica after the crash: %v", lost)
			case c.canary && len(lost) == 0:
				t.Fatal("the canary went unnoticed: every acknowledged write survived")
			case len(lost) > 0:
				t.Logf("caught: acknowledged writes lost: %v", lost)
			}
		})
	}
}

// lazyWritesLost runs writes rounds of TestSimEventualLazyReplicas
// and returns the keys of the acknowledged writes no replica held after.
// With skewed, the clock of one replica's node runs 3 s behind the
// others': it refuses every version the coordinator stamps (ahead of its
// clock by more than the maximum offset, eventual_clock.go rule 1), at
// once, so that when it is the replica asked synced, the lazy ones are
// asked again a few milliseconds after they stored the record.
func lazyWritesLost(t *testing.T, hooks eventual.Hooks, writes int, skewed bool) []string {
	ks := catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1}
	var behind uint64 // the skewed node, once known
	c := newSimClusterWith(t, 1, 4, []catalog.KeyspaceDescriptor{ks}, func(c *simCluster) {
		c.nodeConfig = func(id uint64, cfg *NodeConfig) {
			cfg.evHooks = hooks
			phys := cfg.PhysicalClock
			cfg.PhysicalClock = func() int64 {
				if id == behind {
					return phys() - int64(3*time.Second)
				}
				return phys()
			}
		}
	})
	rd := c.catalog().Ranges["ev"][0]
	var coord uint64
	var replicas []sim.NodeID
	for _, id := range c.ids {
		if rd.HasReplica(id) {
			replicas = append(replicas, sim.NodeID(id))
		} else {
			coord = id
		}
	}
	if skewed {
		behind = uint64(replicas[0])
	}
	n := c.node(coord)
	var lost []string
	for i := range writes {
		key := []byte(fmt.Sprintf("k%d", i))
		ksd, krd, err := n.node.ev.Lookup("ev", key)
		if err != nil {
			t.Fatal(err)
		}
		w, err := n.node.ev.NewEventualWrite(ksd, krd, key, wrn.Record{Value: []byte("v")}, catalog.QuorumOverride{W: 1})
		if err != nil {
			t.Fatal(err)
		}
		var res *eventual.WriteResult
		var heal func()
		w.Start(func(r eventual.WriteResult) {
			res = &r
			heal = c.s.Net().Partition(sim.Isolate(append([]sim.NodeID{sim.NodeID(coord)}, replicas...), sim.NodeID(coord)))
			for _, id := range replicas {
				c.s.Crash(id)
			}
		})
		c.require("the write", 5*time.Second, func() bool { return res != nil })
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		for _, id := range replicas {
			c.s.Restart(id)
		}
		c.require("the replicas to restart", 5*time.Second, func() bool {
			for _, id := range replicas {
				if c.node(uint64(id)) == nil {
					return false
				}
			}
			return true
		})
		held := false
		for _, id := range replicas {
			held = held || string(c.evRecord(t, uint64(id), krd, key).Value) == "v"
		}
		if !held {
			lost = append(lost, string(key))
		}
		heal()
		c.require("every range to elect a leader", 10*time.Second, c.allRangesLed)
	}
	return lost
}
