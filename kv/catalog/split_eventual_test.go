package catalog

import (
	"errors"
	"testing"
)

// An eventual range splits in one op: a new ID, the range halved, the new
// range with the same replicas (not marked Added: it has no log to
// found) and its parent named, one more range in the keyspace. Refused,
// changing nothing: an unknown range, meta, a raft range, a mid that is
// not the middle of the span now (a second request computed on the span
// before a split), a range with a replica leaving or filling. The raft
// ops refuse eventual ranges, and the split ranges never merge.
func TestSplitEventual(t *testing.T) {
	c := catalogWithNodes(t, 4)
	ks := KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1}
	if err := ks.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Apply(&CatalogOp{Create: &ks, Replicas: [][]ReplicaDescriptor{{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}}}); err != nil {
		t.Fatal(err)
	}
	r := c.KeyspaceRanges("ev")[0]
	raft := c.KeyspaceRanges("ks")[0]
	left, right, _ := r.Span.Split()
	for name, bad := range map[string]SplitEventual{
		"unknown range":  {Range: r.ID + 99, Mid: left.Hi},
		"meta":           {Range: MetaRangeID, Mid: left.Hi},
		"a raft range":   {Range: raft.ID, Mid: left.Hi},
		"not the middle": {Range: r.ID, Mid: left.Hi + 1},
	} {
		if _, _, err := c.Apply(&CatalogOp{SplitEventual: &bad}); !errors.Is(err, ErrSplit) {
			t.Errorf("%s: %v, want a refused split", name, err)
		}
	}
	if _, _, err := c.Apply(&CatalogOp{ReserveRange: r.ID}); !errors.Is(err, ErrSplit) {
		t.Errorf("reserving for an eventual range in the raft way: %v", err)
	}
	writes, id, err := c.Apply(&CatalogOp{SplitEventual: &SplitEventual{Range: r.ID, Mid: left.Hi}})
	if err != nil || id <= raft.ID || len(writes) != 4 {
		t.Fatalf("split: id %d, %v, %d writes", id, err, len(writes))
	}
	l, n := c.Ranges[r.ID], c.Ranges[id]
	if l.Span != left || n.Span != right || n.Parent != r.ID || n.Keyspace != "ev" || n.Mode != ModeEventual || len(n.Replicas) != 3 {
		t.Errorf("after the split: %+v and %+v", l, n)
	}
	for i, rep := range n.Replicas {
		if rep.Added || rep.NodeID != l.Replicas[i].NodeID {
			t.Errorf("new range's replica %+v: want the old range's, in order, not marked Added", rep)
		}
	}
	if c.Keyspaces["ev"].Ranges != 2 || len(c.KeyspaceRanges("ev")) != 2 {
		t.Errorf("keyspace counts %d ranges", c.Keyspaces["ev"].Ranges)
	}
	// A second request on the span before the split, and a raft split.
	if _, _, err := c.Apply(&CatalogOp{SplitEventual: &SplitEventual{Range: r.ID, Mid: left.Hi}}); !errors.Is(err, ErrSplit) {
		t.Errorf("a second split on the old span: %v", err)
	}
	if _, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: r.ID, Mid: left.Hi / 2, NewRange: id}}); !errors.Is(err, ErrSplit) {
		t.Errorf("a raft split of an eventual range: %v", err)
	}
	// Eventual ranges never merge, not even the halves of a split.
	if _, _, err := c.Apply(&CatalogOp{Merge: &MergeRanges{Left: r.ID, Right: id, Hi: right.Hi}}); !errors.Is(err, ErrMerge) {
		t.Errorf("a merge of eventual ranges: %v", err)
	}
	// The new ID is taken: the next reservation is past it.
	if _, next, err := c.Apply(&CatalogOp{ReserveRange: raft.ID}); err != nil || next <= id {
		t.Errorf("the next reservation: %d, %v", next, err)
	}
	// The reloaded catalog has both halves and the parent.
	re := NewCatalog()
	for _, w := range writes {
		if err := re.Load(w.Key, w.Value); err != nil {
			t.Fatal(err)
		}
	}
	if re.Ranges[id].Parent != r.ID || re.Ranges[r.ID].Span != left {
		t.Errorf("reloaded %+v, %+v", re.Ranges[id], re.Ranges[r.ID])
	}
	// A move in flight, or a replica filling, holds the split back.
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: id, From: 3, To: ReplicaDescriptor{NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	nl, _, _ := c.Ranges[id].Span.Split()
	if _, _, err := c.Apply(&CatalogOp{SplitEventual: &SplitEventual{Range: id, Mid: nl.Hi}}); !errors.Is(err, ErrSplit) {
		t.Errorf("a split with a move in flight: %v", err)
	}
	ok, why := EventualSplittable(c.Ranges[id])
	if ok || why == "" {
		t.Errorf("EventualSplittable with a move in flight: %v %q", ok, why)
	}
}
