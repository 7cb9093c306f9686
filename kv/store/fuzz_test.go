package store

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/fuzzcheck"
)

// The snapshot transfer's wire messages (a handle in a Raft or Paxos
// message, chunk requests and responses from peers) and the store's own
// records (split state, dedup answers, install markers) never panic on
// any input and allocate in proportion to it; `go test -fuzz
// FuzzDecoders ./kv/store/` searches further than the seeds.
func FuzzDecoders(f *testing.F) {
	f.Add(SnapshotHandle{}.Encode())
	f.Add(ChunkRequest{}.Encode())
	f.Add((&ChunkResponse{}).Encode())
	f.Add((&splitState{known: true}).encode())
	f.Add(dedupEntry{}.Encode())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, "DecodeSnapshotHandle", b, func(b []byte) { DecodeSnapshotHandle(b) })
		fuzzcheck.Bounded(t, "DecodeChunkRequest", b, func(b []byte) { DecodeChunkRequest(b) })
		fuzzcheck.Bounded(t, "DecodeChunkResponse", b, func(b []byte) { DecodeChunkResponse(b) })
		fuzzcheck.Bounded(t, "decodeSplitState", b, func(b []byte) { decodeSplitState(b) })
		fuzzcheck.Bounded(t, "decodeDedupEntry", b, func(b []byte) { decodeDedupEntry(b) })
		fuzzcheck.Bounded(t, "decodeInstallMarker", b, func(b []byte) { decodeInstallMarker(b) })
	})
}
