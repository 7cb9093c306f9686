package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/bench"
)

// TestKvctlBench runs "kvctl bench --sweep" on three kvd processes and
// checks its JSON: a row per mode and per eventual (W,R) pair, every row
// with answered requests, no read that missed an acknowledged write where
// none may (raft, paxos, eventual with W+R>N), the server's measure on
// the eventual rows only, and no temporary keyspace left behind.
func TestKvctlBench(t *testing.T) {
	nodes := startCluster(t, 3)
	endpoints := strings.Join(addrs(nodes), ",")

	// A single run's W is checked against its keyspace: default is raft.
	if code, _, errOut := nodes[0].kvctl("", "bench", "--w", "1", "--duration", "1s"); code != 2 ||
		!strings.Contains(errOut, "--w 1: want no override: W and R apply to eventual keyspaces, and default is raft") {
		t.Fatalf("bench --w 1 on a raft keyspace: exit %d, stderr %s", code, errOut)
	}

	args := []string{"bench", "--endpoints", endpoints, "--sweep", "--duration", "1s", "--clients", "4", "--keys", "50", "-o", "json"}
	code, out, progress := nodes[0].kvctl("", args...)
	t.Logf("kvctl %s:\n%s", strings.Join(args, " "), progress)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s", code, out)
	}
	code, list, errOut := nodes[0].kvctl("", "keyspace", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("keyspace list: exit %d: %s", code, errOut)
	}
	if strings.Contains(list, "bench-") {
		t.Errorf("temporary keyspaces left behind:\n%s", list)
	}

	var results []bench.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("kvctl bench -o json: %v\n%s", err, out)
	}
	type row struct {
		mode string
		w, r int
	}
	want := []row{{"raft", 0, 0}, {"paxos", 0, 0}, {"eventual", 1, 1}, {"eventual", 2, 2}, {"eventual", 1, 3}}
	if len(results) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(results), len(want), out)
	}
	for i, r := range results {
		name := fmt.Sprintf("%s w=%d r=%d", r.Mode, r.W, r.R)
		t.Logf("%s: %.0f ops/s, read p99 %.2fms, write p99 %.2fms, %d errors, %d of %d reads stale, server %+v",
			name, r.OpsPerSecond, r.Read.Latency.P99, r.Write.Latency.P99, r.Errors, r.Stale.Missed, r.Stale.Reads, r.Server)
		if got := (row{r.Mode, r.W, r.R}); got != want[i] || r.N != 3 || !strings.HasPrefix(r.Keyspace, "bench-") {
			t.Errorf("row %d: %s (N=%d, keyspace %s), want %+v", i, name, r.N, r.Keyspace, want[i])
		}
		if r.Ops == 0 || r.Read.Ops == 0 || r.Write.Ops == 0 || r.OpsPerSecond <= 0 {
			t.Errorf("%s: %d answered (%d reads, %d writes)", name, r.Ops, r.Read.Ops, r.Write.Ops)
		}
		// A healthy cluster fails next to nothing, even on two busy cores.
		if float64(r.Errors) > 0.01*float64(r.Ops+r.Errors) {
			t.Errorf("%s: %d of %d requests failed: %v", name, r.Errors, r.Ops+r.Errors, r.FirstErrors)
		}
		if r.Stale.Reads != int(r.Read.Ops) {
			t.Errorf("%s: %d reads checked of %d", name, r.Stale.Reads, r.Read.Ops)
		}
		if promised := r.Mode != "eventual" || r.W+r.R > r.N; promised && r.Stale.Missed > 0 {
			t.Errorf("%s: %d reads missed an acknowledged write: %q", name, r.Stale.Missed, r.Stale.Examples)
		}
		switch {
		case r.Mode != "eventual" && r.Server != nil:
			t.Errorf("%s: a server staleness measure %+v", name, r.Server)
		case r.Mode == "eventual" && (r.Server == nil || r.Server.Error != "" || r.Server.Reads < float64(r.Read.Ops)):
			// Every read the clients got an answer to was counted by its
			// coordinator, one of the three endpoints.
			t.Errorf("%s: server measure %+v for %d reads", name, r.Server, r.Read.Ops)
		}
	}
}
