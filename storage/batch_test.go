package storage

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestBatchIsAtomicAndInvisibleUntilCommit(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	defer b.Close()
	for i := range 3 {
		if err := b.Set(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := mustGet(t, db, "k0"); ok {
		t.Fatal("an uncommitted write is visible")
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got := scan(t, db, Span{Start: []byte("k"), End: []byte("l")}); len(got) != 3 {
		t.Fatalf("after commit scan = %q, want 3 keys", got)
	}
}

func TestBatchDiscardedOnClose(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, db, "k"); ok {
		t.Fatal("a closed, uncommitted batch was applied")
	}
}

func TestBatchLifecycleErrors(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Set":         b.Set([]byte("k"), nil),
		"Delete":      b.Delete([]byte("k")),
		"DeleteRange": b.DeleteRange([]byte("a"), []byte("b")),
		"Commit":      b.Commit(true),
	} {
		if !errors.Is(err, ErrBatchCommitted) {
			t.Errorf("%s after Commit = %v, want ErrBatchCommitted", name, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := b.Set([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if err := b.Commit(false); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	if b.Count() != 0 || b.Len() != 0 || !b.Empty() {
		t.Errorf("closed batch: Count %d, Len %d, Empty %v", b.Count(), b.Len(), b.Empty())
	}
}

func TestBatchCountLenEmpty(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	defer b.Close()
	if !b.Empty() || b.Count() != 0 {
		t.Fatalf("new batch: Empty %v, Count %d", b.Empty(), b.Count())
	}
	must(t, b.Set([]byte("a"), []byte("1")))
	must(t, b.Delete([]byte("b")))
	must(t, b.DeleteRange([]byte("c"), []byte("d")))
	if b.Empty() || b.Count() != 3 {
		t.Fatalf("Empty %v, Count %d; want false, 3", b.Empty(), b.Count())
	}
	// Header + three records, each sized exactly as recordLen predicts
	// (Delete's is one byte over: no value length).
	want := batchHeaderLen + recordLen([]byte("a"), []byte("1")) +
		recordLen([]byte("b"), nil) - 1 + recordLen([]byte("c"), []byte("d"))
	if b.Len() != want {
		t.Fatalf("Len = %d, want %d", b.Len(), want)
	}
}

func TestBatchMaxBytes(t *testing.T) {
	db, err := OpenMem(Options{MaxBatchBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	b := db.NewBatch()
	defer b.Close()
	value := bytes.Repeat([]byte("v"), 1000)
	n := 0
	for ; ; n++ {
		err := b.Set(fmt.Appendf(nil, "k%02d", n), value)
		if errors.Is(err, ErrBatchTooLarge) {
			break
		}
		must(t, err)
	}
	if n != 4 {
		t.Errorf("%d records of ~1 KiB fit in a 4 KiB batch, want 4", n)
	}
	if b.Len() > 4<<10 {
		t.Errorf("batch grew to %d bytes, past MaxBatchBytes", b.Len())
	}
	count := b.Count()
	// The refused write left the batch as it was, and it still commits.
	must(t, b.Commit(true))
	if got := len(scan(t, db, Span{Start: []byte("k"), End: []byte("l")})); uint32(got) != count {
		t.Fatalf("committed %d keys, batch had %d", got, count)
	}
}

func TestBatchDeleteRange(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	defer b.Close()
	for _, k := range []string{"a", "b", "c", "d"} {
		must(t, b.Set([]byte(k), []byte(k)))
	}
	must(t, b.Commit(false))

	b2 := db.NewBatch()
	defer b2.Close()
	must(t, b2.DeleteRange([]byte("b"), []byte("d")))
	// An empty span writes nothing; an inverted one is refused.
	must(t, b2.DeleteRange([]byte("x"), []byte("x")))
	if err := b2.DeleteRange([]byte("z"), []byte("y")); !errors.Is(err, ErrInvalidSpan) {
		t.Fatalf("inverted DeleteRange = %v, want ErrInvalidSpan", err)
	}
	if b2.Count() != 1 {
		t.Fatalf("Count = %d, want 1", b2.Count())
	}
	must(t, b2.Commit(false))
	if got := scan(t, db, Span{Start: []byte("a"), End: []byte("z")}); !slices.Equal(got, []string{"a=a", "d=d"}) {
		t.Fatalf("after DeleteRange [b, d) scan = %q", got)
	}
}

// TestLogTruncationAndReplicaRemoval shows the intended use of the key
// spans: truncating a range's log and dropping a replica are one DeleteRange
// per span, and touch no other range.
func TestLogTruncationAndReplicaRemoval(t *testing.T) {
	db := openMem(t)
	b := db.NewBatch()
	defer b.Close()
	for _, r := range []uint64{1, 2, 3} {
		must(t, b.Set(HardStateKey(r), []byte("hs")))
		must(t, b.Set(TruncatedStateKey(r), []byte("ts")))
		must(t, b.Set(AppliedStateKey(r), []byte("applied")))
		for i := uint64(1); i <= 100; i++ {
			must(t, b.Set(LogKey(r, i), []byte("entry")))
		}
		for _, k := range []string{"", "a", "b", "\xff"} {
			must(t, b.Set(DataKey(r, []byte(k)), []byte("v")))
		}
	}
	must(t, b.Set(NodeIDKey(), []byte("n1")))
	must(t, b.Set(HintKey("n2", 1), []byte("hint")))
	must(t, b.Commit(true))

	// Truncate range 2's log below index 61.
	tr := db.NewBatch()
	defer tr.Close()
	s := LogSpan(2, 0, 61)
	must(t, tr.DeleteRange(s.Start, s.End))
	must(t, tr.Commit(true))
	if got := logIndexes(t, db, 2); len(got) != 40 || got[0] != 61 || got[39] != 100 {
		t.Fatalf("range 2 log after truncation = %v, want 61..100", got)
	}
	if got := logIndexes(t, db, 1); len(got) != 100 {
		t.Fatalf("truncating range 2 removed range 1 entries: %d left", len(got))
	}

	// Drop replica 2 entirely.
	rm := db.NewBatch()
	defer rm.Close()
	for _, s := range ReplicaSpans(2) {
		must(t, rm.DeleteRange(s.Start, s.End))
	}
	must(t, rm.Commit(true))
	for _, s := range ReplicaSpans(2) {
		if got := scan(t, db, s); len(got) != 0 {
			t.Errorf("span %s still holds %q", s, got)
		}
	}
	for _, r := range []uint64{1, 3} {
		if got := len(logIndexes(t, db, r)); got != 100 {
			t.Errorf("range %d has %d log entries after dropping range 2", r, got)
		}
		if got := len(scan(t, db, RangeDataSpan(r))); got != 4 {
			t.Errorf("range %d has %d data keys after dropping range 2", r, got)
		}
		if _, err := db.Get(HardStateKey(r)); err != nil {
			t.Errorf("range %d hard state: %v", r, err)
		}
	}
	for _, k := range [][]byte{NodeIDKey(), HintKey("n2", 1)} {
		if _, err := db.Get(k); err != nil {
			t.Errorf("%s: %v", FormatKey(k), err)
		}
	}
}

// logIndexes returns the indexes of range r's log entries, in order.
func logIndexes(t *testing.T, db *DB, r uint64) []uint64 {
	t.Helper()
	it, err := db.NewIter(RangeLogSpan(r))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		rangeID, index, err := DecodeLogKey(it.Key())
		if err != nil || rangeID != r {
			t.Fatalf("key %s in range %d's log span: %v", FormatKey(it.Key()), r, err)
		}
		out = append(out, index)
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEmptySyncedCommitSyncs(t *testing.T) {
	db := openMem(t)
	set(t, db, "k", "v", false)
	before := db.Stats()
	b := db.NewBatch()
	defer b.Close()
	must(t, b.Commit(true))
	after := db.Stats()
	if after.WALSyncs <= before.WALSyncs {
		t.Fatalf("an empty synced commit did not sync the WAL (%d -> %d)", before.WALSyncs, after.WALSyncs)
	}
	if after.Commits != before.Commits {
		t.Fatalf("an empty commit was counted: Commits %d -> %d", before.Commits, after.Commits)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Append keeps other's records in order after b's own, and refuses a
// batch that would take b over MaxBatchBytes without changing b.
func TestBatchAppend(t *testing.T) {
	db, err := OpenMem(Options{Logger: testLogger(t), MaxBatchBytes: 4 << 10})
	must(t, err)
	defer closeDB(t, db)
	b, other := db.NewBatch(), db.NewBatch()
	defer b.Close()
	defer other.Close()
	must(t, b.Set([]byte("a"), []byte("1")))
	must(t, b.Set([]byte("b"), []byte("1")))
	must(t, other.Set([]byte("b"), []byte("2"))) // after b's own: it wins
	must(t, other.Delete([]byte("a")))
	must(t, other.Set([]byte("c"), []byte("2")))
	must(t, b.Append(other))
	if b.Count() != 5 || other.Count() != 3 {
		t.Fatalf("counts after Append: b %d, other %d; want 5 and 3", b.Count(), other.Count())
	}
	empty := db.NewBatch()
	defer empty.Close()
	must(t, b.Append(empty)) // adds nothing

	big := db.NewBatch()
	defer big.Close()
	must(t, big.Set([]byte("big"), bytes.Repeat([]byte("x"), 3<<10)))
	must(t, b.Append(big))
	count, size := b.Count(), b.Len()
	if err := b.Append(big); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("Append over MaxBatchBytes = %v, want ErrBatchTooLarge", err)
	}
	if b.Count() != count || b.Len() != size {
		t.Fatalf("a refused Append changed the batch: %d records, %d bytes; was %d, %d", b.Count(), b.Len(), count, size)
	}
	must(t, b.Commit(false))
	if got := scan(t, db, Span{Start: []byte("a"), End: []byte("c\xff")}); !slices.Equal(got, []string{"b=2", "big=" + strings.Repeat("x", 3<<10), "c=2"}) {
		t.Fatalf("after commit scan = %.40q", got)
	}
	if _, ok := mustGet(t, db, "a"); ok {
		t.Fatal("other's delete of a was lost")
	}
	if err := empty.Append(b); !errors.Is(err, ErrBatchCommitted) {
		t.Fatalf("Append of a committed batch = %v, want ErrBatchCommitted", err)
	}
}
