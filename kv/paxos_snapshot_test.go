package kv

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// memTransport delivers peer messages between stores of one process,
// through the wire encoding, dropping those of a cut range.
type memTransport struct {
	mu     sync.Mutex
	stores map[uint64]*store.Store
	cut    atomic.Uint64 // a range whose messages are dropped
}

func (t *memTransport) Send(rangeID uint64, m consensus.PeerMessage) {
	if rangeID == t.cut.Load() {
		return
	}
	t.mu.Lock()
	dst := t.stores[m.To()]
	t.mu.Unlock()
	if dst == nil {
		return
	}
	msg, err := consensus.DecodePeerMessage(consensus.EncodePeerMessage(m))
	if err != nil {
		panic(err)
	}
	dst.Step(rangeID, msg)
}

func (t *memTransport) Learn(uint64, string) {}

// FetchSnapshotChunk serves the chunk request at the store of node to, on
// a goroutine of its own as the peer RPC would.
func (t *memTransport) FetchSnapshotChunk(to uint64, req []byte, done func([]byte, error)) {
	t.mu.Lock()
	dst := t.stores[to]
	t.mu.Unlock()
	if dst == nil {
		done(nil, fmt.Errorf("no node %d", to))
		return
	}
	go func() { done(dst.ServeSnapshotChunk(req), nil) }()
}

// A paxos follower cut off while the leader compacts its log catches up
// from the leader's snapshot: its data, applied slot and snapshot point
// are the leader's, and it goes on accepting slots after it.
func TestPaxosSnapshotCatchUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &memTransport{stores: map[uint64]*store.Store{}}
	cfg := func(name string, weight int) store.StoreConfig {
		return store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: uint64(weight),
			LogTruncateEntries: 8, LogKeepEntries: 2,
			Self: catalog.NodeDescriptor{Name: name, Addr: name, Zone: "z" + name, Weight: weight}}
	}
	dbA, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.OpenStore(dbA, cfg("a", 2), tr, true)
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	defer a.Close()
	tr.mu.Lock()
	tr.stores[a.NodeID()] = a
	tr.mu.Unlock()
	na, err := NewNode(a, NodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer na.Close()

	// b joins: a registers it, and it learns the catalog through meta.
	dbB, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	b, rangeID := joinWeighted(t, ctx, na, dbB, cfg("b", 1), tr, "px", catalog.ModePaxos)
	defer b.Close()
	put := func(i int) {
		t.Helper()
		if _, err := kvtest.Retry(t, func() (string, error) {
			return na.Put(ctx, "px", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(0)

	tr.cut.Store(rangeID)
	for i := 1; i < 30; i++ {
		put(i)
	}
	snap := snapshotSlot(t, na, rangeID)
	if snap == 0 || replicaStatus(t, b, rangeID).Applied >= snap {
		t.Fatalf("a compacted to %d; b applied %d", snap, replicaStatus(t, b, rangeID).Applied)
	}
	tr.cut.Store(0)
	waitUntil(t, "b to catch up", func() bool { return replicaStatus(t, b, rangeID).Applied >= snap })
	put(30)
	want := replicaStatus(t, a, rangeID).Applied
	waitUntil(t, "b to apply after the snapshot", func() bool { return replicaStatus(t, b, rangeID).Applied >= want })
	for i := range 31 {
		raw, err := dbB.Get(storage.DataKey(rangeID, fmt.Appendf(nil, "k%02d", i)))
		if err != nil {
			t.Fatalf("b lacks k%02d: %v", i, err)
		}
		if v, err := command.DecodeValue(raw); err != nil || string(v.Data) != fmt.Sprintf("v%d", i) {
			t.Fatalf("b has k%02d = %q, %v", i, v.Data, err)
		}
	}
	var bSnap uint64
	if err := b.Do(ctx, func() { bSnap = b.Replicas[rangeID].Core.(*consensus.PaxosCore).Log.Snap.Slot }); err != nil || bSnap < snap {
		t.Fatalf("b's snapshot point %d, want at least %d (%v)", bSnap, snap, err)
	}
}

func replicaStatus(t *testing.T, s *store.Store, rangeID uint64) store.RangeStatus {
	t.Helper()
	st, err := s.RangeStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st[rangeID]
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// joinWeighted joins node b, its store opened on db with cfg, to na's
// cluster, and creates keyspace name of mode with one range of 2 replicas,
// weighted so that na (2 of 3 votes) leads and commits alone. It returns
// b's store, for the caller to close before db, and the range.
func joinWeighted(t *testing.T, ctx context.Context, na *Node, db *storage.DB, cfg store.StoreConfig, tr *memTransport, name string, mode catalog.Mode) (*store.Store, uint64) {
	t.Helper()
	idB := joinTestNode(t, ctx, na, db, cfg.Self)
	b, err := store.OpenStore(db, cfg, tr, false)
	if err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	tr.stores[idB] = b
	tr.mu.Unlock()
	waitUntil(t, "b in the catalog", func() bool { _, ok := b.Catalog().Nodes[idB]; return ok })
	if _, err := na.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: name, Mode: mode, Replicas: 2, Ranges: 1, Quorum: "weighted"}); err != nil {
		t.Fatal(err)
	}
	rangeID := na.store.Catalog().Ranges[name][0].ID
	waitUntil(t, "b's replica", func() bool { return replicaStatus(t, b, rangeID).RangeID != 0 })
	return b, rangeID
}
