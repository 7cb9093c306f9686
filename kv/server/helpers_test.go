package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// newMemDB opens a database on an in-memory file system, closed at the
// end of the test.
func newMemDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openNodeWith opens a one-node cluster on db with cfg's tuning.
func openNodeWith(t *testing.T, db *storage.DB, cfg store.StoreConfig) *kv.Node {
	t.Helper()
	cfg.TickInterval, cfg.Logger, cfg.Seed = 10*time.Millisecond, quiet(), 1
	cfg.Self = catalog.NodeDescriptor{Name: "n1", Addr: "127.0.0.1:1", Zone: "z1", Weight: 1}
	st, err := store.OpenStore(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	n, err := kv.NewNode(st, kv.NodeConfig{Zone: "z1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// retry runs f until it stops saying "no leader yet": a fresh node elects
// itself in every range within a few ticks.
func retry[T any](t *testing.T, f func() (T, error)) (T, error) {
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

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// snapshotSlot is the slot of paxos range rangeID's snapshot on n.
func snapshotSlot(t *testing.T, n *kv.Node, rangeID uint64) (slot uint64) {
	t.Helper()
	s := n.Store()
	if err := s.Do(context.Background(), func() { slot = s.Replicas[rangeID].Core.(*consensus.PaxosCore).Log.Snap.Slot }); err != nil {
		t.Fatal(err)
	}
	return slot
}
