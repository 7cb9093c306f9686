package consensus

import (
	"errors"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
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
		b := EncodePeerMessage(PeerMessage{Raft: &m})
		got, err := DecodePeerMessage(b)
		if err != nil || got.Paxos != nil || !reflect.DeepEqual(*got.Raft, m) {
			t.Fatalf("round trip:\n got %+v, %v\nwant %+v", got.Raft, err, m)
		}
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := DecodePeerMessage(b[:cut]); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", cut, len(b), err)
		}
	})
}

func genBallot(t *rapid.T, label string) paxos.Ballot {
	return paxos.Ballot{Round: rapid.Uint64().Draw(t, label+"round"), NodeID: rapid.Uint64().Draw(t, label+"node")}
}

func genPaxosConfigs(t *rapid.T) []paxos.ConfigState {
	var out []paxos.ConfigState
	for range rapid.IntRange(0, 3).Draw(t, "configs") {
		c := paxos.ConfigState{Effective: rapid.Uint64().Draw(t, "effective"),
			Membership: paxos.Membership{Geometry: rapid.SampledFrom([]string{"", "majority", "zones", "flexible:3,1"}).Draw(t, "geo")}}
		for i := range rapid.IntRange(0, 4).Draw(t, "voters") {
			c.Membership.Voters = append(c.Membership.Voters, quorum.Node{ID: uint64(i + 1),
				Zone: rapid.SampledFrom([]string{"", "z1", "z2"}).Draw(t, "zone"), Weight: rapid.IntRange(0, 3).Draw(t, "weight")})
		}
		out = append(out, c)
	}
	return out
}

// Every paxos message the transport carries decodes to what was encoded,
// behind its protocol byte, and every truncation is refused.
func TestPaxosMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := paxos.Message{
			Type: paxos.MessageType(rapid.IntRange(1, 8).Draw(t, "type")),
			From: rapid.Uint64().Draw(t, "from"), To: rapid.Uint64().Draw(t, "to"),
			Ballot: genBallot(t, "ballot"), Reject: rapid.Bool().Draw(t, "reject"), Hint: genBallot(t, "hint"),
			Slot: rapid.Uint64().Draw(t, "slot"), Commit: rapid.Uint64().Draw(t, "commit"),
			Context: genBytes(t, "context"), Transfer: rapid.Bool().Draw(t, "transfer"),
		}
		// Transfer is set on Prepares only, Joining and Seq on
		// acknowledgements (Seq on heartbeats too).
		m.Joining = !m.Transfer && rapid.Bool().Draw(t, "joining")
		if !m.Transfer && rapid.Bool().Draw(t, "leased") {
			m.Seq = rapid.Uint64Min(1).Draw(t, "seq")
		}
		for range rapid.IntRange(0, 5).Draw(t, "entries") {
			m.Entries = append(m.Entries, paxos.Entry{Slot: rapid.Uint64().Draw(t, "eslot"), Ballot: genBallot(t, "eballot"),
				Type: paxos.EntryType(rapid.IntRange(1, 3).Draw(t, "etype")), Data: genBytes(t, "edata")})
		}
		for range rapid.IntRange(0, 5).Draw(t, "slots") {
			m.Slots = append(m.Slots, rapid.Uint64().Draw(t, "aslot"))
		}
		if rapid.Bool().Draw(t, "snap") {
			m.Snapshot = &paxos.Snapshot{Slot: rapid.Uint64().Draw(t, "sslot"), Configs: genPaxosConfigs(t), Data: genBytes(t, "sdata")}
		}
		b := EncodePeerMessage(PeerMessage{Paxos: &m})
		got, err := DecodePeerMessage(b)
		if err != nil || got.Raft != nil || !reflect.DeepEqual(*got.Paxos, m) {
			t.Fatalf("round trip:\n got %+v, %v\nwant %+v", got.Paxos, err, m)
		}
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := DecodePeerMessage(b[:cut]); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", cut, len(b), err)
		}
	})
}

// A paxos range's records in Pebble decode to what was written, and a
// Raft record is never read as a paxos one.
func TestPaxosStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hs := paxos.HardState{Promised: genBallot(t, "promised"), Commit: rapid.Uint64().Draw(t, "commit")}
		if got, err := DecodePaxosHardState(EncodePaxosHardState(hs)); err != nil || got != hs {
			t.Fatalf("hard state: got %+v, %v; want %+v", got, err, hs)
		}
		e := paxos.Entry{Slot: rapid.Uint64().Draw(t, "slot"), Ballot: genBallot(t, "ballot"),
			Type: paxos.EntryType(rapid.IntRange(1, 3).Draw(t, "type")), Data: genBytes(t, "data")}
		if got, err := DecodePaxosEntry(e.Slot, EncodePaxosEntry(e)); err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("entry: got %+v, %v; want %+v", got, err, e)
		}
		snap := paxos.Snapshot{Slot: rapid.Uint64().Draw(t, "sslot"), Configs: genPaxosConfigs(t)}
		b := EncodePaxosSnapshotPoint(snap)
		if got, err := DecodePaxosSnapshotPoint(b); err != nil || !reflect.DeepEqual(got, snap) {
			t.Fatalf("snapshot point: got %+v, %v; want %+v", got, err, snap)
		}
		if _, err := DecodePaxosSnapshotPoint(b[:rapid.IntRange(0, len(b)-1).Draw(t, "cut")]); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("truncated snapshot point read: %v", err)
		}
		raftHS := raft.HardState{Term: hs.Promised.Round, Vote: hs.Promised.NodeID, Commit: hs.Commit}
		if _, err := DecodePaxosHardState(EncodeHardState(raftHS)); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("a raft hard state read as a paxos one: %v", err)
		}
	})
}

// A leader with read leases numbers its heartbeat rounds (Seq), and the
// number rides in the Slot field of a version-1 Heartbeat, which a node
// of before leases decodes (and ignores): a leased leader's heartbeats
// must not take a version older acceptors drop. The answer that echoes
// the round, which only such a leader asks for, is version 4.
func TestLeasedHeartbeatStaysVersion1(t *testing.T) {
	hb := paxos.Message{Type: paxos.MsgHeartbeat, From: 1, To: 2, Ballot: paxos.Ballot{Round: 3, NodeID: 1}, Commit: 7, Seq: 42}
	resp := paxos.Message{Type: paxos.MsgHeartbeatResp, From: 2, To: 1, Ballot: hb.Ballot, Commit: 7, Slot: 7, Seq: 42}
	for _, c := range []struct {
		m       paxos.Message
		version byte
	}{{hb, paxosCodecV1}, {resp, paxosMessageV4}} {
		b := appendPaxosMessage(nil, &c.m)
		if b[0] != c.version {
			t.Errorf("%v: version %#x, want %#x", c.m, b[0], c.version)
		}
		if got, err := decodePaxosMessage(b); err != nil || !reflect.DeepEqual(got, c.m) {
			t.Errorf("%v: decoded %v, %v", c.m, got, err)
		}
	}
}
