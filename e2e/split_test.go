package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// A raft keyspace of one range on 3 nodes started with --range-max-bytes
// 1MiB, loaded with about 4 MiB by 8 writers, splits while they write: its
// range count grows, `kvctl cluster ranges` shows the halves (one range
// ends where the next begins), no write fails, and every written key
// reads back with its value. Emptied, the ranges merge back into one
// while a writer works, which loses nothing it was told succeeded and
// fails for no longer than 5 s in a row. The test logs how long the load
// and the merges took, and the ranges.
func TestRangeSplitsUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3, "--range-max-bytes", "1MiB")
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "big", "--mode", "raft", "--replicas", "3", "--ranges", "1")

	cl, err := client.New(client.Config{Endpoints: addrs(nodes)})
	if err != nil {
		t.Fatal(err)
	}
	load := splitLoad{keys: 4096, writers: 8, size: 1 << 10}
	keys := load.keys
	start := time.Now()
	failed := load.write(t, cl, "big", false)()
	t.Logf("wrote %d keys of %d bytes in %v (%d failed)", keys, load.size, time.Since(start).Round(time.Millisecond), failed)

	// 4 MiB over ranges of at most 1 MiB: at least 4 ranges once the
	// splits the load started are done.
	waitFor(t, "the keyspace to split into at least 4 ranges", func() bool { return len(rangeReplicas(t, n1, "big")) >= 4 })
	t.Logf("split into %d ranges %v after the load began", len(rangeReplicas(t, n1, "big")), time.Since(start).Round(time.Millisecond))
	out := n1.must(0, "cluster", "ranges", "-k", "big")
	t.Logf("kvctl cluster ranges -k big:\n%s", out)
	if strings.Count(out, "\n") < 5 {
		t.Errorf("kvctl cluster ranges shows fewer than 4 ranges:\n%s", out)
	}

	load.readBack(t, cl, "big")
	// A scan sees every key once, across the new ranges.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	all, err := cl.Scan(ctx, "big", nil, 0, 1000)
	cancel()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	seen := len(all)
	if seen != keys {
		t.Errorf("a scan after the splits saw %d keys, want %d", seen, keys)
	}

	// Emptied, the ranges merge back into the one the keyspace was
	// created with, while a writer keeps a few keys changing.
	load.write(t, cl, "big", true)()
	w := startWriter(t, cl, "big")
	emptied := time.Now()
	waitForWithin(t, "the emptied keyspace to merge back into one range", 2*time.Minute, func() bool {
		return len(rangeReplicas(t, n1, "big")) == 1
	})
	t.Logf("emptied, the keyspace merged back into one range in %v:\n%s", time.Since(emptied).Round(100*time.Millisecond),
		n1.must(0, "cluster", "ranges", "-k", "big"))
	w.stopAndCheck(t, n1, 5*time.Second)
}

// splitLoad is the load of the split tests: keys keys key-00000... whose
// values are their numbers padded to size bytes, written by writers
// goroutines at once.
type splitLoad struct{ keys, writers, size int }

func (l splitLoad) key(i int) []byte   { return fmt.Appendf(nil, "key-%05d", i) }
func (l splitLoad) value(i int) []byte { return fmt.Appendf(nil, "%0*d", l.size, i) }

// write puts every key (or deletes it, with del) into keyspace ks, each
// write failing the test if it fails; wait returns how many did.
func (l splitLoad) write(t *testing.T, cl *client.Client, ks string, del bool) (wait func() int64) {
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range l.writers {
		wg.Go(func() {
			for i := w; i < l.keys; i += l.writers {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				var err error
				if del {
					_, err = cl.Delete(ctx, ks, l.key(i), client.Quorum{})
				} else {
					_, err = cl.Put(ctx, ks, l.key(i), l.value(i), client.Quorum{})
				}
				cancel()
				if err != nil {
					failed.Add(1)
					t.Errorf("write %s (delete %v): %v", l.key(i), del, err)
				}
			}
		})
	}
	return func() int64 { wg.Wait(); return failed.Load() }
}

// readBack requires every key of ks to read back with its value.
func (l splitLoad) readBack(t *testing.T, cl *client.Client, ks string) {
	t.Helper()
	for i := range l.keys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		kv, err := cl.Get(ctx, ks, l.key(i), client.Quorum{})
		cancel()
		if err != nil || string(kv.Value) != string(l.value(i)) {
			t.Fatalf("get %s after the splits: %v (value of %d bytes)", l.key(i), err, len(kv.Value))
		}
	}
}
