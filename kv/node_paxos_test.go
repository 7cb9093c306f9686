package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// A paxos keyspace on one node serves what a raft keyspace does, and a
// crash keeps every acknowledged write. The log is compacted every few
// slots, so the restart also rebuilds the core from a snapshot point.
func TestSingleNodePaxos(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.StoreConfig{LogTruncateEntries: 8, LogKeepEntries: 2}
	n := openNodeWith(t, db, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ks, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "px", Mode: catalog.ModePaxos, Replicas: 1, Ranges: 2})
	if err != nil || ks.Mode != catalog.ModePaxos {
		t.Fatalf("CreateKeyspace = %+v, %v", ks, err)
	}
	// Eventual keyspaces are served by coordinators (eventual_test.go);
	// compare-and-swap there runs per-key Basic Paxos (kv/eventual/eventual_cas.go).
	ev, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 1})
	if err != nil || ev.W != 1 || ev.R != 1 || len(n.Store().Catalog().Ranges["ev"]) != catalog.DefaultRanges {
		t.Fatalf("eventual keyspace: %+v, %v", ev, err)
	}
	if _, err := n.Put(ctx, "ev", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put to an eventual keyspace: %v", err)
	}
	if _, err := n.CompareAndSwap(ctx, "ev", []byte("k"), catalog.Expect{Absent: true}, []byte("v")); !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("compare-and-swap in an eventual keyspace: %v", err)
	}

	v1, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "px", []byte("phone"), []byte("for sale")) })
	if err != nil {
		t.Fatal(err)
	}
	rangeID := n.Store().Catalog().Ranges["px"][catalog.SpanIndex(n.Store().Catalog().Spans["px"], catalog.HashKey([]byte("phone")))].ID
	if !strings.HasPrefix(v1, fmt.Sprintf("%d.", rangeID)) {
		t.Fatalf("version %q is not RANGE.SLOT of range %d", v1, rangeID)
	}
	if _, err := n.CompareAndSwap(ctx, "px", []byte("phone"), catalog.Expect{Value: []byte("for sale")}, []byte("sold to alice")); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if _, err := n.CompareAndSwap(ctx, "px", []byte("phone"), catalog.Expect{Value: []byte("for sale")}, []byte("sold to bob")); !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("bob bought a sold phone: %v", err)
	}
	kv, err := n.Get(ctx, "px", []byte("phone"))
	if err != nil || string(kv.Value) != "sold to alice" || kv.Version == v1 {
		t.Fatalf("Get = %+v, %v", kv, err)
	}
	if _, err := n.CompareAndSwap(ctx, "px", []byte("phone"), catalog.Expect{Version: v1}, []byte("x")); !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("CAS on a stale version: %v", err)
	}
	if _, err := n.CompareAndSwap(ctx, "px", []byte("phone"), catalog.Expect{Version: kv.Version}, []byte("shipped")); err != nil {
		t.Fatalf("CAS on the current version: %v", err)
	}
	if _, err := n.CompareAndSwap(ctx, "px", []byte("tablet"), catalog.Expect{Absent: true}, []byte("new")); err != nil {
		t.Fatalf("CAS absent: %v", err)
	}

	// Enough writes to compact both ranges' logs several times.
	for i := range 40 {
		if _, err := n.Put(ctx, "px", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	kvs, more, err := n.Scan(ctx, "px", []byte("k"), nil, 5)
	if err != nil || !more || len(kvs) != 5 || string(kvs[0].Key) != "k00" || string(kvs[4].Key) != "k04" {
		t.Fatalf("Scan = %d keys (more %v), %v", len(kvs), more, err)
	}
	kvs, more, err = n.Scan(ctx, "px", []byte("k"), []byte("k37"), 0)
	if err != nil || more || len(kvs) != 2 || string(kvs[0].Key) != "k38" {
		t.Fatalf("Scan after k37 = %v (more %v), %v", kvs, more, err)
	}
	if existed, err := n.Delete(ctx, "px", []byte("k00")); err != nil || !existed {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if _, err := n.Get(ctx, "px", []byte("k00")); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("Get deleted = %v", err)
	}
	status, err := n.Store().RangeStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := status[rangeID]; st.State != "leader" || st.Leader != 1 || st.Term == 0 || st.Applied < 8 || st.Commit < st.Applied {
		t.Fatalf("range %d status %+v", rangeID, st)
	}
	if slot := snapshotSlot(t, n, rangeID); slot == 0 {
		t.Fatalf("range %d never compacted its log", rangeID)
	}
	if got := testutilCounter(t, n, consensus.ProtocolPaxos); got == 0 {
		t.Fatal("no paxos proposals counted")
	}

	// Crash twice: the first restart compacts again at the applied slot,
	// the second starts from that snapshot point.
	for crash := range 2 {
		if err := n.Store().Close(); err != nil {
			t.Fatal(err)
		}
		if db, err = storage.CrashAndReopen(db, vfs.CrashCloneCfg{}); err != nil {
			t.Fatal(err)
		}
		n = openNodeWith(t, db, cfg)
		kv, err = kvtest.Retry(t, func() (catalog.KeyValue, error) { return n.Get(ctx, "px", []byte("phone")) })
		if err != nil || string(kv.Value) != "shipped" {
			t.Fatalf("crash %d: phone = %+v, %v", crash, kv, err)
		}
		kvs, _, err = n.Scan(ctx, "px", []byte("k"), nil, 0)
		if err != nil || len(kvs) != 39 || string(kvs[0].Key) != "k01" {
			t.Fatalf("crash %d: scan = %d keys, %v", crash, len(kvs), err)
		}
		if slot := snapshotSlot(t, n, rangeID); slot == 0 {
			t.Fatalf("crash %d: range %d restarted without a snapshot point", crash, rangeID)
		}
		// Writes go on where they left off: new slots, not reused ones.
		v, err := n.Put(ctx, "px", []byte("phone"), fmt.Appendf(nil, "returned %d", crash))
		if err != nil || slotOf(t, rangeID, v) <= slotOf(t, rangeID, kv.Version) {
			t.Fatalf("crash %d: put = %q (was %q), %v", crash, v, kv.Version, err)
		}
		if _, err := n.CompareAndSwap(ctx, "px", []byte("phone"), catalog.Expect{Version: v}, []byte("shipped")); err != nil {
			t.Fatalf("crash %d: CAS at %s: %v", crash, v, err)
		}
	}
	if err := n.Store().Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func testutilCounter(t *testing.T, n *Node, protocol string) float64 {
	t.Helper()
	var m dto.Metric
	if err := n.Store().Config.Metrics.Proposals.WithLabelValues(protocol).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// snapshotSlot is the slot a paxos range's log is compacted to.
func snapshotSlot(t *testing.T, n *Node, rangeID uint64) (slot uint64) {
	t.Helper()
	s := n.Store()
	if err := s.Do(context.Background(), func() { slot = s.Replicas[rangeID].Core.(*consensus.PaxosCore).Log.Snap.Slot }); err != nil {
		t.Fatal(err)
	}
	return slot
}

func slotOf(t *testing.T, rangeID uint64, version string) uint64 {
	t.Helper()
	slot, err := command.ParseVersion(rangeID, version)
	if err != nil {
		t.Fatal(err)
	}
	return slot
}

// A draining node hands its paxos ranges' leaderships to other voters
// (paxos.RawNode.TransferLeader), as it does for raft ranges: clients
// never wait out an election timeout.
func TestDrainPaxosLeaderships(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	a := c.nodes[0]
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
		return a.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "px", Mode: catalog.ModePaxos, Replicas: 3, Ranges: 4})
	}); err != nil {
		t.Fatal(err)
	}
	ranges := map[uint64]bool{}
	for _, r := range a.store.Catalog().Ranges["px"] {
		ranges[r.ID] = true
	}
	// ledBy counts the px ranges node n leads, as its own replicas see it.
	ledBy := func(n *Node) int {
		st, err := n.store.RangeStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		led := 0
		for id, s := range st {
			if ranges[id] && s.State == consensus.RoleLeader.String() {
				led++
			}
		}
		return led
	}
	waitUntil(t, "every px range to elect a leader", func() bool {
		return ledBy(c.nodes[0])+ledBy(c.nodes[1])+ledBy(c.nodes[2]) == len(ranges)
	})
	// Drain the node leading the most.
	busiest := c.nodes[0]
	for _, n := range c.nodes[1:] {
		if ledBy(n) > ledBy(busiest) {
			busiest = n
		}
	}
	led := ledBy(busiest)
	moved, kept := busiest.store.TransferLeaderships(ctx) // meta's and default's leaderships too
	if kept != 0 || moved < led || ledBy(busiest) != 0 {
		t.Fatalf("node %d led %d px ranges: %d leaderships moved, %d kept, %d px ranges led after",
			busiest.store.NodeID(), led, moved, kept, ledBy(busiest))
	}
	// The new leaders serve writes (leadership may move again meanwhile:
	// the writes go to whichever replica leads).
	for id := range ranges {
		waitUntil(t, fmt.Sprintf("a write to px range %d", id), func() bool {
			for _, n := range c.nodes {
				res, err := n.store.Propose(ctx, id, &command.Command{Op: command.OpPut, Key: []byte("k"), Value: []byte("v")})
				if err == nil && res.Err == nil {
					return true
				}
			}
			return false
		})
	}
}

// A paxos log is compacted by bytes too: with compaction by slots out of
// reach (a million), values of 64 KiB compact the log once 256 KiB of
// them were applied since the last compaction.
func TestPaxosLogCompactsByBytes(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // after the node's and the store's
	cfg := store.StoreConfig{LogTruncateEntries: 1 << 20, LogKeepEntries: 2, LogTruncateBytes: 192 << 10, LogKeepBytes: 64 << 10}
	n := openNodeWith(t, db, cfg)
	t.Cleanup(func() { n.Store().Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "px", Mode: catalog.ModePaxos, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatal(err)
	}
	rangeID := n.Store().Catalog().Ranges["px"][0].ID
	value := bytes.Repeat([]byte("v"), 64<<10)
	for i := range 3 {
		if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "px", fmt.Appendf(nil, "k%d", i), value) }); err != nil {
			t.Fatal(err)
		}
	}
	if slot := snapshotSlot(t, n, rangeID); slot != 0 {
		t.Fatalf("range %d compacted at slot %d after 192 KiB of values, want not yet", rangeID, slot)
	}
	for i := 3; i < 6; i++ {
		if _, err := n.Put(ctx, "px", fmt.Appendf(nil, "k%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if slot := snapshotSlot(t, n, rangeID); slot == 0 {
		t.Fatalf("range %d never compacted after 384 KiB of values (LogTruncateBytes+LogKeepBytes 256 KiB)", rangeID)
	}
}
