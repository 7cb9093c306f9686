package storage

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A database whose syncs fail never reports a synced commit as done:
// Pebble takes the failed commit as fatal, and the logger's Fatalf panics
// (events.go), which stops kvd, so a node never acknowledges what its disk
// did not keep (as etcd panics on a failed WAL sync). A delayed sync only
// delays the commit.
func TestDiskFaults(t *testing.T) {
	db, faults := openWithFaults(t)
	commit := func(key string, sync bool) error {
		b := db.NewBatch()
		defer b.Close()
		if err := b.Set([]byte(key), []byte("v")); err != nil {
			t.Fatal(err)
		}
		return b.Commit(sync)
	}
	if err := commit("before", true); err != nil {
		t.Fatalf("a synced commit without faults: %v", err)
	}

	faults.Set(false, false, 100*time.Millisecond)
	start := time.Now()
	if err := commit("slow", true); err != nil {
		t.Fatalf("a synced commit with slow syncs: %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("a synced commit took %v with syncs delayed by 100ms", took)
	}

	faults.Set(true, false, 0)
	if stopped := stops(func() error { return commit("lost", true) }); stopped == "" {
		t.Fatal("a synced commit succeeded while every sync failed")
	} else {
		t.Logf("a synced commit while syncs fail: %s", stopped)
	}
}

// stops runs f and says how it failed, "" if it did not: an error, or a
// panic (Pebble's fatal errors).
func stops(f func() error) (how string) {
	defer func() {
		if r := recover(); r != nil {
			how = fmt.Sprintf("panic: %v", r)
		}
	}()
	if err := f(); err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestDiskFaultsFailWrites(t *testing.T) {
	db, faults := openWithFaults(t)
	faults.Set(false, true, 0)
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	stopped := stops(func() error { return b.Commit(true) })
	t.Logf("a synced commit while writes fail: %s", stopped)
	if !strings.Contains(stopped, ErrInjectedFault.Error()) {
		t.Fatalf("a synced commit while every write failed: %q, want the injected fault", stopped)
	}
}

// openWithFaults opens a database on disk with DiskFaults, closed when
// the test ends, its faults switched off first.
func openWithFaults(t *testing.T) (*DB, *DiskFaults) {
	t.Helper()
	faults := &DiskFaults{}
	db, err := Open(t.TempDir(), Options{Logger: testLogger(t), Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		faults.Set(false, false, 0)
		if err := db.Close(); err != nil {
			t.Logf("closing after the fault: %v", err)
		}
	})
	return db, faults
}
