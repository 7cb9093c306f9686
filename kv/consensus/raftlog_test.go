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

// The log's tail of recent entries answers Entries and Term exactly as
// Pebble does, through appends that follow the log, replace a suffix of
// it (a new leader's), leave a gap in the tail (a batch past its
// bounds), truncations and snapshot installs: after every step, a log
// loaded afresh from disk (no tail) agrees with the one that has it.
func TestRaftLogTailAgreesWithDisk(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const rangeID = 9
	l, err := LoadRaftLog(db, rangeID)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(f func(b *storage.Batch) error) {
		t.Helper()
		b := db.NewBatch()
		defer b.Close()
		if err := f(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	appendRun := func(from, to, term uint64, size int) {
		t.Helper()
		var ents []raft.Entry
		for i := from; i <= to; i++ {
			ents = append(ents, raft.Entry{Index: i, Term: term, Data: bytes.Repeat([]byte{byte(i), byte(term)}, size/2)})
		}
		commit(func(b *storage.Batch) error { return l.Append(b, ents) })
	}
	check := func(step string) {
		t.Helper()
		disk, err := LoadRaftLog(db, rangeID)
		if err != nil {
			t.Fatal(err)
		}
		if disk.Last != l.Last || disk.Trunc.Index != l.Trunc.Index {
			t.Fatalf("%s: log (%d, %d] in memory, (%d, %d] on disk", step, l.Trunc.Index, l.Last, disk.Trunc.Index, disk.Last)
		}
		for lo := l.Trunc.Index + 1; lo <= l.Last; lo++ {
			for _, hi := range []uint64{lo + 1, min(lo+5, l.Last+1), l.Last + 1} {
				for _, maxBytes := range []uint64{0, 100, 1 << 30} {
					got, err1 := l.Entries(lo, hi, maxBytes)
					want, err2 := disk.Entries(lo, hi, maxBytes)
					if err1 != nil || err2 != nil || len(got) != len(want) {
						t.Fatalf("%s: Entries(%d, %d, %d): %d entries (%v) with the tail, %d (%v) from disk", step, lo, hi, maxBytes, len(got), err1, len(want), err2)
					}
					for i := range got {
						if got[i].Index != want[i].Index || got[i].Term != want[i].Term || got[i].Type != want[i].Type || !bytes.Equal(got[i].Data, want[i].Data) {
							t.Fatalf("%s: Entries(%d, %d): entry %d differs: %+v with the tail, %+v from disk", step, lo, hi, i, got[i].Index, want[i].Index)
						}
					}
				}
			}
			t1, err1 := l.Term(lo)
			t2, err2 := disk.Term(lo)
			if t1 != t2 || err1 != nil || err2 != nil {
				t.Fatalf("%s: Term(%d) = %d (%v) with the tail, %d (%v) from disk", step, lo, t1, err1, t2, err2)
			}
		}
	}
	appendRun(1, 10, 1, 100)
	check("appended 1..10")
	appendRun(11, 12, 1, 100)
	check("appended 11..12")
	appendRun(8, 9, 2, 100) // a new leader replaces 8..12 with 8..9
	check("replaced 8..12 by 8..9 of term 2")
	if len(l.tail) == 0 || l.tail[len(l.tail)-1].Index != 9 {
		t.Fatalf("the tail ends at %v, want 9", l.tail)
	}
	appendRun(10, 10+tailMaxEntries+20, 2, 10) // past the tail's bounds
	check("appended past the tail's bound in entries")
	if len(l.tail) > tailMaxEntries {
		t.Fatalf("the tail holds %d entries, over %d", len(l.tail), tailMaxEntries)
	}
	appendRun(l.Last+1, l.Last+3, 2, 40<<10) // past its bound in bytes
	check("appended past the tail's bound in bytes")
	if l.tailBytes > tailMaxBytes+(40<<10) {
		t.Fatalf("the tail holds %d bytes", l.tailBytes)
	}
	last := l.Last
	appendRun(last-1, last+2, 3, 100) // replaces a suffix the tail still holds
	check("replaced a suffix of the bytes-bounded tail")
	commit(func(b *storage.Batch) error { return l.Truncate(b, l.Last-2, raft.ConfState{}) })
	check("truncated to Last-2")
	commit(func(b *storage.Batch) error {
		return l.InstallSnapshot(b, raft.SnapshotMetadata{Index: l.Last + 50, Term: 4})
	})
	check("installed a snapshot")
	if len(l.tail) != 0 {
		t.Fatalf("after a snapshot the tail holds %d entries", len(l.tail))
	}
	appendRun(l.Last+1, l.Last+4, 4, 100)
	check("appended after the snapshot")
}
