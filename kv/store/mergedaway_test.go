package store

import (
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/storage"
)

// A subsumed replica's state is of no more use once a replica of its own
// keyspace here holds the start of its span; a range of another keyspace
// with the same hash span holds none of its keys (keyspaces hash into the
// same space), and the replica waits for its merge all the same.
func TestTakenHereIsPerKeyspace(t *testing.T) {
	const mid = 1 << 63
	right := &replica{desc: &catalog.RangeDescriptor{ID: 6, Keyspace: "a"},
		split: splitState{known: true, span: catalog.Span{Lo: mid}, subsumedInto: 5, subsumedAt: 9}}
	for _, c := range []struct {
		name string
		left *replica
		keep bool
	}{
		{"its left neighbour has not merged it", &replica{desc: &catalog.RangeDescriptor{ID: 5, Keyspace: "a"},
			split: splitState{known: true, span: catalog.Span{Hi: mid}}}, true},
		{"its left neighbour merged it", &replica{desc: &catalog.RangeDescriptor{ID: 5, Keyspace: "a"},
			split: splitState{known: true}}, false},
		{"a range of another keyspace holds its span", &replica{desc: &catalog.RangeDescriptor{ID: 8, Keyspace: "b"},
			split: splitState{known: true}}, true},
		{"a range that never split holds it (its span is unknown)", &replica{desc: &catalog.RangeDescriptor{ID: 5, Keyspace: "a"}}, true},
		{"a subsumed range holds its span", &replica{desc: &catalog.RangeDescriptor{ID: 5, Keyspace: "a"},
			split: splitState{known: true, subsumedInto: 4}}, true},
	} {
		s := &Store{Replicas: map[uint64]*replica{6: right, c.left.desc.ID: c.left}}
		if got := s.keepSubsumed(right); got != c.keep {
			t.Errorf("%s: keepSubsumed = %v, want %v", c.name, got, c.keep)
		}
		if got := s.takenHere("a", mid, 6); got == c.keep {
			t.Errorf("%s: takenHere = %v, want %v", c.name, got, !c.keep)
		}
	}
}

// The keyspace of a range waiting here, which the catalog no longer
// lists, is that of the range it was subsumed into, found through the
// tombstones of the ranges merged away since.
func TestSubsumedKeyspaceFollowsTombstones(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cat := catalog.NewCatalog()
	cat.Ranges[5] = &catalog.RangeDescriptor{ID: 5, Keyspace: "a", Mode: catalog.ModeRaft}
	s := &Store{DB: db, cat: cat, Replicas: map[uint64]*replica{
		9: {desc: &catalog.RangeDescriptor{ID: 9, Keyspace: "b"}, split: splitState{known: true, subsumedInto: 3}},
	}}
	// 6 merged into 5 here; 7 and 8 merged into each other in a loop
	// (never written by a store: the walk must end all the same).
	for id, into := range map[uint64]uint64{6: 5, 7: 8, 8: 7} {
		st := splitState{known: true, subsumedInto: into, subsumedAt: 1}
		b := db.NewBatch()
		if err := b.Set(storage.SplitStateKey(id), st.encode()); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	for _, c := range []struct {
		into uint64
		ks   string
		ok   bool
	}{
		{5, "a", true}, // the catalog's
		{6, "a", true}, // through 6's tombstone
		{9, "b", true}, // a replica here, which the catalog no longer lists
		{4, "", false}, // nothing of 4 here
		{7, "", false}, // a loop
	} {
		ks, ok, err := s.subsumedKeyspace(splitState{known: true, subsumedInto: c.into})
		if err != nil || ks != c.ks || ok != c.ok {
			t.Errorf("subsumed into %d: keyspace %q, %v, %v; want %q, %v", c.into, ks, ok, err, c.ks, c.ok)
		}
	}
}
