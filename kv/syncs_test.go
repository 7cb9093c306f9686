package kv

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
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
