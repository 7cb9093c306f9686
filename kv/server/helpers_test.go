package server

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// openNodeWith opens a one-node cluster on db with cfg's tuning.
func openNodeWith(t testing.TB, db *storage.DB, cfg store.StoreConfig) *kv.Node {
	t.Helper()
	n, err := kv.NewNode(kvtest.OpenStore(t, db, cfg), kv.NodeConfig{Zone: "z1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
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

// serveOneNode opens a one-node cluster in memory and returns it and its
// HTTP handler, serving info.
func serveOneNode(t testing.TB, info ServerInfo) (*kv.Node, *Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.NewMetrics(reg)
	n := openNodeWith(t, kvtest.NewMemDB(t), store.StoreConfig{Metrics: m})
	t.Cleanup(func() { n.Store().Close() })
	return n, NewServer(n, info, m, reg)
}
