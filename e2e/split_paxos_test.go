package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/workload"
)

// A paxos keyspace of one range on 3 nodes started with --range-max-bytes
// 256KiB, loaded with 2 MiB by 8 writers, splits while they write and
// while 4 clients read, write and compare-and-swap a few keys of it: its
// range count grows, no write fails, every written key reads back with
// its value, a scan sees each once, and the clients' history is
// linearizable. Emptied, its ranges do not merge (merges are for raft
// ranges only). It logs how long the load and the splits took.
func TestPaxosRangesSplitUnderLoad(t *testing.T) {
	nodes := startCluster(t, 3, "--range-max-bytes", "256KiB")
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "pbig", "--mode", "paxos", "--replicas", "3", "--ranges", "1")

	cl, err := client.New(client.Config{Endpoints: addrs(nodes)})
	if err != nil {
		t.Fatal(err)
	}
	load := splitLoad{keys: 2048, writers: 8, size: 1 << 10}
	keys := load.keys
	start := time.Now()
	h := sim.NewHistoryClock(func() time.Duration { return time.Since(start) })
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for c := range 4 {
		ccl := rotatedClient(t, addrs(nodes), c)
		clients.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 11))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				workload.RegisterOp(context.Background(), h, sim.NodeID(c+1), ccl, rng, "pbig", []string{"phone", "laptop", "tablet", "watch"}, fmt.Sprintf("c%d-%d", c, i))
			}
		})
	}
	failed := load.write(t, cl, "pbig", false)()
	t.Logf("wrote %d keys of %d bytes in %v (%d failed)", keys, load.size, time.Since(start).Round(time.Millisecond), failed)

	// 2 MiB over ranges of at most 256 KiB: at least 4 ranges once the
	// splits the load started are done.
	waitFor(t, "the keyspace to split into at least 4 ranges", func() bool { return len(rangeReplicas(t, n1, "pbig")) >= 4 })
	close(stop)
	clients.Wait()
	ranges := len(rangeReplicas(t, n1, "pbig"))
	t.Logf("split into %d ranges %v after the load began; %d operations of the clients", ranges, time.Since(start).Round(time.Millisecond), h.Len())
	t.Logf("kvctl cluster ranges -k pbig:\n%s", n1.must(0, "cluster", "ranges", "-k", "pbig"))
	if h.Len() < 50 {
		t.Fatalf("only %d operations: the keyspace was not serving while it split", h.Len())
	}
	sim.AssertLinearizable(t, h, 30*time.Second)

	load.readBack(t, cl, "pbig")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	all, err := cl.Scan(ctx, "pbig", nil, 0, 1000)
	cancel()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	seen := 0
	for _, kv := range all {
		if len(kv.Key) > 4 && string(kv.Key[:4]) == "key-" {
			seen++
		}
	}
	if seen != keys {
		t.Errorf("a scan after the splits saw %d keys, want %d", seen, keys)
	}

	// Emptied, the ranges stay apart: a raft keyspace would merge back
	// within a few split driver passes (TestRangeSplitsUnderLoad).
	load.write(t, cl, "pbig", true)()
	time.Sleep(5 * time.Second)
	if now := len(rangeReplicas(t, n1, "pbig")); now < ranges {
		t.Errorf("the emptied paxos keyspace went from %d ranges to %d: paxos ranges merged", ranges, now)
	}
	t.Logf("the whole test took %v", time.Since(start).Round(100*time.Millisecond))
}
