// Package fuzzcheck holds what the decoders' fuzz targets share: a decode
// of n bytes from the network or the disk must not allocate far more than
// n (a length or count read from the input must not size an allocation).
package fuzzcheck

import (
	"runtime"
	"testing"
)

// Slack is what any decode may allocate beyond its per-byte share.
const Slack = 64 << 10

// PerByte bounds a decode's allocation per input byte.
const PerByte = 64

// Bounded runs decode on in and fails t if it allocated more than
// PerByte*len(in)+Slack bytes.
func Bounded(t *testing.T, what string, in []byte, decode func([]byte)) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	decode(in)
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(PerByte*len(in))+Slack {
		t.Fatalf("%s of %d bytes allocated %d", what, len(in), grew)
	}
}
