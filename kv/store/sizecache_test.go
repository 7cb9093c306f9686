package store

import (
	"fmt"
	"testing"
)

func TestSizeCache(t *testing.T) {
	c := sizeCache{}
	if _, ok := c.get([]byte("k")); ok {
		t.Fatal("an empty cache holds k")
	}
	c.put([]byte("k"), 42)
	c.put([]byte("gone"), 0)
	if sz, ok := c.get([]byte("k")); !ok || sz != 42 {
		t.Fatalf("get(k) = %d, %v; want 42", sz, ok)
	}
	if sz, ok := c.get([]byte("gone")); !ok || sz != 0 {
		t.Fatalf("get(gone) = %d, %v; want 0 (absent), known", sz, ok)
	}
	// Full: a new key takes an old one's place, an update takes none.
	for i := range 2 * maxCachedSizes {
		c.put(fmt.Appendf(nil, "key-%d", i), uint64(i))
	}
	if len(c) != maxCachedSizes {
		t.Fatalf("%d keys held, want the bound %d", len(c), maxCachedSizes)
	}
	last := fmt.Appendf(nil, "key-%d", 2*maxCachedSizes-1)
	c.put(last, 7)
	if sz, _ := c.get(last); len(c) != maxCachedSizes || sz != 7 {
		t.Fatalf("after an update: %d keys, size %d; want %d keys, 7", len(c), sz, maxCachedSizes)
	}
}
