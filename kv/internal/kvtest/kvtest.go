// Package kvtest holds the helpers that the node's tests share across
// packages: a quiet logger, an in-memory database, a one-node store, the
// retries a fresh node's first requests need, and metric values. Only
// tests import it.
//
// It may import kv/catalog, kv/store, storage and the Prometheus client:
// never the packages above the store, so that their tests can use it.
package kvtest

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// Quiet is a logger that keeps only errors, and drops them.
func Quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// NewMemDB opens a database on an in-memory file system, closed at the
// end of the test.
func NewMemDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), Logger: Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// OpenStore founds a one-node cluster on db, node n1 in zone z1, with
// cfg's tuning and a 10 ms tick. The caller closes the store.
func OpenStore(t testing.TB, db *storage.DB, cfg store.StoreConfig) *store.Store {
	t.Helper()
	cfg.TickInterval, cfg.Logger, cfg.Seed = 10*time.Millisecond, Quiet(), 1
	cfg.Self = catalog.NodeDescriptor{Name: "n1", Addr: "127.0.0.1:1", Zone: "z1", Weight: 1}
	s, err := store.OpenStore(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Retry runs f until it stops saying "no leader yet", for up to 10 s: a
// fresh node elects itself in every range within a few ticks.
func Retry[T any](t testing.TB, f func() (T, error)) (T, error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := f()
		if !errors.Is(err, store.ErrNotLeader) || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MetricValue reads a counter's or a gauge's current value.
func MetricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}
