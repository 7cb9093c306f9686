package catalog

import (
	"fmt"
	"slices"
)

// Splits of eventual ranges (kv/eventual/split.go). An eventual range has
// no log in which its replicas could agree on a split first, so the
// catalog is where the split happens: one op reserves the new range's ID
// and records the split at once. The replicas follow as their catalogs
// get it, each moving the right half's records on its own.

// SplitEventual splits eventual range Range at Mid, which must be the
// middle of its span now (catalog.Span.Split): Range keeps [Lo, Mid), and
// a new range, whose ID Apply returns, holds [Mid, Hi) with the same
// replicas. Asking for the middle of the span measured makes a second
// request computed on that span (another node's, or a retry of one
// applied) refused rather than split the left half again.
type SplitEventual struct {
	Range uint64 `json:"range"`
	Mid   uint64 `json:"mid"`
}

// EventualSplittable reports whether eventual range r may split as the
// catalog has it, and why not if not: no replica of it is leaving or
// filling (a move in flight; its new replica fills from the others by
// anti-entropy of r's span, kv/eventual/fill.go), and its span halves.
func EventualSplittable(r *RangeDescriptor) (bool, string) {
	switch {
	case r.ID == MetaRangeID || r.Mode != ModeEventual:
		return false, "not an eventual range"
	case len(r.Leaving) > 0:
		return false, "a replica move is in flight"
	case slices.ContainsFunc(r.Replicas, func(rep ReplicaDescriptor) bool { return rep.Filling }):
		return false, "a replica is still filling"
	}
	if _, _, ok := r.Span.Split(); !ok {
		return false, "its span cannot be halved"
	}
	return true, ""
}

// splitEventual records the split of an eventual range and returns the
// new range's ID (see SplitEventual). The descriptors are copied.
func (c *Catalog) splitEventual(sp SplitEventual) ([]catalogWrite, uint64, error) {
	r, ok := c.Ranges[sp.Range]
	if !ok || sp.Range == MetaRangeID {
		return nil, 0, fmt.Errorf("%w: range %d is unknown, or meta", ErrSplit, sp.Range)
	}
	if ok, why := EventualSplittable(r); !ok {
		return nil, 0, fmt.Errorf("%w: range %d cannot split: %s", ErrSplit, sp.Range, why)
	}
	if left, _, _ := r.Span.Split(); left.Hi != sp.Mid {
		return nil, 0, fmt.Errorf("%w: %016x is not the middle of range %d's span [%016x, %016x) (it split already?)",
			ErrSplit, sp.Mid, r.ID, r.Span.Lo, r.Span.Hi)
	}
	ks, ok := c.Keyspaces[r.Keyspace]
	if !ok {
		return nil, 0, fmt.Errorf("%w: range %d's keyspace %s is gone", ErrSplit, r.ID, r.Keyspace)
	}
	id := c.nextID
	c.nextID++
	left := r.Clone()
	right := r.Clone()
	left.Span.Hi = sp.Mid
	right.ID, right.Span.Lo, right.Parent = id, sp.Mid, r.ID
	right.Replicas = slices.Clip(right.Replicas)
	c.Ranges[left.ID], c.Ranges[right.ID] = left, right
	ks.Ranges++
	c.Keyspaces[ks.Name] = ks
	return []catalogWrite{
		{[]byte(catalogNextID), MustJSON(c.nextID)},
		{rangeCatalogKey(left.ID), MustJSON(left)},
		{rangeCatalogKey(right.ID), MustJSON(right)},
		{[]byte(catalogKeyspacePrefix + ks.Name), MustJSON(ks)},
	}, id, nil
}
