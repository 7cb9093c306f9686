package records

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/fuzzcheck"
	"github.com/quorumkv/quorumkv/wrn"
)

// The decoders of what eventual replicas store and send (records, CAS
// values and promises, hints) never panic on any input and allocate in
// proportion to it; `go test -fuzz FuzzDecoders ./kv/records/` searches
// further than the seeds.
func FuzzDecoders(f *testing.F) {
	rec := wrn.Record{Value: []byte("v")}
	f.Add(EncodeRecord(rec))
	f.Add(EncodeCASValue(CASValue{}))
	f.Add(encodePromise([]byte("a"), rec))
	f.Add(encodeHint(hint{}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, "DecodeRecord", b, func(b []byte) { DecodeRecord(b) })
		fuzzcheck.Bounded(t, "DecodeCASValue", b, func(b []byte) { DecodeCASValue(b) })
		fuzzcheck.Bounded(t, "DecodePromise", b, func(b []byte) { DecodePromise(b) })
		fuzzcheck.Bounded(t, "DecodeHint", b, func(b []byte) { DecodeHint(b) })
	})
}
