package catalog

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// check that spans are sorted, contiguous and cover [0, 2^64).
func checkCover(t interface{ Fatalf(string, ...any) }, spans []Span) {
	if spans[0].Lo != 0 || spans[len(spans)-1].Hi != 0 {
		t.Fatalf("spans do not reach both ends: %v", spans)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].Lo != spans[i-1].Hi || spans[i].Lo <= spans[i-1].Lo {
			t.Fatalf("spans %d and %d are not contiguous: %v %v", i-1, i, spans[i-1], spans[i])
		}
	}
}

func TestInitialSpans(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, MaxRanges).Draw(t, "n")
		spans := InitialSpans(n)
		checkCover(t, spans)
		// Widths differ by at most one.
		var minW, maxW uint64 = math.MaxUint64, 0
		for _, s := range spans {
			w := s.Hi - s.Lo
			minW, maxW = min(minW, w), max(maxW, w)
		}
		if n > 1 && maxW-minW > 1 {
			t.Fatalf("n=%d: widths from %d to %d", n, minW, maxW)
		}
		h := rapid.Uint64().Draw(t, "hash")
		i := SpanIndex(spans, h)
		if !spans[i].Contains(h) {
			t.Fatalf("SpanIndex(%d) = %d, span %v", h, i, spans[i])
		}
	})
}

func TestSplit(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spans := InitialSpans(rapid.IntRange(1, 16).Draw(t, "n"))
		for range rapid.IntRange(0, 40).Draw(t, "splits") {
			i := rapid.IntRange(0, len(spans)-1).Draw(t, "which")
			l, r, ok := spans[i].Split()
			if !ok {
				continue
			}
			spans = append(spans[:i], append([]Span{l, r}, spans[i+1:]...)...)
		}
		checkCover(t, spans)
		h := rapid.Uint64().Draw(t, "hash")
		if i := SpanIndex(spans, h); !spans[i].Contains(h) {
			t.Fatalf("SpanIndex(%d) = %d, span %v", h, i, spans[i])
		}
	})
	if _, _, ok := (Span{5, 6}).Split(); ok {
		t.Error("a span of width 1 split")
	}
}

func TestHashKeyIsStable(t *testing.T) {
	// Keys must land in the same range on every node and every version:
	// pin the hash of a known key (xxhash64, seed 0).
	if got := HashKey([]byte("phone")); got != 0xdecd9004c790e643 {
		t.Errorf("HashKey(phone) = %#x", got)
	}
}
