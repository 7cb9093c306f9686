package kv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/wrn"
)

// A coordinator whose catalog still names the range a key had before a
// split routes again (kv/eventual/split.go, "Routing again"): the new
// range's replica on one node moved to a fourth node after the split, so
// that node answers the old range's requests for the key with
// ErrKeyMoved; a read and a write that need every replica (R=3, W=3),
// sent with the old range's descriptor, then succeed on the new range's
// replicas, the write with the version it was stamped with.
func TestEventualSplitRoutesAgain(t *testing.T) {
	c := newSimClusterWith(t, 1, 4, []catalog.KeyspaceDescriptor{{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1}})
	n1 := c.node(1)
	ks, old, err := n1.node.ev.Lookup("ev", []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	left, _, _ := old.Span.Split()
	var key []byte
	for i := 0; key == nil; i++ {
		if k := []byte(fmt.Sprintf("k%d", i)); !left.Contains(catalog.HashKey(k)) {
			key = k
		}
	}
	all := catalog.QuorumOverride{W: 3, R: 3}
	c.evWrite(t, n1, ks, old, key, wrn.Record{Value: []byte("v1")}, all)

	c.proposeCatalog(catalog.CatalogOp{SplitEventual: &catalog.SplitEventual{Range: old.ID, Mid: left.Hi}})
	var moved *catalog.RangeDescriptor
	c.require("the split in every node's catalog", 5*time.Second, func() bool {
		for _, id := range c.ids {
			if len(c.node(id).store.Catalog().Ranges["ev"]) != 2 {
				return false
			}
		}
		moved = c.catalog().Ranges["ev"][1]
		return true
	})
	var from, to uint64
	for _, id := range c.ids {
		switch {
		case !moved.HasReplica(id):
			to = id
		case id != 1:
			from = id
		}
	}
	c.s.Tracef("range %d's replica moves from n%d to n%d", moved.ID, from, to)
	c.proposeCatalog(catalog.CatalogOp{Move: &catalog.MoveReplica{Range: moved.ID, From: from,
		To: catalog.ReplicaDescriptor{NodeID: to, Zone: fmt.Sprintf("z%d", to), Weight: 1}}})
	c.require("the move to end: n%d's replica filled, n%d's gone", 20*time.Second, func() bool {
		r := c.catalog().Ranges["ev"][1]
		return r.HasReplica(to) && !r.IsFilling(to) && !r.Holds(from)
	})

	read := func(rd *catalog.RangeDescriptor) eventual.ReadResult {
		t.Helper()
		op, err := n1.node.ev.NewEventualRead(ks, rd, key, all)
		if err != nil {
			t.Fatal(err)
		}
		var res *eventual.ReadResult
		op.Start(func(r eventual.ReadResult) { res = &r })
		c.require("the read", 2*time.Second, func() bool { return res != nil })
		return *res
	}
	if res := read(old); res.Err != nil || string(res.Rec.Value) != "v1" {
		t.Fatalf("a read of %s through range %d (before the split): %s, %v; want v1", key, old.ID, describeRecord(res.Rec), res.Err)
	}
	w, err := n1.node.ev.NewEventualWrite(ks, old, key, wrn.Record{Value: []byte("v2")}, all)
	if err != nil {
		t.Fatal(err)
	}
	var wres *eventual.WriteResult
	w.Start(func(r eventual.WriteResult) { wres = &r })
	c.require("the write", 2*time.Second, func() bool { return wres != nil })
	if wres.Err != nil {
		t.Fatalf("a write of %s through range %d (before the split): %v", key, old.ID, wres.Err)
	}
	now := c.catalog().Ranges["ev"][1]
	if res := read(now); res.Err != nil || res.Rec.Version != w.Rec.Version {
		t.Fatalf("a read of %s through range %d: %s, %v; want v2 at %s", key, now.ID, describeRecord(res.Rec), res.Err,
			eventual.FormatRecordVersion(w.Rec.Version))
	}
}

// A scan coordinated by a node whose catalog does not have a split yet
// (Hooks.ScanRanges plays it: the scan starts from the ranges before the
// split) still sees every key: the replicas, which have the split, answer
// for the old range with its lower half only, and the scan catches the
// node's catalog up and scans the new range too (scanSplitSince).
func TestEventualScanAfterSplitFromAStaleCatalog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var stale []*catalog.RangeDescriptor
	cl := openEventualCluster(t, ctx, func(int) NodeConfig {
		return NodeConfig{evHooks: eventual.Hooks{ScanRanges: func(string) []*catalog.RangeDescriptor {
			mu.Lock()
			defer mu.Unlock()
			return stale
		}}}
	})
	nodes := cl.nodes
	rangeID := cl.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 3, R: 2, Ranges: 1})
	const keys = 16
	for i := range keys {
		if _, err := nodes[0].Put(ctx, "ev", fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	before := nodes[0].store.Catalog().Ranges["ev"]
	left, _, _ := before[0].Span.Split()
	split := func() error {
		var err error
		for _, n := range nodes {
			if _, err = n.localMetaSplit(ctx, &peerv1.SplitRequest{RangeId: rangeID, Reserve: true, Mid: left.Hi}); err == nil {
				return nil
			}
		}
		return err
	}
	if err := split(); err != nil {
		t.Fatalf("split: %v", err)
	}
	for _, n := range nodes {
		for len(n.store.Catalog().Ranges["ev"]) != 2 {
			if ctx.Err() != nil {
				t.Fatal("the split did not reach every node's catalog")
			}
			time.Sleep(time.Millisecond)
		}
		n.ev.SweepStep()
	}
	mu.Lock()
	stale = before
	mu.Unlock()
	kvs, _, err := nodes[1].Scan(ctx, "ev", nil, nil, 100)
	if err != nil || len(kvs) != keys {
		t.Fatalf("a scan from the ranges before the split: %d keys (%v), %v; want %d", len(kvs), keysOf(kvs), err, keys)
	}
}
