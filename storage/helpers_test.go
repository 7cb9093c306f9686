package storage

import (
	"errors"
	"log/slog"
	"testing"
)

// testLogger logs warnings and errors to the test's output, shown when the
// test fails or with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openMem opens an in-memory database that is closed when the test ends.
func openMem(t testing.TB) *DB {
	t.Helper()
	db, err := OpenMem(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("OpenMem: %v", err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	return db
}

// closeDB closes db unless the test already did.
func closeDB(t testing.TB, db *DB) {
	t.Helper()
	if err := db.Close(); err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Close: %v", err)
	}
}

// set commits key=value in its own batch.
func set(t testing.TB, db *DB, key, value string, sync bool) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte(key), []byte(value)); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	if err := b.Commit(sync); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// mustGet returns the value of key, failing the test on any error but
// ErrNotFound, which it reports as ok == false.
func mustGet(t testing.TB, r Reader, key string) (value string, ok bool) {
	t.Helper()
	v, err := r.Get([]byte(key))
	if errors.Is(err, ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), true
}

// scan returns the keys and values in bounds, in order.
func scan(t testing.TB, r Reader, bounds Span) []string {
	t.Helper()
	it, err := r.NewIter(bounds)
	if err != nil {
		t.Fatalf("NewIter(%s): %v", bounds, err)
	}
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			t.Fatalf("Value: %v", err)
		}
		out = append(out, string(it.Key())+"="+string(v))
	}
	if err := it.Close(); err != nil {
		t.Fatalf("iterator: %v", err)
	}
	return out
}
