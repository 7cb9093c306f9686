package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// The split's file (splitfile.go), without a store's loop around it: a
// range filled by fillRange (range testRange, index 42) is split by
// ingestSplit, and the database must then hold exactly what the split
// promises.

// splitStore is a store around db with nothing running, enough for
// ingestSplit.
func splitStore(db *storage.DB, canary Canary) *Store {
	cfg := testConfig(1 << 20)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Canary = canary
	return &Store{Config: *cfg, DB: db, Logger: cfg.Logger}
}

// ingestSplit writes p's file as a split's goroutine does, from a
// snapshot of the database as it stands, and ingests it as the loop does.
func (s *Store) ingestSplit(p *splitPlan) (splitSizes, error) {
	snap := s.DB.NewSnapshot()
	defer snap.Close()
	files, sz, err := writeSplitFiles(context.Background(), s.DB, snap, p, s.Config.Canary.SplitStateFirst)
	if err != nil {
		return sz, err
	}
	return sz, s.ingestSplitFiles(p, files)
}

// testSplitPlan splits testRange at the middle of the hash space into
// born, at index 43.
func testSplitPlan(born uint64, create bool) *splitPlan {
	return &splitPlan{old: testRange, born: born, index: 43, span: catalog.Span{}, mid: 1 << 63, create: create,
		found: consensus.SplitFounding{Index: 43, Term: 2, Conf: raft.ConfState{Voters: []raft.Member{{ID: 1}}, Geometry: "majority"}}, horizon: 1000}
}

// rangeKeys returns range id's user keys and values.
func rangeKeys(t testing.TB, db storage.Reader, id uint64) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := command.EachData(db, id, nil, nil, func(k, v []byte) (bool, error) {
		out[string(k)] = bytes.Clone(v)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkSplit checks db after p's split of a range that held before
// (user key to raw value): each key is in the range its hash says, under
// that range's prefix only, with its value; the applied indexes, split
// states, Raft state and dedup state are the split's.
func checkSplit(t testing.TB, db *storage.DB, p *splitPlan, before map[string][]byte, sz splitSizes) {
	t.Helper()
	left, right := rangeKeys(t, db, p.old), rangeKeys(t, db, p.born)
	var leftBytes, rightBytes uint64
	for k, v := range before {
		isRight := p.right().Contains(catalog.HashKey([]byte(k)))
		in, out := left, right
		if isRight {
			in, out = right, left
		}
		if got, ok := in[k]; !ok || !bytes.Equal(got, v) {
			t.Fatalf("key %q: %d bytes in the range its hash names, want its %d bytes (present: %v)", k, len(got), len(v), ok)
		}
		if _, ok := out[k]; ok {
			t.Fatalf("key %q is in both ranges", k)
		}
		dv, _ := command.DecodeValue(v)
		if !isRight {
			leftBytes += splitBytes([]byte(k), &dv)
		} else {
			rightBytes += splitBytes([]byte(k), &dv)
		}
	}
	if len(left)+len(right) != len(before) {
		t.Fatalf("%d keys on the left and %d on the right, want %d in all", len(left), len(right), len(before))
	}
	if sz.left != leftBytes || sz.right != rightBytes {
		t.Errorf("sizes %+v, want left %d right %d", sz, leftBytes, rightBytes)
	}
	for _, id := range []uint64{p.old, p.born} {
		applied, err := consensus.LoadApplied(db, id)
		if err != nil || applied != p.index {
			t.Errorf("range %d applied %d (%v), want %d", id, applied, err, p.index)
		}
	}
	st, err := loadSplitState(db, p.old)
	if want := (splitState{known: true, span: catalog.Span{Lo: p.span.Lo, Hi: p.mid}, bytes: leftBytes, lastMid: p.mid, lastNew: p.born}); err != nil || st != want {
		t.Errorf("the old range's split state is %+v (%v), want %+v", st, err, want)
	}
	st, err = loadSplitState(db, p.born)
	if want := (splitState{known: true, span: p.right(), bytes: rightBytes}); err != nil || st != want {
		t.Errorf("the new range's split state is %+v (%v), want %+v", st, err, want)
	}
	if has, err := consensus.HasRangeState(db, p.born); err != nil || !has {
		t.Errorf("the new range has no Raft state (%v)", err)
	}
	// fillRange kept answers at 500, 1500 and 2500 under horizon 1000:
	// the new range has the last two, with their expiry entries, and the
	// old range all three still.
	for _, c := range []struct {
		id   uint64
		want int
	}{{p.old, 3}, {p.born, 2}} {
		entries, expiry := 0, 0
		for _, sp := range []struct {
			span storage.Span
			n    *int
		}{{storage.RangeDedupEntrySpan(c.id), &entries}, {storage.DedupExpirySpan(c.id, 1<<62), &expiry}} {
			if err := eachKey(db, sp.span, func(_, _ []byte) error { *sp.n++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if entries != c.want || expiry != c.want {
			t.Errorf("range %d keeps %d answers and %d expiry entries, want %d of each", c.id, entries, expiry, c.want)
		}
	}
	if h, err := loadDedupHorizon(db, p.born); err != nil || h != 1000 {
		t.Errorf("the new range's horizon is %d (%v), want 1000", h, err)
	}
	if files, err := db.StagedFiles(); err != nil || len(files) != 0 {
		t.Errorf("staged files left: %v (%v)", files, err)
	}
}

// A split writes both halves whichever range ID sorts first (the file's
// keys must be in order either way), and a new range that has state here
// already is left alone while the old range's right half goes.
func TestSplitFile(t *testing.T) {
	for _, born := range []uint64{testRange + 2, testRange - 2} {
		t.Run(fmt.Sprintf("born-%d", born), func(t *testing.T) {
			db := quietDB(t, "")
			fillRange(t, db, 500, 100)
			before := rangeKeys(t, db, testRange)
			p := testSplitPlan(born, true)
			sz, err := splitStore(db, Canary{}).ingestSplit(p)
			if err != nil {
				t.Fatal(err)
			}
			checkSplit(t, db, p, before, sz)
		})
	}
	t.Run("born-ahead", func(t *testing.T) {
		db := quietDB(t, "")
		fillRange(t, db, 200, 100)
		before := rangeKeys(t, db, testRange)
		// The new range's replica here started from the catalog and is
		// ahead: its state and data must stay as they are.
		const born = testRange + 1
		theirs := command.Value{Version: 99, Data: []byte("theirs")}
		b := db.NewBatch()
		err := errors.Join(b.Set(storage.DataKey(born, []byte("ahead")), theirs.Encode()),
			b.Set(storage.AppliedStateKey(born), consensus.AppliedState(77)))
		if err == nil {
			err = b.Commit(false)
		}
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := testSplitPlan(born, false)
		if _, err := splitStore(db, Canary{}).ingestSplit(p); err != nil {
			t.Fatal(err)
		}
		got := rangeKeys(t, db, born)
		if len(got) != 1 || got["ahead"] == nil {
			t.Errorf("the new range's data changed: %d keys", len(got))
		}
		if applied, _ := consensus.LoadApplied(db, born); applied != 77 {
			t.Errorf("the new range's applied index is %d, want 77 as it was", applied)
		}
		for k := range rangeKeys(t, db, testRange) {
			if p.right().Contains(catalog.HashKey([]byte(k))) {
				t.Fatalf("the old range kept key %q of its right half", k)
			}
		}
		if n := len(rangeKeys(t, db, testRange)); n == 0 || n == len(before) {
			t.Errorf("the old range holds %d of its %d keys, want about half", n, len(before))
		}
	})
}

// The canary SplitDropsLastKey must be caught by checkSplit: a test that
// cannot fail proves nothing.
func TestSplitFileCanary(t *testing.T) {
	db := quietDB(t, "")
	fillRange(t, db, 100, 100)
	before := rangeKeys(t, db, testRange)
	p := testSplitPlan(testRange+1, true)
	p.dropLastKey = true
	sz, err := splitStore(db, Canary{}).ingestSplit(p)
	if err != nil {
		t.Fatal(err)
	}
	ct := &recordT{TB: t}
	func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			checkSplit(ct, db, p, before, sz)
		}()
		<-done
	}()
	if !ct.failed {
		t.Fatal("a split that lost its right half's last key passed the checks")
	}
}

// recordT records a failure instead of failing the test; Fatal ends the
// calling goroutine, as it ends a test's.
type recordT struct {
	testing.TB
	failed bool
}

func (r *recordT) Helper()               {}
func (r *recordT) Errorf(string, ...any) { r.failed = true }
func (r *recordT) Fatalf(string, ...any) { r.failed = true; runtime.Goexit() }
func (r *recordT) Fatal(...any)          { r.failed = true; runtime.Goexit() }

// Streaming holds an iterator and the writer's blocks, not the range: a
// split of a range of QKV_SPLIT_BIG MiB (128 by default; 16 with -short
// or the race detector), on disk, with a MaxBatchBytes of 64 KiB, grows
// the heap by far less than the range. It logs the figures.
func TestSplitFileMemory(t *testing.T) {
	mib := 128
	if v := os.Getenv("QKV_SPLIT_BIG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("QKV_SPLIT_BIG=%q: %v", v, err)
		}
		mib = n
	}
	if testing.Short() || raceEnabled {
		mib = 16
	}
	const valueSize = 4 << 10
	dir := t.TempDir()
	opts := storage.Options{CacheSizeBytes: 8 << 20, MemTableSizeBytes: 4 << 20, Logger: slog.New(slog.DiscardHandler)}
	fill, err := storage.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	fillRange(t, fill, mib<<20/valueSize, valueSize) // in batches of 4 MiB
	if err := fill.Close(); err != nil {
		t.Fatal(err)
	}
	opts.MaxBatchBytes = 64 << 10
	db, err := storage.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := testSplitPlan(testRange+1, true)
	s := splitStore(db, Canary{})

	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	base := liveHeap()
	heapPeak := watchHeap()
	start := time.Now()
	sz, err := s.ingestSplit(p)
	elapsed := time.Since(start)
	peak := heapPeak()
	if err != nil {
		t.Fatal(err)
	}
	growth := int64(peak) - int64(base)
	total := sz.left + sz.right
	t.Logf("split of a %d MiB range (%d MiB moved) in %v: %.0f MiB/s written; live heap peak %.1f MiB above the %.1f MiB before",
		total>>20, sz.right>>20, elapsed.Round(time.Millisecond), float64(total)/(1<<20)/elapsed.Seconds(),
		float64(growth)/(1<<20), float64(base)/(1<<20))
	if total < uint64(mib)<<20*9/10 {
		t.Fatalf("the split counted %d bytes in a range of %d MiB", total, mib)
	}
	if limit := int64(16 << 20); growth > limit {
		t.Errorf("the heap grew by %d MiB while a %d MiB range split, want under %d MiB", growth>>20, mib, limit>>20)
	}
	count := func(id uint64) int {
		n := 0
		if err := eachKey(db, storage.RangeDataSpan(id), func(_, _ []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if left, right := count(p.old), count(p.born); left+right != mib<<20/valueSize || left == 0 || right == 0 {
		t.Errorf("%d keys on the left and %d on the right, want %d in all", left, right, mib<<20/valueSize)
	}
}
