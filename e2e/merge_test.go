package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Range merges survive kill -9 on real processes: a raft keyspace of one
// range on 3 nodes (--range-max-bytes 256KiB, --range-merge-bytes 128KiB)
// splits under a load of about 1.5 MiB; then all but one key in 64 is
// deleted, and while the ranges merge back and a writer works, n2 is
// killed halfway through the deletes and restarted after them, then n3
// is killed and restarted while the ranges merge. The keyspace ends as one
// range again, every kept key reads back with its value, the writer loses
// nothing it was told succeeded, and no stretch of its failed writes
// lasts longer than an election after a restart.
func TestMergesSurviveKills(t *testing.T) {
	extra := []string{"--range-max-bytes", "256KiB", "--range-merge-bytes", "128KiB"}
	nodes := startCluster(t, 3, extra...)
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "mk", "--mode", "raft", "--replicas", "3", "--ranges", "1")
	cl, err := client.New(client.Config{Endpoints: addrs(nodes)})
	if err != nil {
		t.Fatal(err)
	}
	const (
		keys = 1536
		size = 1 << 10
		keep = 64 // one key in keep stays
	)
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%05d", i) }
	value := func(i int) []byte { return fmt.Appendf(nil, "%0*d", size, i) }
	do := func(what string, i int, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			t.Fatalf("%s %s: %v", what, key(i), err)
		}
	}
	for i := range keys {
		do("put", i, func(ctx context.Context) error {
			_, err := cl.Put(ctx, "mk", key(i), value(i), client.Quorum{})
			return err
		})
	}
	waitFor(t, "the keyspace to split into at least 4 ranges", func() bool { return len(rangeReplicas(t, n1, "mk")) >= 4 })
	split := len(rangeReplicas(t, n1, "mk"))
	w := startWriter(t, cl, "mk")
	emptied := time.Now()
	restart := func(i int) {
		nodes[i] = restartKVD(t, nodes[i], append([]string{"--node-id", fmt.Sprintf("n%d", i+1), "--zone", fmt.Sprintf("z%d", i+1), "--join", n1.gossip}, extra...)...)
	}
	deleteFrom := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if i%keep != 0 {
				do("delete", i, func(ctx context.Context) error {
					_, err := cl.Delete(ctx, "mk", key(i), client.Quorum{})
					return err
				})
			}
		}
	}
	// Half the keys go, so the first pairs merge; n2 dies; the rest go
	// while it is down (no subsume starts without it; one under way
	// waits for it); n2 comes back, and n3 dies while the ranges merge.
	deleteFrom(0, keys/2)
	nodes[1].kill()
	t.Logf("killed n2 with %d ranges left", len(rangeReplicas(t, n1, "mk")))
	deleteFrom(keys/2, keys)
	time.Sleep(time.Second)
	t.Logf("deleted the rest with n2 down; %d ranges left", len(rangeReplicas(t, n1, "mk")))
	restart(1)
	time.Sleep(500 * time.Millisecond)
	nodes[2].kill()
	t.Logf("restarted n2 and killed n3 with %d ranges left", len(rangeReplicas(t, n1, "mk")))
	time.Sleep(1500 * time.Millisecond)
	restart(2)
	t.Logf("restarted n3 with %d ranges left", len(rangeReplicas(t, n1, "mk")))
	waitForWithin(t, "the keyspace to merge back into one range", 2*time.Minute, func() bool {
		return len(rangeReplicas(t, n1, "mk")) == 1
	})
	t.Logf("%d ranges merged back into one %v after the deletes, through two kills:\n%s", split,
		time.Since(emptied).Round(100*time.Millisecond), n1.must(0, "cluster", "ranges", "-k", "mk"))
	w.stopAndCheck(t, n1, 10*time.Second)
	for i := 0; i < keys; i += keep {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		kv, err := cl.Get(ctx, "mk", key(i), client.Quorum{})
		cancel()
		if err != nil || string(kv.Value) != string(value(i)) {
			t.Fatalf("get %s after the merges: %v (a value of %d bytes)", key(i), err, len(kv.Value))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := cl.Scan(ctx, "mk", []byte("key-"), 0, 10000)
	if err != nil || len(all) != (keys+keep-1)/keep {
		t.Fatalf("a scan after the merges saw %d keys (%v), want %d", len(all), err, (keys+keep-1)/keep)
	}
}
