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
	c.put([]byte("k"), 42, 10)
	c.put([]byte("gone"), 0, 10)
	if sz, ok := c.get([]byte("k")); !ok || sz != 42 {
		t.Fatalf("get(k) = %d, %v; want 42", sz, ok)
	}
	if sz, ok := c.get([]byte("gone")); !ok || sz != 0 {
		t.Fatalf("get(gone) = %d, %v; want 0 (absent), known", sz, ok)
	}
	// Full: a new key takes an old one's place, an update takes none.
	const limit = 100
	for i := range 2 * limit {
		c.put(fmt.Appendf(nil, "key-%d", i), uint64(i), limit)
	}
	if len(c) != limit {
		t.Fatalf("%d keys held, want the bound %d", len(c), limit)
	}
	last := fmt.Appendf(nil, "key-%d", 2*limit-1)
	c.put(last, 7, limit)
	if sz, _ := c.get(last); len(c) != limit || sz != 7 {
		t.Fatalf("after an update: %d keys, size %d; want %d keys, 7", len(c), sz, limit)
	}
	// A lower bound (more replicas on the node) shrinks it at the next
	// new key.
	c.put([]byte("new"), 1, limit/2)
	if len(c) != limit/2 {
		t.Fatalf("after a put under a bound of %d: %d keys", limit/2, len(c))
	}
	if got, want := sizesCap(16), maxCachedSizesPerNode/16; got != want {
		t.Errorf("sizesCap(16) = %d, want %d", got, want)
	}
	if got := sizesCap(1 << 20); got != minCachedSizes {
		t.Errorf("sizesCap(1Mi) = %d, want the minimum %d", got, minCachedSizes)
	}
}
