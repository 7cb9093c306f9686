package records

import (
	"log/slog"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// MoveKey merges last writer wins into what the new range holds (an
// older moved record never replaces a newer one), takes the higher
// promise and acceptance, empties the old range of the key, keeps range
// sizes, and changes nothing when done again.
func TestMoveKey(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := NewStore(db)
	const from, to = 7, 9
	write := func(r uint64, key string, rec wrn.Record) {
		t.Helper()
		if _, _, err := s.Write(r, []byte(key), rec); err != nil {
			t.Fatal(err)
		}
	}
	old := wrn.Record{Version: ver(10, 0, 1), Value: []byte("old")}
	newer := wrn.Record{Version: ver(20, 0, 2), Value: []byte("newer")}
	write(from, "a", old)   // only in the old range
	write(from, "b", old)   // older than the new range's
	write(to, "b", newer)   //
	write(from, "c", newer) // newer than the new range's
	write(to, "c", old)     //
	step := func(r uint64, key string, m paxos.BasicMessage) {
		t.Helper()
		if _, err := s.StepAcceptor(1, r, []byte(key), m); err != nil {
			t.Fatal(err)
		}
	}
	b := func(round uint64) paxos.Ballot { return paxos.Ballot{Round: round, NodeID: 5} }
	step(from, "a", paxos.BasicMessage{Type: paxos.BasicPrepare, From: 5, Ballot: b(3)})
	step(to, "a", paxos.BasicMessage{Type: paxos.BasicAccept, From: 5, Ballot: b(2), Value: []byte("accepted")})
	if _, err := s.Size(from); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Size(to); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time: nothing to move
		for _, key := range []string{"a", "b", "c", "d"} {
			if _, err := s.MoveKey(from, to, []byte(key), MoveCanaries{}); err != nil {
				t.Fatal(err)
			}
		}
		for key, want := range map[string]wrn.Record{"a": old, "b": newer, "c": newer} {
			got, err := s.Read(to, []byte(key))
			if err != nil || got.Version != want.Version {
				t.Errorf("key %s in the new range: %+v, %v; want version %v", key, got, err, want.Version)
			}
			if gone, _ := s.Read(from, []byte(key)); !gone.Version.IsZero() {
				t.Errorf("key %s still in the old range: %+v", key, gone)
			}
		}
		st, err := s.AcceptorState(to, []byte("a"))
		if err != nil || st.Promised != b(3) || st.Accepted != b(2) || string(st.Value) != "accepted" {
			t.Errorf("merged acceptor: %+v, %v; want promised %v, accepted %v", st, err, b(3), b(2))
		}
		if holds, err := s.Holds(from); holds || err != nil {
			t.Errorf("the old range holds something still (%v)", err)
		}
	}
	sizeFrom, _ := s.Size(from)
	sizeTo, _ := s.Size(to)
	s.ForgetSize(to)
	counted, _ := s.Size(to)
	if sizeFrom != 0 || sizeTo != counted {
		t.Errorf("sizes after the moves: old range %d, new range %d (counted again: %d)", sizeFrom, sizeTo, counted)
	}
}

// KeysOutside lists the keys of records, or of acceptor states, that a
// predicate refuses, a page at a time.
func TestKeysOutside(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := NewStore(db)
	for _, k := range []string{"in1", "out1", "out2"} {
		if _, _, err := s.Write(3, []byte(k), wrn.Record{Version: ver(1, 0, 1), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.StepAcceptor(1, 3, []byte("out3"), paxos.BasicMessage{Type: paxos.BasicPrepare, From: 2, Ballot: paxos.Ballot{Round: 1, NodeID: 2}}); err != nil {
		t.Fatal(err)
	}
	inSpan := func(k []byte) bool { return string(k[:2]) == "in" }
	keys, next, err := s.KeysOutside(3, false, inSpan, nil, 10)
	if err != nil || len(keys) != 2 || string(keys[0]) != "out1" || string(keys[1]) != "out2" || next != nil {
		t.Errorf("KeysOutside of the records: %q, next %q, %v", keys, next, err)
	}
	keys, next, _ = s.KeysOutside(3, false, inSpan, nil, 1)
	if len(keys) != 1 || string(next) != "out1" {
		t.Errorf("KeysOutside with limit 1: %q, next %q", keys, next)
	}
	keys, next, _ = s.KeysOutside(3, false, inSpan, next, 1)
	if len(keys) != 1 || string(keys[0]) != "out2" {
		t.Errorf("KeysOutside after out1: %q, next %q", keys, next)
	}
	keys, _, err = s.KeysOutside(3, true, inSpan, nil, 10)
	if err != nil || len(keys) != 1 || string(keys[0]) != "out3" {
		t.Errorf("KeysOutside of the acceptor states: %q, %v", keys, err)
	}
}
