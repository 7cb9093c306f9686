package kv

import (
	"errors"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/quorumkv/quorumkv/raft"
)

func genBytes(t *rapid.T, label string) []byte {
	b := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, label)
	if len(b) == 0 {
		return nil
	}
	return b
}

func genConfState(t *rapid.T) raft.ConfState {
	members := func(label string) []raft.Member {
		var ms []raft.Member
		for i := range rapid.IntRange(0, 4).Draw(t, label) {
			ms = append(ms, raft.Member{ID: uint64(i + 1), Zone: rapid.SampledFrom([]string{"", "a", "b"}).Draw(t, label+"z"), Weight: rapid.IntRange(0, 3).Draw(t, label+"w")})
		}
		return ms
	}
	ids := func(label string) []uint64 {
		var out []uint64
		for range rapid.IntRange(0, 3).Draw(t, label) {
			out = append(out, rapid.Uint64().Draw(t, label+"id"))
		}
		return out
	}
	return raft.ConfState{
		Geometry: rapid.SampledFrom([]string{"", "majority", "grid:3x3"}).Draw(t, "geo"),
		Voters:   members("voters"), Learners: ids("learners"),
		OutgoingGeometry: rapid.SampledFrom([]string{"", "zones"}).Draw(t, "ogeo"),
		VotersOutgoing:   members("vout"), LearnersNext: ids("lnext"),
	}
}

// Every message the transport carries decodes to what was encoded, and
// every truncation of an encoding is refused rather than misread.
func TestRaftMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := raft.Message{
			Type: raft.MessageType(rapid.IntRange(1, 10).Draw(t, "type")),
			To:   rapid.Uint64().Draw(t, "to"), From: rapid.Uint64().Draw(t, "from"),
			Term: rapid.Uint64().Draw(t, "term"), LogTerm: rapid.Uint64().Draw(t, "logterm"),
			Index: rapid.Uint64().Draw(t, "index"), Commit: rapid.Uint64().Draw(t, "commit"),
			Reject: rapid.Bool().Draw(t, "reject"), RejectHint: rapid.Uint64().Draw(t, "hint"),
			Transfer: rapid.Bool().Draw(t, "transfer"), ReadSeq: rapid.Uint64().Draw(t, "readseq"),
		}
		for i := range rapid.IntRange(0, 5).Draw(t, "entries") {
			m.Entries = append(m.Entries, raft.Entry{Index: uint64(i + 7), Term: rapid.Uint64().Draw(t, "eterm"),
				Type: raft.EntryType(rapid.IntRange(0, 1).Draw(t, "etype")), Data: genBytes(t, "edata")})
		}
		if rapid.Bool().Draw(t, "snap") {
			m.Snapshot = &raft.Snapshot{Metadata: raft.SnapshotMetadata{Index: rapid.Uint64().Draw(t, "sidx"),
				Term: rapid.Uint64().Draw(t, "sterm"), ConfState: genConfState(t)}, Data: genBytes(t, "sdata")}
		}
		b := encodeRaftMessage(&m)
		got, err := decodeRaftMessage(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v, %v\nwant %+v", got, err, m)
		}
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := decodeRaftMessage(b[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", cut, len(b), err)
		}
	})
}

func TestCommandRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := command{id: rapid.Uint64().Draw(t, "id"), op: op(rapid.IntRange(1, 4).Draw(t, "op")), key: genBytes(t, "key"), value: genBytes(t, "value")}
		if c.op == opCAS {
			c.cond = cond(rapid.IntRange(1, 3).Draw(t, "cond"))
			c.expectValue = genBytes(t, "expect")
			c.expectVersion = rapid.Uint64().Draw(t, "ev")
		}
		got, err := decodeCommand(c.encode())
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %+v, %v; want %+v", got, err, c)
		}
	})
}
