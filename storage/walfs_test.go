package storage

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestIsWALFile(t *testing.T) {
	for name, want := range map[string]bool{
		"000123.log":                       true,
		"000123-001.log":                   true,
		"000123.sst":                       false,
		"MANIFEST-000001":                  false,
		"OPTIONS-000003":                   false,
		"LOCK":                             false,
		"marker.format-version.000001.024": false,
		"000007.blob":                      false,
	} {
		if got := isWALFile(name); got != want {
			t.Errorf("isWALFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestWALSyncFSCountsOnlyWALSyncs drives the wrapper directly: syncs of WAL
// files count, syncs of other files and non-durable SyncTo calls do not.
func TestWALSyncFSCountsOnlyWALSyncs(t *testing.T) {
	var hooked atomic.Int64
	fs := newWALSyncFS(vfs.NewCrashableMem(), func(time.Duration) { hooked.Add(1) })
	must(t, fs.MkdirAll("d", 0o755))

	wal, err := fs.Create("d/000001.log", vfs.WriteCategoryUnspecified)
	must(t, err)
	sst, err := fs.Create("d/000002.sst", vfs.WriteCategoryUnspecified)
	must(t, err)
	for _, f := range []vfs.File{wal, sst} {
		_, err := f.Write([]byte("data"))
		must(t, err)
		must(t, f.Sync())
		must(t, f.SyncData())
		if full, err := f.SyncTo(4); err != nil || full {
			// MemFS's SyncTo never claims a full sync.
			t.Fatalf("SyncTo = %v, %v", full, err)
		}
	}
	if got := fs.stats.syncs.Load(); got != 2 {
		t.Errorf("counted %d syncs, want 2 (Sync and SyncData of the WAL)", got)
	}
	if got := hooked.Load(); got != 2 {
		t.Errorf("OnWALSync called %d times, want 2", got)
	}

	// A recycled WAL is counted too.
	must(t, wal.Close())
	reused, err := fs.ReuseForWrite("d/000001.log", "d/000003.log", vfs.WriteCategoryUnspecified)
	must(t, err)
	must(t, reused.Sync())
	if got := fs.stats.syncs.Load(); got != 3 {
		t.Errorf("counted %d syncs after a recycled WAL's sync, want 3", got)
	}
	must(t, reused.Close())
	must(t, sst.Close())
	if fs.Unwrap() == nil {
		t.Error("Unwrap returned nil")
	}
}

// TestOnWALSyncHook checks that the node's hook sees each WAL sync of a
// running database, with its duration.
func TestOnWALSyncHook(t *testing.T) {
	var calls, total atomic.Int64
	db, err := OpenMem(Options{OnWALSync: func(d time.Duration) {
		calls.Add(1)
		total.Add(int64(d))
	}})
	must(t, err)
	defer closeDB(t, db)
	before := calls.Load()
	set(t, db, "a", "1", true)
	set(t, db, "b", "2", false)
	if got := calls.Load() - before; got != 1 {
		t.Fatalf("hook called %d times for one synced and one unsynced commit, want 1", got)
	}
	s := db.Stats()
	if uint64(calls.Load()) != s.WALSyncs || time.Duration(total.Load()) != s.WALSyncDuration {
		t.Fatalf("hook saw %d syncs / %s, Stats says %d / %s",
			calls.Load(), time.Duration(total.Load()), s.WALSyncs, s.WALSyncDuration)
	}
}
