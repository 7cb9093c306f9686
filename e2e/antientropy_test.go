package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// The metrics these tests follow (docs/operations.md "Metrics").
const (
	metricHintsQueued    = "quorumkv_wrn_hints_queued_total"
	metricHintsDelivered = "quorumkv_wrn_hints_delivered_total"
	metricHintsExpired   = `quorumkv_wrn_hints_dropped_total{reason="expired"}`
	metricHintsPending   = "quorumkv_wrn_hints_pending"
	metricAEMismatches   = "quorumkv_wrn_antientropy_mismatches_total"
	metricAERepairs      = "quorumkv_wrn_antientropy_repairs_total"
)

// TestEventualAntiEntropy: a replica that comes back after its hints
// expired is brought level by anti-entropy alone. n3 is killed, 200 keys
// are written through n1 and n2 (W=2 of N=3), the hints they keep for n3
// outlive the 1 s hint window and are dropped; n3 restarts and pulls
// every key in its Merkle exchanges, which its repair counter shows.
// With n1 and n2 then killed, n3 serves every key alone (R=1).
//
// Only n3 runs anti-entropy here (n1 and n2 every hour): a node's repair
// counter counts the records its own rounds wrote, on either side, so
// with every node exchanging the repairs of n3 would be split among the
// three counters.
func TestEventualAntiEntropy(t *testing.T) {
	const keys = 200
	nodes := startCluster(t, 3, "--hint-window", "1s", "--anti-entropy-interval", "1h")
	nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
	// A crash of n3 (not n1, whose gossip address the others' --join name).
	nodes[2].kill()
	writeKeys(t, "ev", keys, newClient(t, nodes[0]), newClient(t, nodes[1]))

	up := nodes[:2]
	waitFor(t, "n1 and n2 to drop their hints for n3 as expired", func() bool {
		return sum(t, up, metricHintsExpired) >= keys && sum(t, up, metricHintsPending) == 0
	})
	queued, expired := sum(t, up, metricHintsQueued), sum(t, up, metricHintsExpired)
	t.Logf("hints for n3 on n1+n2: queued %v, dropped as expired %v", queued, expired)

	n3 := restartKVD(t, nodes[2], "--node-id", "n3", "--zone", "z3", "--join", nodes[0].gossip,
		"--hint-window", "1s", "--anti-entropy-interval", "500ms")
	ready := time.Now()
	waitFor(t, "n3's anti-entropy to repair every key it missed", func() bool { return counter(t, n3, metricAERepairs) >= keys })
	converged := time.Since(ready)
	all := []*kvd{nodes[0], nodes[1], n3}
	t.Logf("anti-entropy brought n3 level %v after it was ready: n3 repaired %v records; mismatched leaves n1 %v, n2 %v, n3 %v",
		converged.Round(time.Millisecond), counter(t, n3, metricAERepairs),
		counter(t, nodes[0], metricAEMismatches), counter(t, nodes[1], metricAEMismatches), counter(t, n3, metricAEMismatches))
	delivered := sum(t, all, metricHintsDelivered)
	t.Logf("hints: queued %v, delivered %v, dropped as expired %v, pending %v",
		sum(t, all, metricHintsQueued), delivered, sum(t, all, metricHintsExpired), sum(t, all, metricHintsPending))
	if delivered != 0 {
		t.Fatalf("%v hints were delivered to n3: they expired before it came back, anti-entropy alone should repair it", delivered)
	}

	// An R=1 read coordinated by n3 with n1 and n2 down is n3's own answer.
	nodes[0].kill()
	nodes[1].kill()
	readKeysAlone(t, n3, "ev", keys)
}

// TestEventualHintsSurviveRestart: the hints a coordinator keeps for a
// dead replica are on disk when the write is acknowledged, so they
// survive a crash of the coordinator. n3 is killed, 50 keys are written
// through n1, n1 is killed (-9) and restarted, then n3 restarts: n1
// replays every hint, and n3 then serves every key alone (R=1).
// Anti-entropy runs every hour, so hints are the only way n3 gets the keys.
func TestEventualHintsSurviveRestart(t *testing.T) {
	const keys = 50
	nodes := startCluster(t, 3, "--anti-entropy-interval", "1h")
	nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
	nodes[2].kill()
	writeKeys(t, "ev", keys, newClient(t, nodes[0]))
	// A write is acknowledged once W=2 replicas stored it; the hint for
	// n3 may be stored a moment later. Its storing is what is tested,
	// not that race.
	waitFor(t, "n1 to hold a hint for every write", func() bool { return counter(t, nodes[0], metricHintsPending) >= keys })
	t.Logf("before n1's crash: n1 queued %v hints, holds %v", counter(t, nodes[0], metricHintsQueued), counter(t, nodes[0], metricHintsPending))

	// Restarted without --join, n1 finds the others through the gossip
	// addresses its catalog keeps (n2's answers).
	nodes[0].kill()
	n1 := restartKVD(t, nodes[0], "--node-id", "n1", "--zone", "z1", "--anti-entropy-interval", "1h")
	if pending := counter(t, n1, metricHintsPending); pending != keys {
		t.Fatalf("n1 holds %v hints after its restart, want %d", pending, keys)
	}
	n3 := restartKVD(t, nodes[2], "--node-id", "n3", "--zone", "z3", "--join", n1.gossip, "--anti-entropy-interval", "1h")
	ready := time.Now()
	// The counters restarted from 0 with n1's process.
	waitFor(t, "n1 to deliver its hints to n3", func() bool {
		return counter(t, n1, metricHintsDelivered) >= keys && counter(t, n1, metricHintsPending) == 0
	})
	t.Logf("n1 delivered %v hints to n3 %v after n3 was ready; pending %v, dropped as expired %v; n3 repaired %v records by anti-entropy",
		counter(t, n1, metricHintsDelivered), time.Since(ready).Round(time.Millisecond), counter(t, n1, metricHintsPending),
		counter(t, n1, metricHintsExpired), counter(t, n3, metricAERepairs))

	n1.kill()
	nodes[1].kill()
	readKeysAlone(t, n3, "ev", keys)
}

func newClient(t testing.TB, node *kvd) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Endpoints: []string{node.addr}})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func testKey(i int) []byte   { return fmt.Appendf(nil, "key-%03d", i) }
func testValue(i int) []byte { return fmt.Appendf(nil, "value-%03d", i) }

// writeKeys writes count keys of keyspace, with the keyspace's W, through
// the clients in turn.
func writeKeys(t testing.TB, keyspace string, count int, clients ...*client.Client) {
	t.Helper()
	for i := range count {
		if _, err := clients[i%len(clients)].Put(context.Background(), keyspace, testKey(i), testValue(i), client.Quorum{}); err != nil {
			t.Fatalf("put %s: %v", testKey(i), err)
		}
	}
}

// readKeysAlone reads the count keys writeKeys wrote through node with
// R=1 and checks every value.
func readKeysAlone(t testing.TB, node *kvd, keyspace string, count int) {
	t.Helper()
	cl := newClient(t, node)
	for i := range count {
		kv, err := cl.Get(context.Background(), keyspace, testKey(i), client.Quorum{R: 1})
		if err != nil {
			t.Fatalf("get %s --r 1 through %s alone: %v", testKey(i), node.addr, err)
		}
		if string(kv.Value) != string(testValue(i)) {
			t.Fatalf("get %s --r 1 through %s alone: %q, want %q", testKey(i), node.addr, kv.Value, testValue(i))
		}
	}
}

// sum adds a metric (see counter) over nodes.
func sum(t testing.TB, nodes []*kvd, name string) float64 {
	t.Helper()
	var total float64
	for _, n := range nodes {
		total += counter(t, n, name)
	}
	return total
}
