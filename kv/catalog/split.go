package catalog

import (
	"fmt"
	"slices"
)

// Range splits of raft ranges, as the catalog sees them (eventual ranges
// split in the catalog alone: split_eventual.go). A range splits in its own log
// first (kv/store/split.go): from that entry on its replicas serve only
// the left half, and the right half runs as a new range with the same
// replicas. The catalog follows: its leader reserves the new range's ID
// before it proposes the split (ReserveRange), and records the split
// once applied (Split). Until then the catalog still routes the right
// half to the old range, which refuses it as moved, and clients retry.

// Splits reports whether ranges of mode split: raft and paxos ranges
// split in their own log (kv/store/split.go); eventual ranges have no log
// to split in.
func Splits(m Mode) bool { return m == ModeRaft || m == ModePaxos }

// ErrSplit marks a split the catalog refuses: every replica of meta
// refuses it the same way, and nothing changes.
var ErrSplit = fmt.Errorf("%w: split refused", ErrInvalidArgument)

// reserveRange hands out the next range ID for a split of range id.
func (c *Catalog) reserveRange(id uint64) ([]catalogWrite, uint64, error) {
	r, ok := c.Ranges[id]
	if !ok || id == MetaRangeID || !Splits(r.Mode) {
		return nil, 0, fmt.Errorf("%w: range %d cannot split (unknown, meta, or not a raft or paxos range)", ErrSplit, id)
	}
	next := c.nextID
	c.nextID++
	return []catalogWrite{{[]byte(catalogNextID), MustJSON(c.nextID)}}, next, nil
}

// split records the split of a range: it ends at Mid, and NewRange
// holds the rest, with the range's replicas and leaving replicas, all
// marked Added: a node that starts NewRange from the catalog without
// having applied the split in the old range's log must never found a log
// for it, only wait for the new range's leader (replicas that applied the
// split have its state already). The descriptors are copied.
func (c *Catalog) split(sp SplitRange) ([]catalogWrite, error) {
	r, ok := c.Ranges[sp.Range]
	switch {
	case !ok || sp.Range == MetaRangeID:
		return nil, fmt.Errorf("%w: range %d is unknown, or meta", ErrSplit, sp.Range)
	case !Splits(r.Mode):
		return nil, fmt.Errorf("%w: range %d is a %s range; only raft and paxos ranges split by their log (eventual ones by SplitEventual)", ErrSplit, sp.Range, r.Mode)
	}
	if n, ok := c.Ranges[sp.NewRange]; ok {
		if n.Parent == r.ID && n.Span.Lo == sp.Mid && r.Span.Hi == sp.Mid {
			return nil, nil // a retry of a split applied already
		}
		return nil, fmt.Errorf("%w: range %d exists already", ErrSplit, sp.NewRange)
	}
	switch {
	case sp.NewRange <= MetaRangeID || sp.NewRange >= c.nextID:
		return nil, fmt.Errorf("%w: range ID %d was not reserved", ErrSplit, sp.NewRange)
	case !r.Span.Contains(sp.Mid) || sp.Mid == r.Span.Lo:
		return nil, fmt.Errorf("%w: %016x is not strictly inside range %d's span [%016x, %016x)", ErrSplit, sp.Mid, r.ID, r.Span.Lo, r.Span.Hi)
	}
	ks, ok := c.Keyspaces[r.Keyspace]
	if !ok {
		return nil, fmt.Errorf("%w: range %d's keyspace %s is gone", ErrSplit, r.ID, r.Keyspace)
	}
	left := r.Clone()
	right := r.Clone()
	left.Span.Hi = sp.Mid
	right.ID, right.Span.Lo, right.Parent = sp.NewRange, sp.Mid, r.ID
	for i := range right.Replicas {
		right.Replicas[i].Added = true
	}
	for i := range right.Leaving {
		right.Leaving[i].Added = true
	}
	right.Replicas, right.Leaving = slices.Clip(right.Replicas), slices.Clip(right.Leaving)
	c.Ranges[left.ID], c.Ranges[right.ID] = left, right
	ks.Ranges++
	c.Keyspaces[ks.Name] = ks
	return []catalogWrite{
		{rangeCatalogKey(left.ID), MustJSON(left)},
		{rangeCatalogKey(right.ID), MustJSON(right)},
		{[]byte(catalogKeyspacePrefix + ks.Name), MustJSON(ks)},
	}, nil
}

// Ancestor reports whether range id is r or one of the ranges r was split
// from, as the catalog c knows them.
func Ancestor(ranges map[uint64]*RangeDescriptor, r *RangeDescriptor, id uint64) bool {
	for seen := 0; r != nil && seen < 64; seen++ {
		if r.ID == id {
			return true
		}
		if r.Parent == 0 {
			return false
		}
		p, ok := ranges[r.Parent]
		if !ok {
			return r.Parent == id
		}
		r = p
	}
	return false
}
