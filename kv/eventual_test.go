package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// A single-node eventual keyspace (N=1): puts, gets, deletes, scans and
// per-request W/R.
func TestEventualSingleNode(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := openNode(t, db)
	defer n.store.Close()
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
		return n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 1, Ranges: 2})
	}); err != nil {
		t.Fatal(err)
	}

	v1, err := n.Put(ctx, "ev", []byte("a"), []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := n.PutWith(ctx, "ev", []byte("a"), []byte("2"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{WLevel: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	if v1 == v2 {
		t.Fatalf("two writes got the same version %s", v1)
	}
	kv, err := n.GetWith(ctx, "ev", []byte("a"), catalog.QuorumOverride{R: 1})
	if err != nil || string(kv.Value) != "2" || kv.Version != v2 {
		t.Fatalf("get a = %+v, %v; want 2 at %s", kv, err, v2)
	}
	for _, k := range []string{"b", "c", "d"} {
		if _, err := n.Put(ctx, "ev", []byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	existed, err := n.Delete(ctx, "ev", []byte("b"))
	if err != nil || !existed {
		t.Fatalf("delete b: existed %v, %v", existed, err)
	}
	if existed, err := n.Delete(ctx, "ev", []byte("never")); err != nil || existed {
		t.Fatalf("delete of a missing key: existed %v, %v", existed, err)
	}
	if _, err := n.Get(ctx, "ev", []byte("b")); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("get of a deleted key: %v", err)
	}
	kvs, more, err := n.Scan(ctx, "ev", nil, nil, 2)
	if err != nil || !more || len(kvs) != 2 || string(kvs[0].Key) != "a" || string(kvs[1].Key) != "c" {
		t.Fatalf("scan limit 2: %v more=%v %v; want a, c and more", keysOf(kvs), more, err)
	}
	kvs, more, err = n.Scan(ctx, "ev", nil, []byte("c"), 10)
	if err != nil || more || len(kvs) != 1 || string(kvs[0].Key) != "d" {
		t.Fatalf("scan after c: %v more=%v %v; want d", keysOf(kvs), more, err)
	}

	// W and R beyond N are refused as arguments, not as unavailability.
	if _, err := n.PutWith(ctx, "ev", []byte("a"), []byte("x"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{W: 2}}); !errors.Is(err, catalog.ErrInvalidArgument) {
		t.Fatalf("W=2 of N=1: %v", err)
	}
	if _, err := n.GetWith(ctx, "ev", []byte("a"), catalog.QuorumOverride{RLevel: "most"}); !errors.Is(err, catalog.ErrInvalidArgument) {
		t.Fatalf("R=most: %v", err)
	}
	// Compare-and-swap: per-key Basic Paxos over the one replica.
	_, err = n.CompareAndSwap(ctx, "ev", []byte("a"), catalog.Expect{Absent: true}, []byte("x"))
	if !errors.Is(err, command.ErrConditionFailed) || !strings.Contains(err.Error(), `holds "2"`) {
		t.Fatalf("put-if-absent of an existing key: %v", err)
	}
	v3, err := n.CompareAndSwap(ctx, "ev", []byte("a"), catalog.Expect{Version: v2}, []byte("3"))
	if err != nil {
		t.Fatalf("cas at the current version: %v", err)
	}
	if kv, err := n.Get(ctx, "ev", []byte("a")); err != nil || string(kv.Value) != "3" || kv.Version != v3 {
		t.Fatalf("get after cas = %+v, %v; want 3 at %s", kv, err, v3)
	}
}

func keysOf(kvs []catalog.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// memRecords carries record requests between nodes of one process; a
// node marked down answers nothing, and gossip sees it down; one cut off
// answers nothing either, but gossip sees it alive.
type memRecords struct {
	mu    sync.Mutex
	nodes map[uint64]*Node
	down  map[uint64]bool
	cut   map[uint64]bool
	// readDelay delays every record read: a coordinator's own replica,
	// read directly, then answers first.
	readDelay time.Duration
}

func (m *memRecords) to(id uint64) (*Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.nodes[id]; n != nil && !m.down[id] && !m.cut[id] {
		return n, nil
	}
	return nil, fmt.Errorf("%w: node %d is down", store.ErrUnavailable, id)
}

// replica returns node id to serve a call for eventual range rangeID,
// once it knows the range, as the peer service does.
func (m *memRecords) replica(ctx context.Context, id, rangeID uint64) (*Node, error) {
	n, err := m.to(id)
	if err != nil {
		return nil, err
	}
	return n, n.ev.AwaitEventualRange(ctx, rangeID)
}

func (m *memRecords) setDown(id uint64, down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down[id] = down
}

func (m *memRecords) setCut(id uint64, cut bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cut == nil {
		m.cut = map[uint64]bool{}
	}
	m.cut[id] = cut
}

func (m *memRecords) WriteRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record, lazy bool) (bool, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return false, err
	}
	_, existed, err := n.ev.WriteLocalRecord(rangeID, key, rec, lazy)
	return existed, err
}

func (m *memRecords) ReadRecord(ctx context.Context, to, rangeID uint64, key []byte) (wrn.Record, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return wrn.Record{}, err
	}
	m.mu.Lock()
	delay := m.readDelay
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return wrn.Record{}, ctx.Err()
		}
	}
	return n.ev.ReadLocalRecord(rangeID, key)
}

func (m *memRecords) ScanRecords(ctx context.Context, to, rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return nil, err
	}
	return n.ev.ScanLocalRecords(rangeID, prefix, startAfter, limit)
}

func (m *memRecords) CASStep(ctx context.Context, to, rangeID uint64, key []byte, msg paxos.BasicMessage) (paxos.BasicMessage, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return paxos.BasicMessage{}, err
	}
	return n.ev.StepLocalCAS(rangeID, key, msg)
}

func (m *memRecords) MetaIndex(ctx context.Context, to uint64) (uint64, error) {
	n, err := m.to(to)
	if err != nil {
		return 0, err
	}
	return n.localMetaIndex(ctx)
}

func (m *memRecords) LetGo(ctx context.Context, to, rangeID, node uint64) (bool, error) {
	n, err := m.to(to)
	if err != nil {
		return false, err
	}
	return n.ev.LetGo(rangeID, node), nil
}

func (m *memRecords) Filled(ctx context.Context, to, rangeID uint64) (bool, error) {
	n, err := m.to(to)
	if err != nil {
		return false, err
	}
	return n.ev.Filled(rangeID), nil
}

func (m *memRecords) Acceptors(ctx context.Context, to, rangeID uint64, after []byte, limit int) ([]records.KeyAcceptor, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return nil, err
	}
	return n.ev.LocalAcceptors(rangeID, after, limit)
}

func (m *memRecords) MerkleLeaves(ctx context.Context, to, rangeID uint64, depth int) ([]uint64, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return nil, err
	}
	return n.ev.LocalMerkleLeaves(rangeID, depth)
}

func (m *memRecords) LeafRecords(ctx context.Context, to, rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error) {
	n, err := m.replica(ctx, to, rangeID)
	if err != nil {
		return nil, false, err
	}
	return n.ev.LocalLeafRecords(rangeID, depth, leaves, limit)
}

// Three nodes, N=3 W=2 R=2: with one replica down W=2 writes and R=2 reads
// go on, W=3 and R=3 are Unavailable with the counts; back up, a read
// repairs it.
func TestEventualThreeNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	nodes, recs, a := cl.nodes, cl.recs, cl.nodes[0]
	rangeID := cl.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})

	// Every node coordinates.
	for i, n := range nodes {
		key := fmt.Appendf(nil, "k%d", i)
		if _, err := n.Put(ctx, "ev", key, []byte("v")); err != nil {
			t.Fatalf("put through node %d: %v", i, err)
		}
		for j, m := range nodes {
			if kv, err := m.Get(ctx, "ev", key); err != nil || string(kv.Value) != "v" {
				t.Fatalf("get %s through node %d: %+v, %v", key, j, kv, err)
			}
		}
	}

	c := nodes[2].store.NodeID()
	recs.setDown(c, true)
	if _, err := a.Put(ctx, "ev", []byte("x"), []byte("1")); err != nil {
		t.Fatalf("W=2 with one replica down: %v", err)
	}
	// Gossip sees c down: a W=3 write is refused before anything is
	// sent, so Unavailable is true: nothing was written.
	_, err := a.PutWith(ctx, "ev", []byte("x"), []byte("2"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{W: 3}})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "a write needs W=3 of N=3; this node hears from 2 of 3 replicas") {
		t.Fatalf("W=3 with one replica down: %v", err)
	}
	_, err = nodes[1].GetWith(ctx, "ev", []byte("x"), catalog.QuorumOverride{RLevel: "all"})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "R=3 of N=3; 2 of 3 replicas answered") {
		t.Fatalf("R=3 with one replica down: %v", err)
	}
	if kv, err := nodes[1].Get(ctx, "ev", []byte("x")); err != nil || string(kv.Value) != "1" {
		t.Fatalf("R=2 after the refused W=3 write: %+v, %v; want the 1 before it", kv, err)
	}
	// Cut off but alive to gossip, c does not answer: the W=3 write
	// reaches the two others and misses W. Its outcome is unknown, not
	// Unavailable: it was written, and is not undone (Dynamo's
	// semantics).
	recs.setDown(c, false)
	recs.setCut(c, true)
	_, err = a.PutWith(ctx, "ev", []byte("x"), []byte("2"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{W: 3}})
	if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "stored on 2 of 3 replicas") {
		t.Fatalf("W=3 with one replica cut off: %v", err)
	}
	if kv, err := nodes[1].Get(ctx, "ev", []byte("x")); err != nil || string(kv.Value) != "2" {
		t.Fatalf("R=2 after the W=3 write of unknown outcome: %+v, %v", kv, err)
	}
	a.ev.Inflight.Wait() // the hint for c is stored
	recs.setCut(c, false)
	recs.setDown(c, true)
	if _, err := a.Delete(ctx, "ev", []byte("k0")); err != nil {
		t.Fatal(err)
	}

	// Back up: c missed x and the delete of k0. An R=3 read sees it stale
	// and repairs it.
	// (Checked before c is up: once it is, a's hint replay may bring it x.)
	if rec, _ := nodes[2].ev.Records.Read(rangeID, []byte("x")); !rec.Version.IsZero() {
		t.Fatalf("c holds x although it was down: %+v", rec)
	}
	recs.setDown(c, false)
	if kv, err := a.GetWith(ctx, "ev", []byte("x"), catalog.QuorumOverride{R: 3}); err != nil || string(kv.Value) != "2" {
		t.Fatalf("R=3 after c is back: %+v, %v", kv, err)
	}
	if _, err := a.GetWith(ctx, "ev", []byte("k0"), catalog.QuorumOverride{R: 3}); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("R=3 of a deleted key: %v", err)
	}
	a.Close() // waits for the repairs
	if rec, _ := nodes[2].ev.Records.Read(rangeID, []byte("x")); string(rec.Value) != "2" {
		t.Fatalf("read repair did not reach c: %+v", rec)
	}
	if rec, _ := nodes[2].ev.Records.Read(rangeID, []byte("k0")); !rec.Tombstone {
		t.Fatalf("read repair did not bring c the tombstone: %+v", rec)
	}
	kvs, _, err := nodes[2].Scan(ctx, "ev", []byte("k"), nil, 10)
	if err != nil || strings.Join(keysOf(kvs), ",") != "k1,k2" {
		t.Fatalf("scan through c: %v, %v; want k1,k2", keysOf(kvs), err)
	}
}

// Dropping an eventual keyspace deletes its records: its ranges run no
// consensus group, so they are removed when the drop is applied.
func TestEventualDropDeletesRecords(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := openNode(t, db)
	defer n.Store().Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
		return n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "gone", Mode: catalog.ModeEventual, Replicas: 1, Ranges: 2})
	}); err != nil {
		t.Fatal(err)
	}
	ranges := n.Store().Catalog().Ranges["gone"]
	if _, err := n.Put(ctx, "gone", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := n.DropKeyspace(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		it, err := db.NewIter(storage.RangeDataSpan(r.ID))
		if err != nil {
			t.Fatal(err)
		}
		left := it.First()
		it.Close()
		if left {
			t.Fatalf("range %d of the dropped keyspace still holds data", r.ID)
		}
	}
}

// A keyspace created through one node can be used through any other at
// once: a node whose catalog does not have it yet waits for meta's
// leader (catalogBarrier) before it answers "no such keyspace". Its
// Get then finds the key absent, not the keyspace. While meta has no
// leader (an election, which the race detector on a loaded machine can
// bring about), the answer is Unavailable, and a retry finds the key
// absent; never "no such keyspace".
func TestKeyspaceKnownAtOnceEverywhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	for i := range 5 {
		name := fmt.Sprintf("ev%d", i)
		creator := c.nodes[i%3]
		if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
			return creator.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: name, Mode: catalog.ModeEventual, Replicas: 3, Ranges: 1})
		}); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes {
			_, err := n.Get(ctx, name, []byte("k"))
			for errors.Is(err, store.ErrUnavailable) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
				_, err = n.Get(ctx, name, []byte("k"))
			}
			if !errors.Is(err, catalog.ErrKeyNotFound) {
				t.Fatalf("get through node %d right after %s was created through node %d: %v, want key not found",
					n.store.NodeID(), name, creator.store.NodeID(), err)
			}
		}
	}
	if _, err := c.nodes[2].Get(ctx, "nope", []byte("k")); !errors.Is(err, catalog.ErrNoKeyspace) {
		t.Fatalf("get in a keyspace never created: %v", err)
	}
}
