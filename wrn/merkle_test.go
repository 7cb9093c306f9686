package wrn

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

type entry struct {
	pos uint64
	key string
	v   Version
}

func genSpan(t *rapid.T) (lo, hi uint64) {
	switch rapid.IntRange(0, 2).Draw(t, "span kind") {
	case 0:
		return 0, 0 // the whole hash space
	case 1:
		lo = rapid.Uint64Range(0, 1<<63).Draw(t, "lo")
		return lo, 0 // up to the top
	}
	lo = rapid.Uint64Range(0, 1<<62).Draw(t, "lo")
	return lo, lo + rapid.Uint64Range(1, 1<<62).Draw(t, "width")
}

func genPos(t *rapid.T, lo, hi uint64, label string) uint64 {
	if hi == 0 {
		return lo + rapid.Uint64Range(0, -lo-1).Draw(t, label) // -lo = 2^64 - lo
	}
	return rapid.Uint64Range(lo, hi-1).Draw(t, label)
}

// Leaves partition the span, and every position falls in its leaf's span.
func TestPropertyMerkleLeaves(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo, hi := genSpan(t)
		m, err := NewMerkle(lo, hi, rapid.IntRange(0, 10).Draw(t, "depth"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m.Leaves(); i++ {
			l, h := m.Span(i)
			if i == 0 && l != lo || i == m.Leaves()-1 && h != hi {
				t.Fatalf("leaves do not cover the span at %d", i)
			}
			if i > 0 {
				if _, prevHi := m.Span(i - 1); prevHi != l {
					t.Fatalf("leaves %d and %d are not contiguous", i-1, i)
				}
			}
		}
		pos := genPos(t, lo, hi, "pos")
		i := m.Leaf(pos)
		l, h := m.Span(i)
		if pos < l || h != 0 && pos >= h {
			t.Fatalf("position %d in leaf %d spanning [%d, %d)", pos, i, l, h)
		}
	})
}

// Trees over the same entries agree whatever the order; after changing
// some entries on one side, DiffLeaves names exactly the leaves changed.
func TestPropertyMerkleDiff(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo, hi := genSpan(t)
		depth := rapid.IntRange(0, 8).Draw(t, "depth")
		a, _ := NewMerkle(lo, hi, depth)
		b, _ := NewMerkle(lo, hi, depth)
		var entries []entry
		for i := range rapid.IntRange(0, 40).Draw(t, "entries") {
			entries = append(entries, entry{genPos(t, lo, hi, "pos"), string(rune('a' + i%26)), Version{Timestamp{int64(i), 0}, 1}})
		}
		for _, e := range entries {
			a.Toggle(e.pos, EntryHash([]byte(e.key), e.v, false))
		}
		order := make([]int, len(entries))
		for i := range order {
			order[i] = i
		}
		for _, i := range rapid.Permutation(order).Draw(t, "order") {
			e := entries[i]
			b.Toggle(e.pos, EntryHash([]byte(e.key), e.v, false))
		}
		if a.Root() != b.Root() {
			t.Fatal("same entries, different roots")
		}
		var want []int
		for i, e := range entries {
			if !rapid.Bool().Draw(t, "change") {
				continue
			}
			newer := Version{Timestamp{int64(i), 1}, 2}
			b.Toggle(e.pos, EntryHash([]byte(e.key), e.v, false))
			b.Toggle(e.pos, EntryHash([]byte(e.key), newer, false))
			entries[i].v = newer
			want = append(want, b.Leaf(e.pos))
		}
		slices.Sort(want)
		want = slices.Compact(want)
		got, err := DiffLeaves(a, b)
		if err != nil {
			t.Fatal(err)
		}
		// Two changes in one leaf could cancel only by a hash collision.
		if !slices.Equal(got, want) {
			t.Fatalf("DiffLeaves = %v, want %v", got, want)
		}
	})
}

func TestMerkleRejects(t *testing.T) {
	if _, err := NewMerkle(0, 0, MaxMerkleDepth+1); err == nil {
		t.Error("depth over the limit accepted")
	}
	if _, err := NewMerkle(10, 5, 3); err == nil {
		t.Error("empty span accepted")
	}
	a, _ := NewMerkle(0, 0, 2)
	b, _ := NewMerkle(0, 0, 3)
	if _, err := DiffLeaves(a, b); err == nil {
		t.Error("trees of different depths compared")
	}
}
