package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
)

// Staleness is measured (issue 6): a read through c, whose replica missed
// the write, answers from c alone with W=1 R=1 and is counted stale once
// the late answers of a and b come in; the late answers also repair c.
// With W=2 R=2 (W+R>N) no read is stale.
func TestEventualStalenessMeasured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{HintReplayInterval: time.Hour} })
	// A keyspace's own W and R must overlap; requests may go lower.
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "one", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "quorum", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, cn := c.nodes[0], c.nodes[2]
	c.recs.mu.Lock()
	c.recs.readDelay = 20 * time.Millisecond // c's own replica answers first
	c.recs.mu.Unlock()
	m := cn.store.Config.Metrics
	counts := func(ks string) (reads, stale float64) {
		cn.ev.Inflight.Wait() // the late answers are in
		return kvtest.MetricValue(t, m.WRNReads.WithLabelValues(ks)), kvtest.MetricValue(t, m.WRNStaleReads.WithLabelValues(ks))
	}

	const keys = 3
	quorums := map[string]catalog.QuorumOverride{"one": {W: 1, R: 1}, "quorum": {}}
	for _, ks := range []string{"one", "quorum"} {
		c.setDown(2, true)
		for i := range keys {
			if _, err := a.PutWith(ctx, ks, fmt.Appendf(nil, "k%d", i), []byte("v"), catalog.WriteOptions{Quorum: quorums[ks]}); err != nil {
				t.Fatalf("%s: put with c down: %v", ks, err)
			}
		}
		a.ev.Inflight.Wait()
		c.setDown(2, false)
	}

	// W=1 R=1: c answers alone that it holds nothing; a and b held the
	// write.
	for i := range keys {
		key := fmt.Appendf(nil, "k%d", i)
		if _, err := cn.GetWith(ctx, "one", key, quorums["one"]); !errors.Is(err, catalog.ErrKeyNotFound) {
			t.Fatalf("R=1 read of %s through c: %v; want the stale answer (not found)", key, err)
		}
	}
	if reads, stale := counts("one"); reads != keys || stale != keys {
		t.Fatalf("W=1 R=1: %v reads, %v stale; want %d and %d", reads, stale, keys, keys)
	}
	// The late answers repaired c: the same reads are fresh now.
	for i := range keys {
		key := fmt.Appendf(nil, "k%d", i)
		if kv, err := cn.GetWith(ctx, "one", key, quorums["one"]); err != nil || string(kv.Value) != "v" {
			t.Fatalf("R=1 read of %s through c after the late repair: %+v, %v", key, kv, err)
		}
	}
	if reads, stale := counts("one"); reads != 2*keys || stale != keys {
		t.Fatalf("W=1 R=1 after repair: %v reads, %v stale; want %d and %d", reads, stale, 2*keys, keys)
	}

	// W=2 R=2: every read set meets every write set.
	for range 3 {
		for i := range keys {
			key := fmt.Appendf(nil, "k%d", i)
			if kv, err := cn.Get(ctx, "quorum", key); err != nil || string(kv.Value) != "v" {
				t.Fatalf("R=2 read of %s through c: %+v, %v", key, kv, err)
			}
		}
	}
	if reads, stale := counts("quorum"); reads != 3*keys || stale != 0 {
		t.Fatalf("W=2 R=2: %v reads, %v stale; want %d and 0", reads, stale, 3*keys)
	}
}
