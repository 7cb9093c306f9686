package kv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
)

// A range of one voter commits a write in the round after the one that
// appended it, not on the next tick (issue 14: plain kvd took 10 puts/s,
// p50 99.9 ms, one client). Counted in ticks, not time: 100 puts one
// after the other, each of which waited for a tick, would span 100 ticks
// at least; they span far fewer.
func TestOneVoterCommitsWithoutATick(t *testing.T) {
	n := openNode(t, kvtest.NewMemDB(t))
	t.Cleanup(func() { n.Store().Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "default", []byte("warm"), []byte("up")) }); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		ks := "one-" + string(mode)
		if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: ks, Mode: mode, Replicas: 1, Ranges: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, ks, []byte("warm"), []byte("up")) }); err != nil {
			t.Fatal(err)
		}
		before, err := n.Store().Ticks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const puts = 100
		for i := range puts {
			if _, err := n.Put(ctx, ks, fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		after, err := n.Store().Ticks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ticks := after - before; ticks >= puts/2 {
			t.Errorf("%s: %d puts, one at a time, spanned %d ticks: each waited for one", mode, puts, ticks)
		}
	}
}
