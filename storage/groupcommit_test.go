package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// commitSmall commits one small synced batch, as a range appending a log
// entry would: key (writer, seq), 64-byte value.
func commitSmall(db *DB, writer, seq uint64, value []byte) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(LogKey(writer, seq), value); err != nil {
		return err
	}
	return b.Commit(true /* sync */)
}

// TestGroupCommit checks on a real directory, with real fsyncs, that
// concurrent synced commits share WAL syncs: fewer syncs than commits. Pebble
// groups every commit that arrives while a sync is in flight into the next
// one, so with 64 writers started together this holds by a wide margin; a
// failure means commits are being synced one by one.
func TestGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("real fsyncs")
	}
	const writers, perWriter = 64, 20
	db, err := Open(t.TempDir(), Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)

	before := db.Stats()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, writers)
		value = make([]byte, 64)
	)
	for w := range uint64(writers) {
		wg.Go(func() {
			<-start
			for i := range uint64(perWriter) {
				if err := commitSmall(db, w+1, i, value); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	after := db.Stats()
	commits := after.SyncedCommits - before.SyncedCommits
	syncs := after.WALSyncs - before.WALSyncs
	if commits != writers*perWriter {
		t.Fatalf("counted %d synced commits, want %d", commits, writers*perWriter)
	}
	if syncs == 0 || syncs >= commits {
		t.Fatalf("%d synced commits took %d WAL syncs: no group commit", commits, syncs)
	}
	t.Logf("%d synced commits, %d WAL syncs: %.1f commits per sync",
		commits, syncs, float64(commits)/float64(syncs))

	// Every one of them is readable.
	for w := range uint64(writers) {
		if got := len(logIndexes(t, db, w+1)); got != perWriter {
			t.Fatalf("writer %d: %d entries, want %d", w+1, got, perWriter)
		}
	}
}

// BenchmarkSyncedCommit measures small synced commits from 1, 16 and 128
// concurrent writers on a real directory with real fsyncs (on the in-memory
// filesystem syncs are free and would prove nothing). One op is one synced
// commit. With group commit, syncs/s stays near what the disk allows while
// ops/s grows with the number of writers.
func BenchmarkSyncedCommit(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := db.Close(); err != nil {
					b.Error(err)
				}
			}()
			value := make([]byte, 64)
			var next atomic.Int64 // ops handed out so far
			before := db.Stats()
			b.ResetTimer()

			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						if err := commitSmall(db, uint64(w+1), uint64(n), value); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()

			b.StopTimer()
			secs := b.Elapsed().Seconds()
			syncs := db.Stats().WALSyncs - before.WALSyncs
			b.ReportMetric(float64(b.N)/secs, "ops/s")
			b.ReportMetric(float64(syncs)/secs, "syncs/s")
			if syncs > 0 {
				b.ReportMetric(float64(b.N)/float64(syncs), "commits/sync")
			}
		})
	}
}
