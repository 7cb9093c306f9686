package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A whole cluster stopped and started again on its data dirs, every node
// at new addresses (ports), finds itself again and serves within 10 s:
// each node dials the others at the addresses they advertise in gossip,
// not the stale ones of the catalog, and the catalog then learns the new
// ones (issue 12).
func TestClusterRestartsAtNewAddresses(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	for _, ks := range []string{"r3", "p3"} {
		mode := map[string]string{"r3": "raft", "p3": "paxos"}[ks]
		n1.must(0, "keyspace", "create", ks, "--mode", mode, "--replicas", "3", "--ranges", "2")
		n1.must(0, "-k", ks, "put", "k", "before")
	}
	for _, n := range nodes {
		n.kill() // all at once, as a power cut would
	}
	addr := make([]string, len(nodes))
	gossip := make([]string, len(nodes))
	for i := range nodes {
		addr[i], gossip[i] = freeAddr(t), freeAddr(t)
	}
	start := time.Now()
	moved := make([]*kvd, len(nodes))
	for i, n := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		join := gossip[(i+1)%len(nodes)]
		moved[i] = launchKVD(t, n.dataDir, addr[i], gossip[i], "--node-id", id, "--zone", fmt.Sprintf("z%d", i+1), "--join", join)
	}
	for _, n := range moved {
		n.waitReady()
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("the cluster took %v to be ready at its new addresses, want at most 10s", took)
	}
	t.Logf("the cluster was ready at its new addresses %v after the restart", took.Round(100*time.Millisecond))
	for _, ks := range []string{"r3", "p3"} {
		for _, n := range moved {
			if out := n.must(0, "-k", ks, "get", "k"); strings.TrimSpace(out) != "before" {
				t.Errorf("%s: get k through %s = %q, want before", ks, n.addr, out)
			}
		}
		moved[2].must(0, "-k", ks, "put", "k", "after")
	}
	// The catalog now holds the new addresses.
	waitFor(t, "the catalog to hold the new addresses", func() bool {
		out := moved[0].must(0, "cluster", "status")
		for _, a := range addr {
			if !strings.Contains(out, a) {
				return false
			}
		}
		return true
	})
}
