package store

import (
	"fmt"
	"testing"
)

func TestSizeCache(t *testing.T) {
	s := &Store{Replicas: map[uint64]*replica{}}
	a, b := &replica{}, &replica{}
	s.Replicas[1], s.Replicas[2] = a, b
	if _, ok := a.sizes.get([]byte("k")); ok {
		t.Fatal("an empty cache holds k")
	}
	s.remember(a, []byte("k"), 42)
	s.remember(a, []byte("gone"), 0)
	if sz, ok := a.sizes.get([]byte("k")); !ok || sz != 42 {
		t.Fatalf("get(k) = %d, %v; want 42", sz, ok)
	}
	if sz, ok := a.sizes.get([]byte("gone")); !ok || sz != 0 {
		t.Fatalf("get(gone) = %d, %v; want 0 (absent), known", sz, ok)
	}
	// The node full: a new key of a replica takes the place of one of its
	// own; a replica with none caches nothing; an update takes no room.
	for i := range maxCachedSizes + 100 {
		s.remember(a, fmt.Appendf(nil, "key-%d", i), uint64(i))
	}
	if len(a.sizes) != maxCachedSizes || s.sizesHeld != maxCachedSizes {
		t.Fatalf("%d keys held (%d counted), want the bound %d", len(a.sizes), s.sizesHeld, maxCachedSizes)
	}
	s.remember(b, []byte("b"), 1)
	if len(b.sizes) != 0 {
		t.Fatal("a replica with no room of its own cached a key past the node's bound")
	}
	last := fmt.Appendf(nil, "key-%d", maxCachedSizes+99)
	s.remember(a, last, 7)
	if sz, _ := a.sizes.get(last); len(a.sizes) != maxCachedSizes || sz != 7 {
		t.Fatalf("after an update: %d keys, size %d; want %d keys, 7", len(a.sizes), sz, maxCachedSizes)
	}
	// A cache forgotten gives its room back at the next count.
	a.forgetSizes()
	s.countSizes()
	s.remember(b, []byte("b"), 1)
	if s.sizesHeld != 1 || len(b.sizes) != 1 {
		t.Fatalf("after a forget and a count: %d counted, b holds %d; want 1 and 1", s.sizesHeld, len(b.sizes))
	}
}
