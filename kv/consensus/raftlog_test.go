package consensus

import (
	"bytes"
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// A raft log is truncated by bytes as well as by entries: entries of 256
// KiB pass LogTruncateBytes long before LogTruncateEntries, and the log
// then keeps at most LogKeepBytes of them; small entries are still
// truncated by count, keeping LogKeepEntries. The sizes the decision
// reads survive a restart (read back from the log) and follow appends
// that replace a suffix and truncations.
func TestRaftLogTruncatesByBytes(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rangeID = 7
	host := &Host{DB: db, LogTruncateEntries: 100, LogKeepEntries: 10, LogTruncateBytes: 1 << 20, LogKeepBytes: 300 << 10}
	open := func() *RaftCore {
		l, err := LoadRaftLog(db, rangeID)
		if err != nil {
			t.Fatal(err)
		}
		return &RaftCore{h: host, Log: l, rg: Range{Desc: &catalog.RangeDescriptor{ID: rangeID}}}
	}
	appendEntries := func(c *RaftCore, from, to uint64, size int) {
		var ents []raft.Entry
		for i := from; i <= to; i++ {
			ents = append(ents, raft.Entry{Index: i, Term: 1, Data: bytes.Repeat([]byte{'x'}, size)})
		}
		b := db.NewBatch()
		defer b.Close()
		if err := c.Log.Append(b, ents); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	c := open()
	// 3 entries of 256 KiB: 768 KiB, under 1 MiB + 300 KiB.
	appendEntries(c, 1, 3, 256<<10)
	if idx, err := c.compactTo(3); err != nil || idx != 0 {
		t.Fatalf("compactTo(3) with 768 KiB of log = %d, %v; want 0 (nothing yet)", idx, err)
	}
	// A restart forgets the sizes; 3 more entries make 1.5 MiB.
	c = open()
	appendEntries(c, 4, 6, 256<<10)
	idx, err := c.compactTo(6)
	if err != nil || idx != 5 {
		t.Fatalf("compactTo(6) with 1.5 MiB of 256 KiB entries = %d, %v; want 5 (one entry kept: two weigh more than 300 KiB)", idx, err)
	}
	b := db.NewBatch()
	if err := c.Log.Truncate(b, idx, raft.ConfState{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if sizes, weight, _ := c.Log.Sizes(); len(sizes) != 1 || weight != uint64(sizes[0]) {
		t.Fatalf("after truncating to 5 the log sizes %d entries, want 1", len(sizes))
	}
	// An append replacing a suffix replaces its sizes.
	appendEntries(c, 7, 9, 10)
	appendEntries(c, 8, 8, 20)
	if sizes, weight, _ := c.Log.Sizes(); len(sizes) != 3 || weight != uint64(sizes[0])+uint64(sizes[1])+uint64(sizes[2]) {
		t.Fatalf("after replacing the suffix from 8 the log sizes %d entries (6..8), want 3", len(sizes))
	}
	// Small entries: truncated by count, keeping LogKeepEntries.
	appendEntries(c, 9, 120, 10)
	if idx, err := c.compactTo(120); err != nil || idx != 110 {
		t.Fatalf("compactTo(120) with 115 small entries = %d, %v; want 110 (10 kept)", idx, err)
	}
	// Only applied entries count and go.
	if idx, err := c.compactTo(50); err != nil || idx != 0 {
		t.Fatalf("compactTo(50) = %d, %v; want 0 (45 small applied entries)", idx, err)
	}
}
