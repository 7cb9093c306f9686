package kv

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// Scenario 2 of issue 10: request IDs were a counter that started again
// at every start, and a waiter took the result of any entry with its ID.
// So: the leader of a 2-replica range persists "put k=old" but cannot
// commit it (its follower is cut off), crashes, restarts and is elected
// again; its new term's no-op commits the old put; a compare-and-swap
// "k expects never-written" proposed right after the election got the
// same ID, and was answered with the put's result: "applied". It must hear
// "condition failed: k holds old".
func TestOldEntryNeverAnswersNewRequest(t *testing.T) {
	res := oldEntryAfterRestart(t, store.Canary{})
	if !errors.Is(res.Err, command.ErrConditionFailed) {
		t.Fatalf("compare-and-swap of k expecting a value never written = %+v; want condition failed (k holds old)", res)
	}
	t.Logf("answered: %v", res.Err)
}

// The canary: with the old IDs and waiters matched by ID only, the test
// above sees the lie.
func TestCanaryWaitersByID(t *testing.T) {
	if res := oldEntryAfterRestart(t, store.Canary{WaitersByID: true}); res.Err == nil {
		t.Logf("with waiters matched by ID, the compare-and-swap was answered applied at %d: the lie, caught", res.Version)
		return
	}
	t.Fatal("the planted bug went unnoticed")
}

// oldEntryAfterRestart runs scenario 2 and returns the compare-and-swap's
// answer.
func oldEntryAfterRestart(t *testing.T, bug store.Canary) command.Result {
	c := newSimClusterWith(t, 1, 2, []catalog.KeyspaceDescriptor{{Name: "r2", Mode: catalog.ModeRaft, Replicas: 2, Ranges: 1}},
		func(c *simCluster) { c.canary = bug })
	rd := c.node(1).store.Catalog().Ranges["r2"][0]
	lead := c.rangeLeader(rd.ID)
	follower := 3 - lead
	ln := c.node(lead)

	// 1. The leader, cut off from its follower, persists a put it cannot
	// commit.
	heal := c.s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2}, sim.NodeID(follower)))
	put := &command.Command{Op: command.OpPut, Key: []byte("k"), Value: []byte("old")}
	if _, err := ln.store.StartPropose(rd.ID, put, func(command.Result) {}); err != nil {
		t.Fatal(err)
	}
	counter := ln.store.NextRequest
	ln.round()
	// Its sync returns before the crash: the put is durable.
	if err := ln.store.FinishSync(); err != nil {
		t.Fatal(err)
	}
	if log := ln.store.Replicas[rd.ID].Core.(*consensus.RaftCore).Log; log.Last <= log.HardState.Commit {
		t.Fatalf("the put is not in the leader's log past its commit index (last %d, commit %d)", log.Last, log.HardState.Commit)
	}

	// 2. It crashes, comes back, and the link heals.
	c.s.Crash(sim.NodeID(lead))
	c.s.Restart(sim.NodeID(lead))
	heal()

	// 3. The moment it leads again (its log is the longer one: it must win),
	// before the no-op of its term commits the old put, a compare-and-swap
	// is proposed with the request counter where the put left it: the
	// plain counter of old gave it the put's ID.
	var got *command.Result
	c.require("the old leader to lead again", 10*time.Second, func() bool {
		n := c.node(lead)
		if n == nil || n.store.Replicas[rd.ID] == nil || n.store.Replicas[rd.ID].Role != consensus.RoleLeader {
			return false
		}
		n.store.NextRequest = counter - 1
		cas := &command.Command{Op: command.OpCAS, Key: []byte("k"), Value: []byte("new"), Cond: command.CondValue, ExpectValue: []byte("never-written")}
		if _, err := n.store.StartPropose(rd.ID, cas, func(r command.Result) { got = &r }); err != nil {
			t.Fatal(err)
		}
		n.round()
		return true
	})
	c.require("the compare-and-swap's answer", 5*time.Second, func() bool { return got != nil })
	return *got
}

// A write sent again with the same idempotency key is applied once and
// answered as the first time, until the dedup window passes; the range
// then forgets the answer (and deletes it).
func TestIdempotencyKeyAppliesOnce(t *testing.T) {
	db := kvtest.NewMemDB(t)
	var now atomic.Int64
	now.Store(int64(time.Hour))
	n := openNodeWith(t, db, store.StoreConfig{Clock: now.Load, DedupWindow: time.Minute})
	defer n.Store().Close()
	ctx := context.Background()
	key := []byte("k")
	opts := catalog.WriteOptions{IdempotencyKey: []byte("req-1")}
	v1, err := kvtest.Retry(t, func() (string, error) { return n.PutWith(ctx, "default", key, []byte("a"), opts) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "default", key, []byte("b")); err != nil {
		t.Fatal(err)
	}
	// The retry of the first put: applied before, so it changes nothing.
	if v, err := n.PutWith(ctx, "default", key, []byte("a"), opts); err != nil || v != v1 {
		t.Fatalf("retried put = %q, %v; want the first answer %q", v, err, v1)
	}
	if kv, err := n.Get(ctx, "default", key); err != nil || string(kv.Value) != "b" {
		t.Fatalf("after the retried put, k = %q, %v; want b (the retry must not apply again)", kv.Value, err)
	}
	// A compare-and-swap that failed fails again, with the same words,
	// even though it would succeed now.
	cas := catalog.WriteOptions{IdempotencyKey: []byte("req-2")}
	_, err1 := n.CompareAndSwapWith(ctx, "default", key, catalog.Expect{Value: []byte("a")}, []byte("c"), cas)
	if !errors.Is(err1, command.ErrConditionFailed) {
		t.Fatalf("compare-and-swap expecting a = %v; want condition failed", err1)
	}
	if _, err := n.Put(ctx, "default", key, []byte("a")); err != nil {
		t.Fatal(err)
	}
	_, err2 := n.CompareAndSwapWith(ctx, "default", key, catalog.Expect{Value: []byte("a")}, []byte("c"), cas)
	if !errors.Is(err2, command.ErrConditionFailed) || err2.Error() != err1.Error() {
		t.Fatalf("retried compare-and-swap = %v; want the first answer %v", err2, err1)
	}
	// Past the window, the key names a new write.
	now.Add(int64(2 * time.Minute))
	if _, err := n.Put(ctx, "default", []byte("other"), nil); err != nil { // moves the horizon
		t.Fatal(err)
	}
	if v, err := n.PutWith(ctx, "default", key, []byte("a2"), opts); err != nil || v == v1 {
		t.Fatalf("put with a forgotten key = %q, %v; want a new write", v, err)
	}
	if kv, err := n.Get(ctx, "default", key); err != nil || string(kv.Value) != "a2" {
		t.Fatalf("k = %q, %v; want a2", kv.Value, err)
	}
	// The expired answer of req-2 is gone from the disk.
	rd, err := n.Route("default", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(storage.DedupKey(rd.ID, []byte("req-2"))); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the expired answer of req-2 is still kept: %v", err)
	}
}

// The answers a range keeps survive a restart, and so does what they
// promise: a retry after the restart is answered, not applied again. (The
// in-memory dedup filter of kv/store starts empty and must be built from
// the disk before it may say "no answer kept".)
func TestIdempotencyKeyAppliesOnceAcrossRestart(t *testing.T) {
	db := kvtest.NewMemDB(t)
	ctx := context.Background()
	key := []byte("k")
	opts := catalog.WriteOptions{IdempotencyKey: []byte("req-1")}
	n := openNode(t, db)
	v1, err := kvtest.Retry(t, func() (string, error) { return n.PutWith(ctx, "default", key, []byte("a"), opts) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "default", key, []byte("b")); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if err := n.Store().Close(); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, db)
	defer n.Store().Close()
	v, err := kvtest.Retry(t, func() (string, error) { return n.PutWith(ctx, "default", key, []byte("a"), opts) })
	if err != nil || v != v1 {
		t.Fatalf("put retried after a restart = %q, %v; want the first answer %q", v, err, v1)
	}
	if kv, err := n.Get(ctx, "default", key); err != nil || string(kv.Value) != "b" {
		t.Fatalf("after the retried put, k = %q, %v; want b (the retry must not apply again)", kv.Value, err)
	}
}
