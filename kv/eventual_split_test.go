package kv

import (
	"fmt"
	"testing"
	"time"

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
