package consensus

import (
	"reflect"
	"testing"

	"github.com/quorumkv/quorumkv/internal/fuzzcheck"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// Every byte from the network is hostile: DecodePeerMessage, which reads
// every consensus message a peer sends, never panics, allocates in
// proportion to its input (a count read from the wire must not size an
// allocation), and what it accepts encodes back to bytes that decode to
// the same message. The seeds are encodings of each protocol's messages;
// `go test -fuzz FuzzDecodePeerMessage ./kv/consensus/` searches further.
func FuzzDecodePeerMessage(f *testing.F) {
	for _, m := range []PeerMessage{
		{Raft: &raft.Message{Type: raft.MsgApp, To: 2, From: 1, Term: 3, Index: 5, LogTerm: 2, Commit: 4,
			Entries: []raft.Entry{{Index: 6, Term: 3, Data: []byte("v")}, {Index: 7, Term: 3, Type: raft.EntryConfChange}}}},
		{Raft: &raft.Message{Type: raft.MsgSnap, To: 2, From: 1, Term: 3, Snapshot: &raft.Snapshot{
			Metadata: raft.SnapshotMetadata{Index: 9, Term: 3, ConfState: raft.ConfState{Geometry: "majority", Voters: []raft.Member{{ID: 1}, {ID: 2}}}}, Data: []byte("h")}}},
		{Paxos: &paxos.Message{Type: paxos.MsgAccept, To: 2, From: 1, Ballot: paxos.Ballot{Round: 3, NodeID: 1}, Commit: 4,
			Entries: []paxos.Entry{{Slot: 5, Type: paxos.EntryNormal, Data: []byte("v")}}}},
		{Paxos: &paxos.Message{Type: paxos.MsgPromise, To: 1, From: 2, Ballot: paxos.Ballot{Round: 3, NodeID: 1},
			Snapshot: &paxos.Snapshot{Slot: 4, Configs: []paxos.ConfigState{{Effective: 1}}}}},
		{Control: &ControlMessage{Kind: ControlBeacon, From: 1, To: 2, Term: 3, Commit: 4, Draining: true}},
	} {
		b := EncodePeerMessage(m)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{peerProtocolRaft, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m PeerMessage
		var err error
		fuzzcheck.Bounded(t, "DecodePeerMessage", b, func(b []byte) { m, err = DecodePeerMessage(b) })
		if err != nil {
			return
		}
		again, err := DecodePeerMessage(EncodePeerMessage(m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("an accepted message does not round-trip:\n got %+v, %v\nwant %+v", again, err, m)
		}
	})
}
