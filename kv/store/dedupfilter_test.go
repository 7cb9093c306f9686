package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/storage"
)

func TestDedupFilter(t *testing.T) {
	f := newDedupFilter(4 * time.Second) // generations of one second
	for _, c := range []struct{ at, gen int64 }{
		{0, 0}, {999_999_999, 0}, {1e9, 1}, {-1, -1}, {-1e9, -1}, {-1e9 - 1, -2},
	} {
		if g := f.generation(c.at); g != c.gen {
			t.Errorf("generation(%d) = %d, want %d", c.at, g, c.gen)
		}
	}
	f.add([]byte("a"), int64(500*time.Millisecond))
	f.add([]byte("b"), int64(2500*time.Millisecond))
	f.add([]byte("c"), -5)
	for _, idem := range []string{"a", "b", "c"} {
		if !f.mayHold([]byte(idem)) {
			t.Errorf("mayHold(%q) = false after add", idem)
		}
	}
	if f.mayHold([]byte("d")) {
		t.Error("mayHold(d) = true, never added")
	}
	// A horizon within a generation keeps it: some of its answers may be
	// at or after the horizon.
	f.expire(int64(1500 * time.Millisecond))
	if f.mayHold([]byte("a")) || f.mayHold([]byte("c")) || !f.mayHold([]byte("b")) {
		t.Errorf("after expire(1.5s): a %v, b %v, c %v; want only b", f.mayHold([]byte("a")), f.mayHold([]byte("b")), f.mayHold([]byte("c")))
	}
	f.expire(int64(3 * time.Second))
	if f.fingerprints() != 0 {
		t.Errorf("%d fingerprints left after every generation expired", f.fingerprints())
	}
}

// loadDedupFilter finds every answer kept within the horizon, on disk or
// in the apply's batch, and leaves the older ones out.
func TestLoadDedupFilter(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const horizon = int64(100 * time.Second)
	b := db.NewBatch()
	for i := range 50 {
		at := horizon + int64(i-25)*int64(time.Second)
		e := dedupEntry{at: at, res: command.Result{Version: uint64(i)}}.Encode()
		if err := b.Set(storage.DedupKey(testRange, []byte(fmt.Sprint("k", i))), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	ab := newApplyBatch()
	ab.dedup["pending"] = dedupEntry{at: horizon}
	f, err := loadDedupFilter(db, testRange, horizon, time.Minute, ab)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if got, want := f.mayHold([]byte(fmt.Sprint("k", i))), i >= 25; got != want {
			t.Errorf("k%d (at horizon%+ds): mayHold = %v, want %v", i, i-25, got, want)
		}
	}
	if !f.mayHold([]byte("pending")) {
		t.Error("the answer kept in the apply's batch is missing")
	}
	if f.fingerprints() != 26 {
		t.Errorf("%d fingerprints, want 26", f.fingerprints())
	}
}
