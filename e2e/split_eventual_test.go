package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestEventualRangeSplitsUnderLoad is TestRangeSplitsUnderLoad for an
// eventual keyspace (N=3, W=2, R=2) of one range on 3 nodes started with
// --range-max-bytes 1MiB (kv/eventual/split.go): 8 writers load it with
// about 4 MiB while buyers run a flash sale by compare-and-swap (put if
// absent) on 16 items of the same keyspace. It splits while they work:
// its range count grows to at least 4, no write fails, every written key
// reads back with its value and a scan sees each once; each item has at
// most one buyer told it won, and holds that buyer's name. The test logs
// how long the load and the splits took.
func TestEventualRangeSplitsUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3, "--range-max-bytes", "1MiB")
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "evbig", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2", "--ranges", "1")

	cl, err := client.New(client.Config{Endpoints: addrs(nodes)})
	if err != nil {
		t.Fatal(err)
	}
	const (
		items  = 16
		buyers = 4
	)
	load := splitLoad{keys: 4096, writers: 8, size: 1 << 10}
	keys := load.keys
	start := time.Now()
	wait := load.write(t, cl, "evbig", false)
	// The flash sale: each buyer tries every item once, through its own
	// node, spread over the load.
	var mu sync.Mutex
	won := map[int][]string{}
	var sale sync.WaitGroup
	for b := range buyers {
		bcl := rotatedClient(t, addrs(nodes), b)
		sale.Go(func() {
			for it := range items {
				time.Sleep(150 * time.Millisecond)
				name := fmt.Sprintf("buyer-%d", b)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := bcl.CompareAndSwap(ctx, "evbig", []byte(fmt.Sprintf("item-%02d", it)), client.Expect{Absent: true}, []byte(name))
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					won[it] = append(won[it], name)
					mu.Unlock()
				case errors.Is(err, client.ErrConditionFailed):
				default:
					t.Logf("buyer %d, item %d: %v", b, it, err) // unknown: checked below against the item's value
				}
			}
		})
	}
	failed := wait()
	sale.Wait()
	t.Logf("wrote %d keys of %d bytes in %v (%d failed)", keys, load.size, time.Since(start).Round(time.Millisecond), failed)

	// 4 MiB over ranges of at most 1 MiB: at least 4 ranges once the
	// splits the load started are done.
	waitFor(t, "the keyspace to split into at least 4 ranges", func() bool { return len(rangeReplicas(t, n1, "evbig")) >= 4 })
	t.Logf("split into %d ranges %v after the load began", len(rangeReplicas(t, n1, "evbig")), time.Since(start).Round(time.Millisecond))
	t.Logf("kvctl cluster ranges -k evbig:\n%s", n1.must(0, "cluster", "ranges", "-k", "evbig"))

	load.readBack(t, cl, "evbig")
	sold := 0
	for it := range items {
		if len(won[it]) > 0 {
			sold++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		kv, err := cl.Get(ctx, "evbig", []byte(fmt.Sprintf("item-%02d", it)), client.Quorum{})
		cancel()
		switch w := won[it]; {
		case len(w) > 1:
			t.Errorf("item %d sold to %d buyers: %v", it, len(w), w)
		case len(w) == 1 && (err != nil || string(kv.Value) != w[0]):
			t.Errorf("item %d: won by %s, but it holds %q (%v)", it, w[0], kv.Value, err)
		case len(w) == 0 && err == nil:
			t.Logf("item %d: no buyer was told it won (outcomes unknown), and it holds %q", it, kv.Value)
		}
	}
	t.Logf("flash sale: %d of %d items sold, each to one buyer", sold, items)
	// A scan sees every key once, across the new ranges, once every
	// replica moved its records (a replica still moving them refuses
	// scans: the others answer).
	var all []client.KeyValue
	waitFor(t, "a scan of the split keyspace", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		all, err = cl.Scan(ctx, "evbig", []byte("key-"), 0, 1000)
		return err == nil
	})
	if len(all) != keys {
		t.Errorf("a scan after the splits saw %d keys, want %d", len(all), keys)
	}
	t.Logf("checked in %v", time.Since(start).Round(time.Millisecond))
}
