package simpebble_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/sim/simpebble"
)

func TestMain(m *testing.M) {
	// Pebble starts goroutines; every DB the tests open must be closed,
	// including the ones a crash abandons.
	goleak.VerifyTestMain(m)
}

// testLogger drops Pebble's chatter (it replays the WAL on every open) and
// fails the test on its errors.
type testLogger struct{ t *testing.T }

func (testLogger) Infof(string, ...any)                {}
func (l testLogger) Errorf(format string, args ...any) { l.t.Errorf("pebble: "+format, args...) }
func (testLogger) Fatalf(format string, args ...any)   { panic(fmt.Sprintf("pebble: "+format, args...)) }

// store is a node whose state is a Pebble DB on a simpebble.Disk.
type store struct {
	db *pebble.DB
}

func (st *store) Receive(sim.NodeID, any) {}

// Stop closes the DB of a crashed incarnation: it releases Pebble's
// goroutines, and whatever Close writes lands on the old file system.
func (st *store) Stop() {
	if err := st.db.Close(); err != nil {
		panic(err)
	}
}

func get(t *testing.T, db *pebble.DB, key string) (string, bool) {
	t.Helper()
	v, closer, err := db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return string(v), true
}

func TestCrashKeepsOnlySyncedPebbleWrites(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1})
	d := simpebble.New()
	s.AddNode(1, func(env *sim.Env) sim.Process {
		db, err := pebble.Open("db", &pebble.Options{FS: d.FS(), Logger: testLogger{t}})
		if err != nil {
			t.Fatalf("open after %d crashes: %v", d.Crashes(), err)
		}
		return &store{db: db}
	}, d)
	db := s.Process(1).(*store).db
	if err := db.Set([]byte("synced"), []byte("1"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("unsynced"), []byte("1"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, db, "unsynced"); !ok {
		t.Fatal("unsynced write not readable before the crash")
	}

	s.Crash(1)
	s.Restart(1)
	db = s.Process(1).(*store).db
	if _, ok := get(t, db, "synced"); !ok {
		t.Error("synced write lost by the crash")
	}
	if _, ok := get(t, db, "unsynced"); ok {
		t.Error("unsynced write survived the crash")
	}

	// A second crash cycle works on the cloned file system.
	if err := db.Set([]byte("again"), []byte("1"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Crash(1)
	s.Restart(1)
	db = s.Process(1).(*store).db
	if _, ok := get(t, db, "again"); !ok {
		t.Error("synced write after a restart lost by the second crash")
	}
	if d.Crashes() != 2 {
		t.Errorf("Crashes() = %d", d.Crashes())
	}
	s.Process(1).(*store).Stop()
}
