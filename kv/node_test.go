package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openNode(t *testing.T, db *storage.DB) *Node {
	t.Helper()
	return openNodeWith(t, db, store.StoreConfig{})
}

// openNodeWith opens a one-node cluster on db with cfg's tuning.
func openNodeWith(t *testing.T, db *storage.DB, cfg store.StoreConfig) *Node {
	t.Helper()
	n, err := NewNode(kvtest.OpenStore(t, db, cfg), NodeConfig{Zone: "z1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func TestSingleNode(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The article's flash sale: one phone, two buyers, one wins.
	v1, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "default", []byte("phone"), []byte("for sale")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CompareAndSwap(ctx, "default", []byte("phone"), catalog.Expect{Value: []byte("for sale")}, []byte("sold to alice")); err != nil {
		t.Fatalf("alice: %v", err)
	}
	_, err = n.CompareAndSwap(ctx, "default", []byte("phone"), catalog.Expect{Value: []byte("for sale")}, []byte("sold to bob"))
	if !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("bob bought a sold phone: %v", err)
	}
	kv, err := kvtest.Retry(t, func() (catalog.KeyValue, error) { return n.Get(ctx, "default", []byte("phone")) })
	if err != nil || string(kv.Value) != "sold to alice" || kv.Version == v1 {
		t.Fatalf("Get = %+v, %v", kv, err)
	}
	if _, err := n.CompareAndSwap(ctx, "default", []byte("phone"), catalog.Expect{Version: v1}, []byte("x")); !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("CAS on a stale version: %v", err)
	}
	if _, err := n.CompareAndSwap(ctx, "default", []byte("phone"), catalog.Expect{Version: kv.Version}, []byte("shipped")); err != nil {
		t.Fatalf("CAS on the current version: %v", err)
	}

	for i := range 20 {
		if _, err := n.Put(ctx, "default", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	kvs, more, err := n.Scan(ctx, "default", []byte("k"), nil, 5)
	if err != nil || !more || len(kvs) != 5 || string(kvs[0].Key) != "k00" || string(kvs[4].Key) != "k04" {
		t.Fatalf("Scan = %d keys (more %v), %v", len(kvs), more, err)
	}
	kvs, more, err = n.Scan(ctx, "default", []byte("k"), []byte("k17"), 0)
	if err != nil || more || len(kvs) != 2 || string(kvs[0].Key) != "k18" {
		t.Fatalf("Scan after k17 = %v (more %v), %v", kvs, more, err)
	}
	if existed, err := n.Delete(ctx, "default", []byte("k00")); err != nil || !existed {
		t.Fatalf("Delete = %v, %v", existed, err)
	}
	if _, err := n.Get(ctx, "default", []byte("k00")); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("Get deleted = %v", err)
	}

	// Limits and bad input: refused, nothing written.
	if _, err := n.Put(ctx, "default", []byte("big"), make([]byte, 1<<20+1)); !errors.Is(err, catalog.ErrLimit) {
		t.Fatalf("oversized value: %v", err)
	}
	if _, err := n.Get(ctx, "default", []byte("big")); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("oversized value was written: %v", err)
	}
	if _, err := n.Put(ctx, "nosuch", []byte("k"), nil); !errors.Is(err, catalog.ErrNoKeyspace) {
		t.Fatalf("missing keyspace: %v", err)
	}

	// Keyspaces come and go through meta.
	ks, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "orders", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 3})
	if err != nil || ks.ID == 0 || len(n.Store().Catalog().Ranges["orders"]) != 3 {
		t.Fatalf("CreateKeyspace = %+v, %v", ks, err)
	}
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "orders", Mode: catalog.ModeRaft, Replicas: 1}); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "wide", Mode: catalog.ModeRaft, Replicas: 3}); !errors.Is(err, catalog.ErrNotEnoughNodes) {
		t.Fatalf("N=3 on one node: %v", err)
	}
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "orders", []byte("o1"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := n.DropKeyspace(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, "orders", []byte("o1")); !errors.Is(err, catalog.ErrNoKeyspace) {
		t.Fatalf("dropped keyspace still served: %v", err)
	}

	// A crash keeps every acknowledged write: they were synced.
	if err := n.Store().Close(); err != nil {
		t.Fatal(err)
	}
	db, err = storage.CrashAndReopen(db, vfs.CrashCloneCfg{})
	if err != nil {
		t.Fatal(err)
	}
	n = openNode(t, db)
	defer func() {
		n.Store().Close()
		db.Close()
	}()
	kv, err = kvtest.Retry(t, func() (catalog.KeyValue, error) { return n.Get(ctx, "default", []byte("phone")) })
	if err != nil || string(kv.Value) != "shipped" {
		t.Fatalf("after crash: %+v, %v", kv, err)
	}
	if _, ok := n.Store().Catalog().Keyspaces["orders"]; ok {
		t.Fatal("dropped keyspace back after crash")
	}
}

// Idle ranges stop ticking, and a request wakes its range.
func TestQuiescence(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := openNode(t, db)
	defer n.Store().Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "default", []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	// meta and the 8 default ranges, each led here with no follower.
	all := 1 + catalog.DefaultRanges
	waitQuiesced := func(want func(int) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := n.Store().QuiescedRanges(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want(got) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("quiesced ranges: %d, want %s", got, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitQuiesced(func(n int) bool { return n == all }, "all")
	if kv, err := n.Get(ctx, "default", []byte("k")); err != nil || string(kv.Value) != "v" {
		t.Fatalf("a read of a quiesced range: %+v, %v", kv, err)
	}
	if _, err := n.Put(ctx, "default", []byte("k"), []byte("w")); err != nil {
		t.Fatalf("a write to a quiesced range: %v", err)
	}
	waitQuiesced(func(n int) bool { return n == all }, "all again once idle")
}

// A keyspace dropped while its ranges are busy: they still have Readies
// in the round that applies the drop and destroys them. The store once
// advanced such a replica after its log was deleted, and panicked
// ("storage: not found") — a kvd e2e run caught it in CI.
func TestDropKeyspaceWhileItsRangesWork(t *testing.T) {
	ctx := context.Background()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	for i := range 20 {
		mode := []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos}[i%2]
		if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
			return c.nodes[0].CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "churn", Mode: mode, Replicas: 3, Ranges: 8})
		}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		// Writers keep every range's log moving until the drop lands.
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for j := range 5 {
					n := c.nodes[(w+j)%3]
					wctx, cancel := context.WithTimeout(ctx, time.Second)
					n.Put(wctx, "churn", fmt.Appendf(nil, "k%d-%d", w, j), []byte("v")) // may fail: dropped
					cancel()
				}
			})
		}
		time.Sleep(time.Duration(i%5) * 5 * time.Millisecond)
		if _, err := kvtest.Retry(t, func() (struct{}, error) { return struct{}{}, c.nodes[0].DropKeyspace(ctx, "churn") }); err != nil {
			t.Fatalf("drop %d: %v", i, err)
		}
		wg.Wait()
		waitUntil(t, "every node to forget the dropped keyspace", func() bool {
			for _, n := range c.nodes {
				if _, ok := n.Store().Catalog().Keyspaces["churn"]; ok {
					return false
				}
			}
			return true
		})
	}
	// The stores still serve: default lives on the first node only.
	if _, err := kvtest.Retry(t, func() (string, error) { return c.nodes[0].Put(ctx, "default", []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
}
