package kv

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
)

// A round of the store loop syncs the WAL only when it persisted what a
// message depends on: a raft range's new entries, term or vote. The round
// in which a write commits (and is applied and answered), and the rounds
// of reads confirmed by ReadIndex, do not sync (docs/operations.md, "The
// data directory"). Here, on a one-voter raft range without read leases,
// each put's entry syncs once and nothing else does.
func TestRoundsSyncOnlyNewEntriesTermsAndVotes(t *testing.T) {
	n := openMemNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) {
		return n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "r", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 1, NoReadLease: true})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "r", []byte("k"), []byte("v0")) }); err != nil {
		t.Fatal(err)
	}
	m := n.Store().Config.Metrics
	count := func(c prometheus.Counter) float64 {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	rounds, syncs := count(m.ReadyRounds), count(m.ReadySyncs)
	const ops = 20
	for i := range ops {
		if _, err := n.Put(ctx, "r", []byte("k"), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Get(ctx, "r", []byte("k")); err != nil {
			t.Fatal(err)
		}
	}
	rounds, syncs = count(m.ReadyRounds)-rounds, count(m.ReadySyncs)-syncs
	// Each put: a round that appends (synced) and one that commits and
	// applies it; each get: a round that confirms it. A few more rounds
	// (meta's) may come in between.
	if syncs > ops+3 || rounds-syncs < 2*ops {
		t.Fatalf("%d puts and %d gets took %v rounds, %v of them synced; want about %d synced (the puts' entries) and at least %d not",
			ops, ops, rounds, syncs, ops, 2*ops)
	}
	t.Logf("%d puts and %d gets: %v rounds, %v synced", ops, ops, rounds, syncs)
}

// A round that does not wait for its sync (kv/store/syncs.go) answers no
// write that counts on the leader's own unsynced copy. The leader of a
// 3-replica raft range, cut off from one follower, appends a put whose
// sync does not return; the other follower stores it, syncs and
// acknowledges: one durable copy of three, and the put stays unanswered
// until the leader's sync returns. The SyncedBeforeSync canary answers it
// at once.
func TestLeaderCountsItsCopyOnlyOnceSynced(t *testing.T) {
	for _, canary := range []bool{false, true} {
		c := newSimClusterWith(t, 1, 3, []catalog.KeyspaceDescriptor{{Name: "r3", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 1}},
			func(c *simCluster) { c.canary = store.Canary{SyncedBeforeSync: canary} })
		rd := c.node(1).store.Catalog().Ranges["r3"][0]
		lead := c.rangeLeader(rd.ID)
		cut := lead%3 + 1 // a follower
		heal := c.s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2, 3}, sim.NodeID(cut)))
		c.holdSyncs = lead
		ln := c.node(lead)
		var got *command.Result
		put := &command.Command{Op: command.OpPut, Key: []byte("k"), Value: []byte("v")}
		if _, err := ln.store.StartPropose(rd.ID, put, func(r command.Result) { got = &r }); err != nil {
			t.Fatal(err)
		}
		ln.round()
		if err := c.s.RunFor(200 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if answered := got != nil; answered != canary {
			t.Fatalf("canary %v: the put was answered with the leader's sync under way: %v, want %v", canary, answered, canary)
		}
		if canary {
			heal()
			continue
		}
		c.holdSyncs = 0
		if err := ln.store.FinishSync(); err != nil {
			t.Fatal(err)
		}
		ln.round()
		c.require("the put's answer once the leader's sync returned", time.Second, func() bool { return got != nil })
		if got.Err != nil {
			t.Fatalf("the put: %v", got.Err)
		}
		heal()
	}
}
