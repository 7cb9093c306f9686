package storage

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestGetSetDelete(t *testing.T) {
	db := openMem(t)
	if _, ok := mustGet(t, db, "k"); ok {
		t.Fatal("found k in a new database")
	}
	set(t, db, "k", "v1", false)
	if v, ok := mustGet(t, db, "k"); !ok || v != "v1" {
		t.Fatalf("Get(k) = %q, %v; want v1", v, ok)
	}
	set(t, db, "k", "v2", true)
	if v, _ := mustGet(t, db, "k"); v != "v2" {
		t.Fatalf("Get(k) = %q after overwrite; want v2", v)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := b.Delete([]byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get([]byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(k) after Delete = %v, want ErrNotFound", err)
	}
}

func TestGetEmptyValue(t *testing.T) {
	db := openMem(t)
	set(t, db, "k", "", false)
	v, err := db.Get([]byte("k"))
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get of an empty value = %v (nil: %v), %v; want empty non-nil slice", v, v == nil, err)
	}
}

// TestSliceOwnership checks the package's ownership rules: arguments are
// copied, Get results belong to the caller.
func TestSliceOwnership(t *testing.T) {
	db := openMem(t)
	key, value := []byte("key"), []byte("value")
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(key, value); err != nil {
		t.Fatal(err)
	}
	copy(key, "xxx")
	copy(value, "XXXXX")
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get([]byte("key"))
	if err != nil || string(got) != "value" {
		t.Fatalf("Get = %q, %v: the batch kept the caller's slices", got, err)
	}
	copy(got, "YYYYY")
	if again, _ := mustGet(t, db, "key"); again != "value" {
		t.Fatalf("modifying Get's result changed the stored value to %q", again)
	}
}

func TestStoreVersion(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Get(StoreVersionKey())
	if err != nil || binary.BigEndian.Uint64(v) != storeVersion {
		t.Fatalf("store version = %x, %v; want %d", v, err, storeVersion)
	}
	closeDB(t, db)
	// Reopening a store of the current version works.
	db, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	closeDB(t, db)
}

func TestStoreVersionRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value []byte
		want  error
	}{
		{"newer", binary.BigEndian.AppendUint64(nil, storeVersion+1), ErrUnsupportedVersion},
		{"short", []byte{1, 2, 3}, ErrCorruption},
		{"zero", make([]byte, 8), ErrCorruption},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			db, err := Open("db", Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			b := db.NewBatch()
			defer b.Close()
			if err := b.Set(StoreVersionKey(), tc.value); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			closeDB(t, db)
			if db, err := Open("db", Options{FS: fs}); !errors.Is(err, tc.want) {
				if err == nil {
					closeDB(t, db)
				}
				t.Fatalf("Open with store version %x = %v, want %v", tc.value, err, tc.want)
			}
			// The failed Open closed the database and released the directory.
			if _, err := Open("db", Options{FS: fs}); !errors.Is(err, tc.want) {
				t.Fatalf("second Open = %v, want %v (is the directory still locked?)", err, tc.want)
			}
		})
	}
}

func TestDoubleClose(t *testing.T) {
	db := openMem(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestCloseReportsLeakedIterator(t *testing.T) {
	db, err := OpenMem(Options{})
	if err != nil {
		t.Fatal(err)
	}
	set(t, db, "a", "1", false)
	if _, err := db.NewIter(Span{Start: []byte("a"), End: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "leaked iterators") ||
		!strings.HasPrefix(err.Error(), "storage: ") {
		t.Fatalf("Close with an open iterator = %v, want a leaked-iterators error", err)
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	if db2, err := Open("db", Options{FS: fs}); err == nil {
		closeDB(t, db2)
		t.Fatal("opened a directory that is already open")
	}
}

func TestOpenOnDisk(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if db.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", db.Dir(), dir)
	}
	set(t, db, "k", "v", true)
	closeDB(t, db)

	db, err = Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	if v, ok := mustGet(t, db, "k"); !ok || v != "v" {
		t.Fatalf("after reopen Get(k) = %q, %v", v, ok)
	}
}

func TestSyncWAL(t *testing.T) {
	db := openMem(t)
	set(t, db, "k", "v", false)
	before := db.Stats().WALSyncs
	if err := db.SyncWAL(); err != nil {
		t.Fatal(err)
	}
	if got := db.Stats().WALSyncs; got <= before {
		t.Fatalf("WALSyncs %d -> %d: SyncWAL did not sync", before, got)
	}
}

func TestStats(t *testing.T) {
	db := openMem(t)
	base := db.Stats()
	set(t, db, "a", "1", false)
	set(t, db, "b", "2", true)
	set(t, db, "c", "3", true)
	s := db.Stats()
	if d := s.Commits - base.Commits; d != 3 {
		t.Errorf("Commits grew by %d, want 3", d)
	}
	if d := s.SyncedCommits - base.SyncedCommits; d != 2 {
		t.Errorf("SyncedCommits grew by %d, want 2", d)
	}
	if d := s.WALSyncs - base.WALSyncs; d != 2 {
		// Sequential synced commits cannot share a sync.
		t.Errorf("WALSyncs grew by %d, want 2", d)
	}
	if s.WALBytesWritten <= base.WALBytesWritten {
		t.Errorf("WALBytesWritten did not grow: %d -> %d", base.WALBytesWritten, s.WALBytesWritten)
	}
	if s.MemTableBytes == 0 {
		t.Error("MemTableBytes is 0")
	}
}

func TestGetReadsLatest(t *testing.T) {
	db := openMem(t)
	for i := range 10 {
		set(t, db, "k", strings.Repeat("v", i), false)
	}
	if v, _ := mustGet(t, db, "k"); v != strings.Repeat("v", 9) {
		t.Fatalf("Get = %q", v)
	}
	if got := scan(t, db, Span{Start: []byte("a"), End: []byte("z")}); !slices.Equal(got, []string{"k=vvvvvvvvv"}) {
		t.Fatalf("scan = %q", got)
	}
}

// A store written by an older layout opens, and is marked with this
// layout's version, so that the older binary refuses it from then on.
func TestStoreVersionUpgraded(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(StoreVersionKey(), binary.BigEndian.AppendUint64(nil, 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	if db, err = Open("db", Options{FS: fs}); err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	if v, err := db.Get(StoreVersionKey()); err != nil || binary.BigEndian.Uint64(v) != storeVersion {
		t.Fatalf("store version after opening a version 1 store = %x, %v; want %d", v, err, storeVersion)
	}
}
