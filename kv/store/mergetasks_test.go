package store

import (
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// A leader whose applied span reaches past the catalog's over its right
// neighbour reports a merge to record only once it has applied its whole
// log: a replica behind it (a split the catalog has, not applied here
// yet, its file still being written, or a new leader that has not
// committed in its term) holds the same wide span, and recording a merge
// for it would drop the split's new range from the catalog.
func TestMergeTasksOnlyFromAFullyAppliedLeader(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const left, right = 5, 6
	log, err := consensus.LoadRaftLog(db, left)
	if err != nil {
		t.Fatal(err)
	}
	var ents []raft.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, raft.Entry{Index: i, Term: 2})
	}
	b := db.NewBatch()
	if err := log.Append(b, ents); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	const mid = 1 << 63
	cat := catalog.NewCatalog()
	cat.Keyspaces["k"] = catalog.KeyspaceDescriptor{Name: "k", Mode: catalog.ModeRaft}
	cat.Ranges[left] = &catalog.RangeDescriptor{ID: left, Keyspace: "k", Mode: catalog.ModeRaft, Span: catalog.Span{Lo: 0, Hi: mid}}
	cat.Ranges[right] = &catalog.RangeDescriptor{ID: right, Keyspace: "k", Mode: catalog.ModeRaft, Span: catalog.Span{Lo: mid, Hi: 0}, Parent: left}
	r := &replica{desc: cat.Ranges[left], Core: &consensus.RaftCore{Log: log}, Role: consensus.RoleLeader,
		split: splitState{known: true, span: catalog.Span{}}}
	s := &Store{cat: cat, Replicas: map[uint64]*replica{left: r}}

	for _, c := range []struct {
		name    string
		set     func()
		records bool
	}{
		{"applied through its commit index in its term", func() { log.HardState = raft.HardState{Term: 2, Commit: 10}; r.Applied = 10 }, true},
		{"behind its commit index", func() { r.Applied = 9 }, false},
		{"a leader that has not committed in its term", func() { log.HardState.Term, r.Applied = 3, 10 }, false},
		{"a split's file being written", func() { log.HardState.Term, r.splitting = 2, &splitJob{} }, false},
	} {
		c.set()
		tasks := s.MergeTasks()
		if got := len(tasks) == 1 && tasks[0].Left == left && tasks[0].Right == right; got != c.records || (!c.records && len(tasks) > 0) {
			t.Errorf("%s: MergeTasks = %+v, want a merge to record: %v", c.name, tasks, c.records)
		}
	}
}
