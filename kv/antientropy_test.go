package kv

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/wrn"
)

// Two replicas diverged by direct writes (each holds keys the other
// lacks, and one holds a newer version or a tombstone of a shared key)
// converge after one anti-entropy exchange; the next finds nothing.
func TestEventualAntiEntropy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	rangeID := c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, b := c.nodes[0], c.nodes[1]
	write := func(n *Node, key string, value string, tombstone bool) wrn.Record {
		t.Helper()
		ts, err := n.ev.Clock.Now()
		if err != nil {
			t.Fatal(err)
		}
		rec := wrn.Record{Version: wrn.Version{Timestamp: ts, Node: n.store.NodeID()}, Value: []byte(value), Tombstone: tombstone}
		if tombstone {
			rec.Value = nil
		}
		if _, _, err := n.ev.WriteLocalRecord(rangeID, []byte(key), rec, false); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	write(a, "shared", "old", false)
	write(b, "shared", "old", false)
	write(a, "gone", "v", false)
	write(b, "gone", "v", false)
	for i := range 50 {
		write(a, "a"+string(rune('A'+i)), "from a", false)
	}
	write(b, "only-b", "from b", false)
	newer := write(b, "shared", "new", false)
	tomb := write(a, "gone", "", true)

	r := a.store.Catalog().Ranges["ev"][0]
	m := a.store.Config.Metrics
	mismatches, err := a.ev.AntiEntropyExchange(ctx, r, b.store.NodeID())
	if err != nil || mismatches == 0 {
		t.Fatalf("first exchange: %d mismatching leaves, %v; want some", mismatches, err)
	}
	if got := kvtest.MetricValue(t, m.AntiEntropyMismatches); got != float64(mismatches) {
		t.Fatalf("mismatches metric = %v, want %d", got, mismatches)
	}
	la, err := a.ev.LocalMerkleLeaves(rangeID, eventual.AntiEntropyDepth)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.ev.LocalMerkleLeaves(rangeID, eventual.AntiEntropyDepth)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(la, lb) {
		t.Fatal("trees still differ after one exchange")
	}
	for _, n := range []*Node{a, b} {
		if rec, _ := n.ev.Records.Read(rangeID, []byte("shared")); rec.Version != newer.Version || string(rec.Value) != "new" {
			t.Fatalf("node %d: shared = %+v, want the newer version", n.store.NodeID(), rec)
		}
		if rec, _ := n.ev.Records.Read(rangeID, []byte("gone")); rec.Version != tomb.Version || !rec.Tombstone {
			t.Fatalf("node %d: gone = %+v, want the tombstone", n.store.NodeID(), rec)
		}
		if rec, _ := n.ev.Records.Read(rangeID, []byte("only-b")); string(rec.Value) != "from b" {
			t.Fatalf("node %d: only-b = %+v", n.store.NodeID(), rec)
		}
		if rec, _ := n.ev.Records.Read(rangeID, []byte("aZ")); string(rec.Value) != "from a" {
			t.Fatalf("node %d: aZ = %+v", n.store.NodeID(), rec)
		}
	}
	if mismatches, err := b.ev.AntiEntropyExchange(ctx, r, a.store.NodeID()); err != nil || mismatches != 0 {
		t.Fatalf("second exchange: %d mismatching leaves, %v; want none", mismatches, err)
	}
}

// The background loop brings a replica that missed writes level.
func TestEventualAntiEntropyLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	rangeID := c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, cn := c.nodes[0], c.nodes[2]
	ts, err := a.ev.Clock.Now()
	if err != nil {
		t.Fatal(err)
	}
	rec := wrn.Record{Version: wrn.Version{Timestamp: ts, Node: a.store.NodeID()}, Value: []byte("v")}
	if _, _, err := a.ev.WriteLocalRecord(rangeID, []byte("k"), rec, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		n.ev.StartAntiEntropy(5 * time.Millisecond)
	}
	waitUntil(t, "c has k", func() bool {
		got, _ := cn.ev.Records.Read(rangeID, []byte("k"))
		return string(got.Value) == "v"
	})
}
