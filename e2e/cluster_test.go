package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/workload"
)

// startCluster starts n kvd processes on loopback: the first founds the
// cluster, the others join it through its gossip address. Every node also
// gets the flags in extra.
func startCluster(t testing.TB, n int, extra ...string) []*kvd {
	t.Helper()
	root := t.TempDir()
	nodes := []*kvd{startKVD(t, filepath.Join(root, "n1"), append([]string{"--node-id", "n1", "--zone", "z1"}, extra...)...)}
	for i := 2; i <= n; i++ {
		args := []string{"--node-id", fmt.Sprintf("n%d", i), "--zone", fmt.Sprintf("z%d", i), "--join", nodes[0].gossip}
		nodes = append(nodes, startKVD(t, filepath.Join(root, fmt.Sprintf("n%d", i)), append(args, extra...)...))
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
	nodes[0].must(0, "keyspace", "drop", "probe", "--force")
	return nodes
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, what, 30*time.Second, cond)
}

// waitForWithin polls cond every 100 ms for at most d.
func waitForWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestThreeNodes runs three kvd processes with three keyspaces of N=3: a
// raft one, a paxos one with majority quorums, and a paxos one with the
// zones geometry over the nodes' zones z1, z2, z3 (phase 1 needs a node
// in every zone, phase 2 every node of one zone: here a leader commits
// alone, and a new leader needs all three nodes). Clients on every node
// read, write and compare-and-swap a few keys of each while one node, the
// leader of a paxos range, is killed and restarted, and the history is
// checked for linearizability with porcupine. The restarted node then
// serves the latest values.
func TestThreeNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	keyspaces := []string{"r3", "p3", "pz"}
	nodes[0].must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "2")
	nodes[0].must(0, "keyspace", "create", "p3", "--mode", "paxos", "--replicas", "3", "--ranges", "2")
	nodes[0].must(0, "keyspace", "create", "pz", "--mode", "paxos", "--replicas", "3", "--ranges", "2", "--quorum", "zones")
	// The catalog reaches the other nodes through meta's log, a moment
	// after the node that created the keyspaces answered; a node asks
	// meta's leader before it says a keyspace does not exist, so n3 knows
	// them at once.
	for _, ks := range keyspaces {
		if out := nodes[2].must(0, "cluster", "ranges", "-k", ks); strings.Count(out, "n1") < 2 {
			t.Fatalf("n3's ranges of %s right after its creation through n1:\n%s", ks, out)
		}
	}

	// A keyspace with one replica per range: two of the three nodes hold
	// no replica of it and forward to the one that does.
	nodes[0].must(0, "keyspace", "create", "solo", "--mode", "raft", "--replicas", "1", "--ranges", "1")
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("n%d to serve keyspace solo", i+1), func() bool {
			code, _, _ := n.kvctl("", "-k", "solo", "put", "k", fmt.Sprint(i))
			return code == 0
		})
		if out := n.must(0, "-k", "solo", "get", "k"); out != fmt.Sprint(i) {
			t.Fatalf("n%d reads %q from keyspace solo", i+1, out)
		}
	}

	endpoints := addrs(nodes)
	start := time.Now()
	h := sim.NewHistoryClock(func() time.Duration { return time.Since(start) })
	keys := []string{"phone", "laptop", "tablet"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 6
	for c := range clients {
		cl := rotatedClient(t, endpoints, c)
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
				ks := keyspaces[rng.IntN(len(keyspaces))]
				workload.RegisterOp(context.Background(), h, sim.NodeID(c+1), cl, rng, ks, keys, fmt.Sprintf("c%d-%d", c, i))
			}
		}()
	}

	time.Sleep(2 * time.Second)
	// A crash, no drain, no goodbye, of a paxos leader: the other two
	// elect a new one. (Not n1, whose address the others' --join names.)
	victim := 2
	leader := rangeLeader(nodes[0], "p3")
	if leader == "n2" {
		victim = 1
	}
	t.Logf("p3's first range is led by %s; killing n%d", leader, victim+1)
	nodes[victim].kill()
	time.Sleep(3 * time.Second)
	restarted := startKVD(t, nodes[victim].dataDir, "--node-id", fmt.Sprintf("n%d", victim+1), "--zone", fmt.Sprintf("z%d", victim+1), "--join", nodes[0].gossip)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d operations in %v", h.Len(), time.Since(start).Round(time.Millisecond))
	if h.Len() < 100 {
		t.Fatalf("only %d operations: the cluster was not serving", h.Len())
	}
	sim.AssertLinearizable(t, h, 30*time.Second)
	answered := map[string]int{}
	for _, op := range h.Operations() {
		if !op.Output.(sim.KVOutput).Unknown {
			ks, _, _ := strings.Cut(op.Input.(sim.KVInput).Key, "/")
			answered[ks]++
		}
	}
	t.Logf("operations answered per keyspace: %v", answered)
	for _, ks := range keyspaces {
		if answered[ks] < 30 {
			t.Fatalf("only %d operations answered in keyspace %s", answered[ks], ks)
		}
	}

	// The restarted node catches up: a read through it (served by each
	// range's leader, perhaps itself) sees what a read through n1 sees.
	for _, ks := range keyspaces {
		for _, k := range keys {
			want := nodes[0].must(0, "-k", ks, "get", k)
			waitFor(t, "the restarted node to serve "+ks+"/"+k, func() bool {
				code, out, _ := restarted.kvctl("", "-k", ks, "get", k)
				return code == 0 && out == want
			})
		}
	}
}

// rotatedClient is client number c of a workload: a Go client of the
// endpoints that prefers a different node first for each c, with a short
// timeout and backoff.
func rotatedClient(t testing.TB, endpoints []string, c int) *client.Client {
	t.Helper()
	n := len(endpoints)
	eps := append(append([]string{}, endpoints[c%n:]...), endpoints[:c%n]...)
	cl, err := client.New(client.Config{Endpoints: eps, Timeout: 3 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// rangeLeader names the leader of the keyspace's first range, as node
// sees it ("" if none).
func rangeLeader(node *kvd, keyspace string) string {
	out := node.must(0, "cluster", "ranges", "-k", keyspace, "-o", "json")
	var resp struct {
		Ranges []struct {
			Leader string `json:"leader"`
		} `json:"ranges"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Ranges) == 0 {
		node.t.Fatalf("cluster ranges -k %s: %v\n%s", keyspace, err, out)
	}
	return resp.Ranges[0].Leader
}

// TestRESTAnyNode: the REST routes, like the Connect API, work through a
// node that holds no replica of the key's range (it forwards), and a 404
// says whether the key or the keyspace is missing.
func TestRESTAnyNode(t *testing.T) {
	nodes := startCluster(t, 2)
	nodes[0].must(0, "keyspace", "create", "solo", "--mode", "raft", "--replicas", "1", "--ranges", "1")
	// Right after the create the new range may still be electing its
	// leader: the node waits for one rather than answer 503.
	for i, n := range nodes {
		base := "http://" + n.addr + "/v1/kv/solo/"
		key := fmt.Sprintf("k%d", i)
		req, _ := http.NewRequest(http.MethodPut, base+key, strings.NewReader("v"))
		etag := do(t, req, http.StatusNoContent).Header.Get("ETag")
		req, _ = http.NewRequest(http.MethodGet, base+key, nil)
		resp := do(t, req, http.StatusOK)
		// The range's one replica, wherever the request went first.
		if leader, span := resp.Header.Get("Quorumkv-Leader"), resp.Header.Get("Quorumkv-Span"); (leader != nodes[0].addr && leader != nodes[1].addr) ||
			span != "0000000000000000-0000000000000000" {
			t.Fatalf("GET %s through %s: leader %q, span %q", key, n.addr, leader, span)
		}
		if body := readBody(t, resp); body != "v" {
			t.Fatalf("GET %s through %s: %q", key, n.addr, body)
		}
		req, _ = http.NewRequest(http.MethodPut, base+key, strings.NewReader("w"))
		req.Header.Set("If-Match", etag)
		do(t, req, http.StatusNoContent)
		req, _ = http.NewRequest(http.MethodPut, base+key, strings.NewReader("x"))
		req.Header.Set("If-None-Match", "*")
		do(t, req, http.StatusPreconditionFailed)
		req, _ = http.NewRequest(http.MethodDelete, base+key, nil)
		do(t, req, http.StatusNoContent)
		req, _ = http.NewRequest(http.MethodGet, base+key, nil)
		if got := do(t, req, http.StatusNotFound).Header.Get("Quorumkv-Not-Found"); got != "key" {
			t.Fatalf("404 of a deleted key through %s: Quorumkv-Not-Found %q", n.addr, got)
		}
		req, _ = http.NewRequest(http.MethodGet, "http://"+n.addr+"/v1/kv/nosuch/"+key, nil)
		if got := do(t, req, http.StatusNotFound).Header.Get("Quorumkv-Not-Found"); got != "keyspace" {
			t.Fatalf("404 of a missing keyspace through %s: Quorumkv-Not-Found %q", n.addr, got)
		}
		n.must(3, "-k", "solo", "get", key)
		n.must(1, "-k", "nosuch", "get", key)
	}
}

// TestRequestSpansLeaderChange: the leader of a range is killed, and a
// request through a follower right after waits for the new leader and
// succeeds, instead of answering 503 to a client that does not retry
// (curl here).
func TestRequestSpansLeaderChange(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].must(0, "keyspace", "create", "one", "--mode", "raft", "--replicas", "3", "--ranges", "1")
	nodes[0].must(0, "-k", "one", "put", "k", "v0")
	req, _ := http.NewRequest(http.MethodGet, "http://"+nodes[0].addr+"/v1/kv/one/k", nil)
	leader := do(t, req, http.StatusOK).Header.Get("Quorumkv-Leader")
	var survivor *kvd
	for _, n := range nodes {
		switch {
		case n.addr == leader:
			n.kill()
		case survivor == nil && n != nodes[0]: // n1's gossip is the others' seed: keep it if it can be
			survivor = n
		}
	}
	if survivor == nil {
		survivor = nodes[0]
	}
	start := time.Now()
	req, _ = http.NewRequest(http.MethodPut, "http://"+survivor.addr+"/v1/kv/one/k", strings.NewReader("v1"))
	resp := do(t, req, http.StatusNoContent)
	t.Logf("PUT through %s, sent right after the leader %s was killed, answered after %v by the new leader %s",
		survivor.addr, leader, time.Since(start).Round(time.Millisecond), resp.Header.Get("Quorumkv-Leader"))
	if got := survivor.must(0, "-k", "one", "get", "k"); got != "v1" {
		t.Fatalf("after the leader change: %q", got)
	}
}
