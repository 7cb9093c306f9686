package consensus

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/fuzzcheck"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// The decoders of the consensus state a node keeps on disk (Raft hard
// state, entries, truncation point; Paxos hard state, entries, snapshot
// point) never panic on any input and allocate in proportion to it: a
// corrupted disk is reported, not crashed on. `go test -fuzz
// FuzzDecodeLogState ./kv/consensus/` searches further than the seeds.
func FuzzDecodeLogState(f *testing.F) {
	f.Add(EncodeHardState(raft.HardState{Term: 3, Vote: 1, Commit: 2}))
	f.Add(encodeEntry(raft.Entry{Index: 4, Term: 3, Data: []byte("v")}))
	f.Add(encodeTruncatedState(truncatedState{}))
	f.Add(EncodePaxosHardState(paxos.HardState{}))
	f.Add(EncodePaxosEntry(paxos.Entry{Slot: 4, Type: paxos.EntryNormal, Data: []byte("v")}))
	f.Add(EncodePaxosSnapshotPoint(paxos.Snapshot{Slot: 4, Configs: []paxos.ConfigState{{Effective: 1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, "decodeHardState", b, func(b []byte) { decodeHardState(b) })
		fuzzcheck.Bounded(t, "decodeEntry", b, func(b []byte) { decodeEntry(4, b) })
		fuzzcheck.Bounded(t, "decodeTruncatedState", b, func(b []byte) { decodeTruncatedState(b) })
		fuzzcheck.Bounded(t, "DecodePaxosHardState", b, func(b []byte) { DecodePaxosHardState(b) })
		fuzzcheck.Bounded(t, "DecodePaxosEntry", b, func(b []byte) { DecodePaxosEntry(4, b) })
		fuzzcheck.Bounded(t, "DecodePaxosSnapshotPoint", b, func(b []byte) { DecodePaxosSnapshotPoint(b) })
	})
}
