package catalog

import (
	"errors"
	"testing"
)

// A split needs a reserved ID; it halves the range, gives the new range
// the same replicas marked Added (so that no node founds its log from the
// catalog), names its parent, counts one more range in the keyspace, and
// a retry changes nothing. Refused, changing nothing: an unknown range,
// meta, an ID not reserved or in use, a mid outside the span or at its
// start, a second split of the same half.
func TestSplitRange(t *testing.T) {
	c := catalogWithNodes(t, 3)
	r := c.KeyspaceRanges("ks")[0]
	if _, _, err := c.Apply(&CatalogOp{ReserveRange: MetaRangeID}); !errors.Is(err, ErrSplit) {
		t.Errorf("reserving for meta: %v", err)
	}
	_, id, err := c.Apply(&CatalogOp{ReserveRange: r.ID})
	if err != nil || id <= r.ID {
		t.Fatalf("reserve: %d, %v", id, err)
	}
	left, right, _ := r.Span.Split()
	mid := right.Lo
	for name, bad := range map[string]SplitRange{
		"unknown range":    {Range: r.ID + 99, Mid: mid, NewRange: id},
		"meta":             {Range: MetaRangeID, Mid: mid, NewRange: id},
		"not reserved":     {Range: r.ID, Mid: mid, NewRange: id + 1},
		"in use":           {Range: r.ID, Mid: mid, NewRange: r.ID},
		"mid at the start": {Range: r.ID, Mid: r.Span.Lo, NewRange: id},
	} {
		if _, _, err := c.Apply(&CatalogOp{Split: &bad}); !errors.Is(err, ErrSplit) {
			t.Errorf("%s: %v, want a refused split", name, err)
		}
	}
	writes, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: r.ID, Mid: mid, NewRange: id}})
	if err != nil || len(writes) != 3 {
		t.Fatalf("split: %v, %d writes", err, len(writes))
	}
	l, n := c.Ranges[r.ID], c.Ranges[id]
	if l.Span != left || n.Span != right || n.Parent != r.ID || n.Keyspace != "ks" || len(n.Replicas) != 3 {
		t.Errorf("after the split: %+v and %+v", l, n)
	}
	for _, rep := range n.Replicas {
		if !rep.Added || !n.HasReplica(rep.NodeID) || !l.HasReplica(rep.NodeID) {
			t.Errorf("new range's replica %+v: want the old range's, marked Added", rep)
		}
	}
	if r.Span.Hi != 0 || c.Keyspaces["ks"].Ranges != 2 || len(c.KeyspaceRanges("ks")) != 2 {
		t.Errorf("old descriptor %v changed, or keyspace counts %d ranges", r.Span, c.Keyspaces["ks"].Ranges)
	}
	if w, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: r.ID, Mid: mid, NewRange: id}}); err != nil || len(w) != 0 {
		t.Errorf("a retried split: %v, %d writes; want nothing", err, len(w))
	}
	_, id2, _ := c.Apply(&CatalogOp{ReserveRange: r.ID})
	for name, bad := range map[string]SplitRange{
		"already split":        {Range: r.ID, Mid: mid, NewRange: id2},
		"mid outside the span": {Range: r.ID, Mid: mid + 1, NewRange: id2},
	} {
		if _, _, err := c.Apply(&CatalogOp{Split: &bad}); !errors.Is(err, ErrSplit) {
			t.Errorf("%s: %v, want a refused split", name, err)
		}
	}
	// The new range reloads from its write with its parent.
	re := NewCatalog()
	for _, w := range writes {
		if err := re.Load(w.Key, w.Value); err != nil {
			t.Fatal(err)
		}
	}
	if re.Ranges[id].Parent != r.ID || re.Ranges[r.ID].Span != left {
		t.Errorf("reloaded %+v, %+v", re.Ranges[id], re.Ranges[r.ID])
	}
	if !Ancestor(c.Ranges, n, r.ID) || Ancestor(c.Ranges, l, id) {
		t.Error("Ancestor does not follow the split")
	}
}

// Paxos ranges split in their log as raft ones do (the new range is a
// paxos range whose replicas are all marked Added); eventual ranges do
// not (they split by SplitEventual alone: split_eventual_test.go).
func TestSplitModes(t *testing.T) {
	c := catalogWithNodes(t, 3)
	for _, mode := range []Mode{ModePaxos, ModeEventual} {
		ks := KeyspaceDescriptor{Name: string(mode), Mode: mode, Replicas: 3, Ranges: 1}
		if err := ks.Normalize(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Apply(&CatalogOp{Create: &ks, Replicas: [][]ReplicaDescriptor{{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}}}); err != nil {
			t.Fatal(err)
		}
	}
	p := c.KeyspaceRanges(string(ModePaxos))[0]
	_, id, err := c.Apply(&CatalogOp{ReserveRange: p.ID})
	if err != nil {
		t.Fatalf("reserving for a paxos range: %v", err)
	}
	if _, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: p.ID, Mid: 1 << 63, NewRange: id}}); err != nil {
		t.Fatalf("splitting a paxos range: %v", err)
	}
	n := c.Ranges[id]
	if n == nil || n.Mode != ModePaxos || n.Parent != p.ID || n.Span.Lo != 1<<63 || len(n.Replicas) != 3 {
		t.Fatalf("the paxos range born of the split is %+v", n)
	}
	for _, rep := range n.Replicas {
		if !rep.Added {
			t.Errorf("replica %d of the new paxos range is not marked Added: a node that never applied the split could found a log for it", rep.NodeID)
		}
	}
	e := c.KeyspaceRanges(string(ModeEventual))[0]
	if _, _, err := c.Apply(&CatalogOp{ReserveRange: e.ID}); !errors.Is(err, ErrSplit) {
		t.Errorf("reserving for an eventual range: %v", err)
	}
	if _, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: e.ID, Mid: 1 << 63, NewRange: id + 1}}); !errors.Is(err, ErrSplit) {
		t.Errorf("splitting an eventual range: %v", err)
	}
}
