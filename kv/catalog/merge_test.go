package catalog

import (
	"errors"
	"testing"
)

// A merge takes back a range born of a split: the left range's span
// widens, the right one is gone, the keyspace counts one range less, and
// a retry changes nothing. Refused: a range the keyspace was created
// with, ranges that are not neighbours, an unknown range, a wrong end.
func TestMergeRanges(t *testing.T) {
	c := catalogWithNodes(t, 3)
	r := c.KeyspaceRanges("ks")[0]
	whole := r.Span
	_, id, err := c.Apply(&CatalogOp{ReserveRange: r.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, right, _ := r.Span.Split()
	if _, _, err := c.Apply(&CatalogOp{Split: &SplitRange{Range: r.ID, Mid: right.Lo, NewRange: id}}); err != nil {
		t.Fatal(err)
	}
	ranges := c.Keyspaces["ks"].Ranges
	for name, bad := range map[string]MergeRanges{
		"unknown left":   {Left: r.ID + 99, Right: id, Hi: whole.Hi},
		"created range":  {Left: id, Right: r.ID, Hi: whole.Hi},
		"wrong end":      {Left: r.ID, Right: id, Hi: right.Lo + 1},
		"not neighbours": {Left: id, Right: id, Hi: whole.Hi},
	} {
		if _, _, err := c.Apply(&CatalogOp{Merge: &bad}); !errors.Is(err, ErrMerge) {
			t.Errorf("%s: %v, want a refused merge", name, err)
		}
	}
	m := MergeRanges{Left: r.ID, Right: id, Hi: whole.Hi}
	if writes, _, err := c.Apply(&CatalogOp{Merge: &m}); err != nil || len(writes) != 3 {
		t.Fatalf("merge: %v, %d writes", err, len(writes))
	}
	if got := c.Ranges[r.ID].Span; got != whole || c.Ranges[id] != nil || c.Keyspaces["ks"].Ranges != ranges-1 {
		t.Errorf("after the merge: span %v (want %v), right range %v, %d ranges (want %d)", got, whole, c.Ranges[id], c.Keyspaces["ks"].Ranges, ranges-1)
	}
	if writes, _, err := c.Apply(&CatalogOp{Merge: &m}); err != nil || len(writes) != 0 {
		t.Errorf("a retried merge: %v, %d writes; want nothing", err, len(writes))
	}
}
