package catalog

import (
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// HashKey is where a key lives in a keyspace's 64-bit hash space.
// xxhash64 spreads any key distribution evenly and costs ~1 ns per 8 bytes.
func HashKey(key []byte) uint64 { return xxhash.Sum64(key) }

// Span is a half-open interval [Lo, Hi) of the hash space; Hi == 0 means
// 2^64, so the last range of a keyspace ends at the top.
type Span struct {
	Lo, Hi uint64
}

// Contains reports whether hash h is in s.
func (s Span) Contains(h uint64) bool {
	return h >= s.Lo && (s.Hi == 0 || h < s.Hi)
}

// Split halves s, as a range split will: the halves' union is s and they
// do not overlap. A span of width 1 cannot be split; ok is false then.
func (s Span) Split() (left, right Span, ok bool) {
	width := s.Hi - s.Lo // mod 2^64: right for Hi == 0 too
	if s.Hi == 0 && s.Lo == 0 {
		mid := uint64(1) << 63
		return Span{0, mid}, Span{mid, 0}, true
	}
	if width < 2 {
		return Span{}, Span{}, false
	}
	mid := s.Lo + width/2
	return Span{s.Lo, mid}, Span{mid, s.Hi}, true
}

// InitialSpans splits the hash space into n contiguous spans of equal
// width (to within one), in order: span i starts at ceil(i * 2^64 / n).
func InitialSpans(n int) []Span {
	spans := make([]Span, n)
	for i := range spans {
		spans[i].Lo = boundary(uint64(i), uint64(n))
		if i > 0 {
			spans[i-1].Hi = spans[i].Lo
		}
	}
	return spans // the last Hi stays 0: 2^64
}

// boundary is ceil(i * 2^64 / n) for 0 <= i < n, computed in 128 bits.
func boundary(i, n uint64) uint64 {
	if i == 0 {
		return 0
	}
	// i * 2^64 as the 128-bit (hi=i, lo=0), divided by n.
	q, r := bits.Div64(i, 0, n)
	if r != 0 {
		q++
	}
	return q
}

// SpanIndex returns the index of the span holding h in spans, which must be
// sorted, contiguous and cover the hash space (as InitialSpans and splits
// of it are).
func SpanIndex(spans []Span, h uint64) int {
	lo, hi := 0, len(spans)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if spans[mid].Lo <= h {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}
