package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
)

// startCluster starts n kvd processes on loopback: the first founds the
// cluster, the others join it through its gossip address.
func startCluster(t *testing.T, n int) []*kvd {
	t.Helper()
	root := t.TempDir()
	nodes := []*kvd{startKVD(t, filepath.Join(root, "n1"), "--node-id", "n1", "--zone", "z1")}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startKVD(t, filepath.Join(root, fmt.Sprintf("n%d", i)),
			"--node-id", fmt.Sprintf("n%d", i), "--zone", fmt.Sprintf("z%d", i), "--join", nodes[0].gossip))
	}
	// Every node must know every other from the catalog before keyspaces
	// can be placed on them.
	waitFor(t, "all nodes in the catalog", func() bool {
		out := nodes[n-1].must(0, "cluster", "status")
		for i := 1; i <= n; i++ {
			if !strings.Contains(out, fmt.Sprintf("n%d ", i)) {
				return false
			}
		}
		code, _, _ := nodes[0].kvctl("", "keyspace", "create", "probe", "--mode", "raft", "--replicas", fmt.Sprint(n), "--ranges", "1")
		return code == 0
	})
	nodes[0].must(0, "keyspace", "drop", "probe")
	return nodes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestThreeNodes runs three kvd processes with a raft keyspace of N=3:
// clients on every node read, write and compare-and-swap a few keys while
// one node is killed and restarted, and the history is checked for
// linearizability with porcupine. The restarted node then serves the
// latest values.
func TestThreeNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "2")
	if out := nodes[2].must(0, "cluster", "ranges", "-k", "r3"); strings.Count(out, "n1") < 2 {
		t.Fatalf("ranges not on every node:\n%s", out)
	}

	var endpoints []string
	for _, n := range nodes {
		endpoints = append(endpoints, n.addr)
	}
	start := time.Now()
	h := sim.NewHistoryClock(func() time.Duration { return time.Since(start) })
	keys := []string{"phone", "laptop", "tablet"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 6
	for c := range clients {
		// Each client prefers a different node first.
		eps := append(append([]string{}, endpoints[c%3:]...), endpoints[:c%3]...)
		cl, err := client.New(client.Config{Endpoints: eps, Timeout: 3 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				runOp(h, sim.NodeID(c+1), cl, rng, keys, fmt.Sprintf("c%d-%d", c, i))
			}
		}()
	}

	time.Sleep(2 * time.Second)
	nodes[2].kill() // a crash: no drain, no goodbye
	time.Sleep(3 * time.Second)
	restarted := startKVD(t, nodes[2].dataDir, "--node-id", "n3", "--zone", "z3", "--join", nodes[0].gossip)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d operations in %v", h.Len(), time.Since(start).Round(time.Millisecond))
	if h.Len() < 100 {
		t.Fatalf("only %d operations: the cluster was not serving", h.Len())
	}
	sim.AssertLinearizable(t, h, 30*time.Second)

	// The restarted node catches up: a read through it (served by each
	// range's leader, perhaps itself) sees what a read through n1 sees.
	for _, k := range keys {
		want := nodes[0].must(0, "-k", "r3", "get", k)
		waitFor(t, "n3 to serve "+k, func() bool {
			code, out, _ := restarted.kvctl("", "-k", "r3", "get", k)
			return code == 0 && out == want
		})
	}
}

// runOp runs one random operation and records it in h.
func runOp(h *sim.History, id sim.NodeID, cl *client.Client, rng *rand.Rand, keys []string, value string) {
	ctx := context.Background()
	key := keys[rng.IntN(len(keys))]
	switch rng.IntN(4) {
	case 0:
		op := h.Invoke(id, sim.KVGet(key))
		kv, err := cl.Get(ctx, "r3", []byte(key), client.Quorum{})
		switch {
		case err == nil:
			op.Return(sim.KVOutput{Value: string(kv.Value), Found: true})
		case errors.Is(err, client.ErrNotFound):
			op.Return(sim.KVOutput{})
		default:
			op.Fail() // a read has no effect
		}
	case 1:
		op := h.Invoke(id, sim.KVPut(key, value))
		_, err := cl.Put(ctx, "r3", []byte(key), []byte(value), client.Quorum{})
		finishWrite(op, err, sim.KVOutput{})
	case 2:
		op := h.Invoke(id, sim.KVCASAbsent(key, value))
		_, err := cl.CompareAndSwap(ctx, "r3", []byte(key), client.Expect{Absent: true}, []byte(value))
		finishCAS(op, err)
	default:
		// Compare against a value read just before: often still current.
		kv, err := cl.Get(ctx, "r3", []byte(key), client.Quorum{})
		if err != nil {
			return
		}
		op := h.Invoke(id, sim.KVCAS(key, string(kv.Value), value))
		_, err = cl.CompareAndSwap(ctx, "r3", []byte(key), client.Expect{Value: kv.Value}, []byte(value))
		finishCAS(op, err)
	}
}

func finishCAS(op *sim.Op, err error) {
	if errors.Is(err, client.ErrConditionFailed) {
		op.Return(sim.KVOutput{Swapped: false})
		return
	}
	finishWrite(op, err, sim.KVOutput{Swapped: true})
}

// finishWrite: a node's own Unavailable, or the client finding no node
// to send to, mean nothing was written; anything else (a connection lost
// mid-request, a deadline, Unknown) may have been.
func finishWrite(op *sim.Op, err error, ok sim.KVOutput) {
	switch {
	case err == nil:
		op.Return(ok)
	case errors.Is(err, client.ErrNoNode),
		connect.IsWireError(err) && connect.CodeOf(err) == connect.CodeUnavailable:
		op.Fail()
	default:
		op.Unknown()
	}
}
