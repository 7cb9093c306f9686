package catalog

import (
	"fmt"
	"slices"
)

// Range merges, as the catalog sees them. Two neighbouring raft ranges of
// one keyspace merge in their own logs first (kv/store/merge.go): the
// right one stops serving (Subsume), then the left one takes its data and
// span (Merge). The catalog follows: the left range's leader records the
// merge (Merge) until meta has it. Until then the catalog still routes
// the right half to the right range, which refuses it as moved, and
// clients retry.
//
// Which ranges merge: only a right range born of a split (Parent != 0)
// merges into its left neighbour. A keyspace's ranges it was created with
// (Parent == 0) are never merged away, so a keyspace created with N
// ranges never has fewer than N: its creator asked for them, and merging
// them at once would only split them again under load.

// ErrMerge marks a merge the catalog refuses: every replica of meta
// refuses it the same way, and nothing changes.
var ErrMerge = fmt.Errorf("%w: merge refused", ErrInvalidArgument)

// MergeRanges records that range Left took range Right, its right
// neighbour: Left's span now ends where Right's did, and Right is gone.
type MergeRanges struct {
	Left  uint64 `json:"left"`
	Right uint64 `json:"right"`
	// Hi is where Right's span ended, so that a retry of a merge
	// recorded already is recognised (Right is gone then).
	Hi uint64 `json:"hi"`
}

// Mergeable reports whether range right may merge into range left as the
// catalog has them: neighbours (left ends where right begins), one raft
// keyspace, right born of a split, the same replicas (in any order) and
// no replica of either leaving. Why not, if not.
func Mergeable(left, right *RangeDescriptor) (bool, string) {
	switch {
	case left.ID == MetaRangeID || right.ID == MetaRangeID:
		return false, "meta does not merge"
	case left.Keyspace != right.Keyspace:
		return false, "not one keyspace"
	case left.Mode != ModeRaft || right.Mode != ModeRaft:
		return false, "only raft ranges merge"
	case left.Span.Hi == 0 || left.Span.Hi != right.Span.Lo:
		return false, "not neighbours"
	case right.Parent == 0:
		return false, "the right range is one the keyspace was created with"
	case len(left.Leaving) > 0 || len(right.Leaving) > 0:
		return false, "a replica move is in flight"
	case len(left.Replicas) != len(right.Replicas):
		return false, "not the same replicas"
	}
	for _, rep := range left.Replicas {
		if !right.HasReplica(rep.NodeID) {
			return false, "not the same replicas"
		}
	}
	return true, ""
}

// merge records a merge (see MergeRanges). The descriptors are copied.
func (c *Catalog) merge(m MergeRanges) ([]catalogWrite, error) {
	left, ok := c.Ranges[m.Left]
	if !ok {
		return nil, fmt.Errorf("%w: range %d is unknown", ErrMerge, m.Left)
	}
	right, ok := c.Ranges[m.Right]
	if !ok {
		if left.Span.Hi == m.Hi && m.Right != m.Left {
			return nil, nil // a retry of a merge recorded already
		}
		return nil, fmt.Errorf("%w: range %d is unknown", ErrMerge, m.Right)
	}
	if ok, why := Mergeable(left, right); !ok {
		return nil, fmt.Errorf("%w: range %d cannot merge into range %d: %s", ErrMerge, m.Right, m.Left, why)
	}
	if right.Span.Hi != m.Hi {
		return nil, fmt.Errorf("%w: range %d ends at %016x, not %016x", ErrMerge, m.Right, right.Span.Hi, m.Hi)
	}
	ks, ok := c.Keyspaces[left.Keyspace]
	if !ok {
		return nil, fmt.Errorf("%w: range %d's keyspace %s is gone", ErrMerge, left.ID, left.Keyspace)
	}
	next := left.Clone()
	next.Span.Hi = right.Span.Hi
	next.Replicas = slices.Clip(next.Replicas)
	c.Ranges[next.ID] = next
	delete(c.Ranges, right.ID)
	ks.Ranges--
	c.Keyspaces[ks.Name] = ks
	return []catalogWrite{
		{rangeCatalogKey(next.ID), MustJSON(next)},
		{Key: rangeCatalogKey(right.ID)},
		{[]byte(catalogKeyspacePrefix + ks.Name), MustJSON(ks)},
	}, nil
}
