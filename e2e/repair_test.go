package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// rangeReplicas maps each range of keyspace ks to the names of its
// replicas' nodes, as node's catalog has them.
func rangeReplicas(t *testing.T, node *kvd, ks string) map[string][]string {
	t.Helper()
	out := node.must(0, "cluster", "ranges", "-k", ks, "-o", "json")
	var resp struct {
		Ranges []struct {
			RangeID  string `json:"range_id"`
			Replicas []struct {
				NodeID string `json:"node_id"`
			} `json:"replicas"`
		} `json:"ranges"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("cluster ranges -k %s: %v\n%s", ks, err, out)
	}
	m := map[string][]string{}
	for _, r := range resp.Ranges {
		for _, rep := range r.Replicas {
			m[r.RangeID] = append(m[r.RangeID], rep.NodeID)
		}
	}
	return m
}

// A node killed for good has its replicas moved once it has been dead
// for --dead-after: with 4 nodes and replication factor 3, within two
// minutes no range of a raft or an eventual keyspace lists it and every
// range has 3 replicas on live nodes; a client writing all along sees no
// failure longer than a few seconds, and every write it was told
// succeeded reads back (issue 12).
func TestDeadNodeReplicasMove(t *testing.T) {
	nodes := startCluster(t, 4, "--dead-after", "5s")
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "4")
	n1.must(0, "keyspace", "create", "e3", "--mode", "eventual", "--replicas", "3", "--ranges", "2", "--w", "2", "--r", "2")
	for i := range 20 {
		n1.must(0, "-k", "r3", "put", fmt.Sprintf("k%d", i), "before")
		n1.must(0, "-k", "e3", "put", fmt.Sprintf("k%d", i), "before")
	}
	// The victim is the node holding the most replicas of r3, n1 aside
	// (the test's window on the cluster).
	held := map[string]int{}
	for _, reps := range rangeReplicas(t, n1, "r3") {
		for _, r := range reps {
			held[r]++
		}
	}
	victim := 1 // an index into nodes
	for i := 2; i < len(nodes); i++ {
		if held[fmt.Sprintf("n%d", i+1)] > held[fmt.Sprintf("n%d", victim+1)] {
			victim = i
		}
	}
	name := fmt.Sprintf("n%d", victim+1)
	if held[name] == 0 {
		t.Fatalf("no node but n1 holds replicas of r3: %v", held)
	}

	// A writer through the live nodes, all along.
	var live []string
	for i, n := range nodes {
		if i != victim {
			live = append(live, n.addr)
		}
	}
	w := startWriter(t, rotatedClient(t, live, 0), "r3")
	heldE3 := false
	for _, reps := range rangeReplicas(t, n1, "e3") {
		heldE3 = heldE3 || slices.Contains(reps, name)
	}
	// e3's new replica shows as filling until it holds what the others
	// do (meta's leader clears the mark at most a placement pass, 1 s,
	// after it filled): watched every 100 ms.
	var sawFilling atomic.Bool
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, out, _ := n1.kvctl("", "cluster", "ranges", "-k", "e3"); strings.Contains(out, "(filling)") {
				sawFilling.Store(true)
			}
		}
	}()
	nodes[victim].kill()
	died := time.Now()
	waitFor(t, "n1's status page to show ranges on a dead node", func() bool { return underReplicated(t, n1) > 0 })
	deadline := died.Add(2 * time.Minute)
	for {
		done := true
		for _, ks := range []string{"r3", "e3"} {
			for id, reps := range rangeReplicas(t, n1, ks) {
				if len(reps) != 3 || slices.Contains(reps, name) {
					done = false
					if time.Now().After(deadline) {
						t.Fatalf("range %s of %s still has replicas %v two minutes after %s died", id, ks, reps, name)
					}
				}
			}
		}
		if done {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s died; its replicas moved within %v (--dead-after 5s)", name, time.Since(died).Round(100*time.Millisecond))
	waitForWithin(t, "e3's new replicas filled", time.Minute, func() bool {
		return !strings.Contains(n1.must(0, "cluster", "ranges", "-k", "e3"), "(filling)")
	})
	t.Logf("e3's new replicas filled within %v of %s's death", time.Since(died).Round(100*time.Millisecond), name)
	close(stopWatch)
	<-watched
	if heldE3 && !sawFilling.Load() {
		t.Errorf("kvctl cluster ranges never showed e3's new replica as filling")
	}
	// The metrics say so: the moves meta's leader made, and no range
	// under-replicated any more.
	moves := 0.0
	for i, n := range nodes {
		if i != victim {
			moves += counter(t, n, `quorumkv_replica_moves_total{result="applied"}`)
		}
	}
	if want := float64(held[name]); moves < want {
		t.Errorf("quorumkv_replica_moves_total{result=\"applied\"} sums to %v over the live nodes, want at least %v (the raft replicas moved)", moves, want)
	}
	deadline = time.Now().Add(30 * time.Second)
	for counter(t, n1, "quorumkv_ranges_underreplicated") != 0 {
		if time.Now().After(deadline) {
			_ = os.WriteFile("/tmp/e2e-n1.log", n1.log.Bytes(), 0o644)
			t.Fatalf("quorumkv_ranges_underreplicated is still %v on n1 30 s after the repair of r3 and e3:\n%s",
				counter(t, n1, "quorumkv_ranges_underreplicated"), n1.must(0, "cluster", "ranges", "--all"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := underReplicated(t, n1); n != 0 {
		t.Errorf("n1's status page shows %d under-replicated ranges after the repair", n)
	}
	// The moved ranges serve: the writer goes on, and what it was told
	// succeeded reads back, as do the old keys.
	time.Sleep(2 * time.Second)
	w.stopAndCheck(t, n1, 10*time.Second)
	for i := range 20 {
		if out := n1.must(0, "-k", "e3", "get", fmt.Sprintf("k%d", i)); out != "before" {
			t.Errorf("e3/k%d = %q after the move, want before", i, out)
		}
	}
}

// underReplicated reads node's /status.json: the ranges with a replica on
// a node that is not alive.
func underReplicated(t *testing.T, node *kvd) int {
	t.Helper()
	resp, err := http.Get("http://" + node.addr + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ UnderReplicated int }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.UnderReplicated
}

// kvctl node remove: a node that is alive is refused; one that is gone
// has its replicas moved at once, long before --dead-after (an hour
// here), and is listed as removed.
func TestNodeRemove(t *testing.T) {
	nodes := startCluster(t, 4, "--dead-after", "1h")
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "4")
	for i := range 10 {
		n1.must(0, "-k", "r3", "put", fmt.Sprintf("k%d", i), "before")
	}
	ids := map[string]string{}
	for _, m := range members(t, n1) {
		ids[m.Name] = m.ID
	}
	code, _, stderr := n1.kvctl("", "node", "remove", ids["n4"])
	if code != 1 || !strings.Contains(stderr, "is alive") {
		t.Fatalf("removing the live n4: exit %d, %q; want exit 1 saying it is alive", code, stderr)
	}
	if code, _, stderr := n1.kvctl("", "node", "remove", "n4"); code != 2 || !strings.Contains(stderr, "node ID") {
		t.Fatalf("removing by name: exit %d, %q; want a usage error asking for the ID", code, stderr)
	}
	nodes[3].kill()
	waitFor(t, "gossip to see n4 dead", func() bool {
		for _, m := range members(t, n1) {
			if m.Name == "n4" {
				return m.State == "dead"
			}
		}
		return false
	})
	start := time.Now()
	n1.must(0, "node", "remove", ids["n4"])
	waitFor(t, "n4's replicas moved", func() bool {
		for _, reps := range rangeReplicas(t, n1, "r3") {
			if len(reps) != 3 || slices.Contains(reps, "n4") {
				return false
			}
		}
		return true
	})
	t.Logf("n4's replicas moved %v after kvctl node remove (--dead-after 1h)", time.Since(start).Round(100*time.Millisecond))
	for _, m := range members(t, n1) {
		if m.Name == "n4" && m.State != "removed" {
			t.Errorf("n4 is listed %s after its removal", m.State)
		}
	}
	for i := range 10 {
		if out := n1.must(0, "-k", "r3", "get", fmt.Sprintf("k%d", i)); strings.TrimSpace(out) != "before" {
			t.Errorf("r3/k%d = %q after the move, want before", i, out)
		}
	}
}

// kvctl node drain: the node, asked through another one, hands away the
// leadership of every range of r3 (three founding voters each), and
// keeps leading none of them while it drains. A decommission that the
// other nodes could not absorb is refused.
func TestNodeDrain(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "4")
	ids := map[string]string{}
	for _, m := range members(t, n1) {
		ids[m.Name] = m.ID
	}
	// leaders names the leader of each range of r3 as n2 sees it.
	leaders := func() []string {
		out := n2.must(0, "cluster", "ranges", "-k", "r3", "-o", "json")
		var resp struct {
			Ranges []struct {
				Leader string `json:"leader"`
			} `json:"ranges"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("cluster ranges -k r3: %v\n%s", err, out)
		}
		var out2 []string
		for _, r := range resp.Ranges {
			out2 = append(out2, r.Leader)
		}
		return out2
	}
	out := n2.must(0, "node", "drain", ids["n1"])
	if !strings.Contains(out, "draining") {
		t.Fatalf("kvctl node drain: %q", out)
	}
	away := func() bool {
		for _, l := range leaders() {
			if l == "" || l == "n1" {
				return false
			}
		}
		return true
	}
	waitFor(t, "every range of r3 led by another node than n1", away)
	time.Sleep(3 * time.Second)
	if !away() {
		t.Fatalf("the draining n1 leads ranges of r3 again: %v", leaders())
	}
	// The cluster serves through the draining node too.
	n1.must(0, "-k", "r3", "put", "k", "v")
	// Three nodes and a keyspace of three replicas: no node can be
	// decommissioned, and nothing changes.
	if code, _, stderr := n2.kvctl("", "node", "decommission", ids["n3"]); code != 1 || !strings.Contains(stderr, "add a node first") {
		t.Errorf("decommissioning n3 of 3 nodes with r3 of 3 replicas: exit %d, %q; want exit 1 saying to add a node first", code, stderr)
	}
	for _, m := range members(t, n1) {
		if m.Name == "n3" && (m.State != "alive" || m.Decommissioning) {
			t.Errorf("n3 is %s (decommissioning %v) after its refused decommission", m.State, m.Decommissioning)
		}
	}
	if got := strings.TrimSpace(n2.must(0, "-k", "r3", "get", "k")); got != "v" {
		t.Fatalf("get k = %q", got)
	}
}

// writer puts keys of a keyspace all along through a client, one every
// 20 ms, and remembers what it was told.
type writer struct {
	keyspace string
	stopping atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	longest  time.Duration // the longest stretch of failed writes
	// acked is each key's last acknowledged value; maybe, the values of
	// the writes that failed since, which may have been applied all the
	// same.
	acked, maybe map[string][]string
}

func startWriter(t *testing.T, cl *client.Client, keyspace string) *writer {
	w := &writer{keyspace: keyspace, acked: map[string][]string{}, maybe: map[string][]string{}}
	w.wg.Go(func() {
		var failingSince time.Time
		for i := 0; !w.stopping.Load(); i++ {
			key, val := fmt.Sprintf("w%d", i%50), fmt.Sprintf("v%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := cl.Put(ctx, keyspace, []byte(key), []byte(val), client.Quorum{})
			cancel()
			w.mu.Lock()
			switch {
			case err == nil:
				w.acked[key], w.maybe[key] = []string{val}, nil
				failingSince = time.Time{}
			default:
				w.maybe[key] = append(w.maybe[key], val)
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
				w.longest = max(w.longest, time.Since(failingSince))
			}
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	return w
}

// stopAndCheck stops the writer and requires that no stretch of failed
// writes lasted longer than maxFailing and that every acknowledged write
// reads back through node (or a failed write after it, which may have
// been applied).
func (w *writer) stopAndCheck(t *testing.T, node *kvd, maxFailing time.Duration) {
	t.Helper()
	w.stopping.Store(true)
	w.wg.Wait()
	if w.longest > maxFailing {
		t.Errorf("the writer failed for %v in a row", w.longest)
	}
	failed := 0
	for _, m := range w.maybe {
		failed += len(m)
	}
	t.Logf("writer: %d keys acknowledged, %d writes failed at the end of their key's history, longest failing stretch %v",
		len(w.acked), failed, w.longest)
	for key, val := range w.acked {
		out := strings.TrimSpace(node.must(0, "-k", w.keyspace, "get", key))
		if out != val[0] && !slices.Contains(w.maybe[key], out) {
			t.Errorf("%s/%s = %q, want the acknowledged %q or a failed write after it %v", w.keyspace, key, out, val[0], w.maybe[key])
		}
	}
}

// A node decommissioned under load (kvctl node decommission, waiting for
// it) has every replica of a raft and an eventual keyspace moved to the
// other nodes, shows its progress, ends removed, and the writer loses
// nothing it was told succeeded.
func TestNodeDecommission(t *testing.T) {
	nodes := startCluster(t, 4)
	n1, n4 := nodes[0], nodes[3]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "4")
	n1.must(0, "keyspace", "create", "e3", "--mode", "eventual", "--replicas", "3", "--ranges", "2", "--w", "2", "--r", "2")
	for i := range 20 {
		n1.must(0, "-k", "e3", "put", fmt.Sprintf("k%d", i), "before")
	}
	ids := map[string]string{}
	for _, m := range members(t, n1) {
		ids[m.Name] = m.ID
	}
	w := startWriter(t, rotatedClient(t, addrs(nodes[:3]), 0), "r3")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.kvctl, "--endpoints", n1.addr, "node", "decommission", ids["n4"])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kvctl node decommission %s: %v\n%s", ids["n4"], err, out)
	}
	t.Logf("kvctl node decommission took %v:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if !strings.Contains(string(out), "replicas to move") || !strings.Contains(string(out), "decommissioned and removed") {
		t.Errorf("kvctl node decommission showed no progress, or no end: %s", out)
	}
	for _, ks := range []string{"r3", "e3"} {
		for id, reps := range rangeReplicas(t, n1, ks) {
			if len(reps) != 3 || slices.Contains(reps, "n4") {
				t.Errorf("range %s of %s has replicas %v after n4 was decommissioned", id, ks, reps)
			}
		}
	}
	for _, m := range members(t, n1) {
		if m.Name == "n4" && m.State != "removed" {
			t.Errorf("n4 is listed %s after its decommission", m.State)
		}
	}
	// The decommissioned node still runs; stopping it costs the cluster
	// nothing.
	n4.stop()
	time.Sleep(2 * time.Second)
	w.stopAndCheck(t, n1, 5*time.Second)
	for i := range 20 {
		if out := strings.TrimSpace(n1.must(0, "-k", "e3", "get", fmt.Sprintf("k%d", i))); out != "before" {
			t.Errorf("e3/k%d = %q after the decommission, want before", i, out)
		}
	}
	if code, _, stderr := n1.kvctl("", "node", "decommission", ids["n4"]); code != 1 || !strings.Contains(stderr, "removed") {
		t.Errorf("decommissioning the removed n4 again: exit %d, %q; want exit 1 saying it was removed", code, stderr)
	}
}

// A node that joins gets its share: with 3 nodes and a raft keyspace of
// replication factor 3 (every node holds every range), a fourth node is
// given replicas until no node holds two more than another, within two
// minutes; kvctl cluster rebalance --dry-run then has nothing to move.
func TestNewNodeGetsItsShare(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "8")
	n4 := startKVD(t, filepath.Join(t.TempDir(), "n4"), "--node-id", "n4", "--zone", "z4", "--join", n1.gossip)
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for {
		load := map[string]int{}
		leaving := false
		for _, reps := range rangeReplicas(t, n1, "r3") {
			for _, r := range reps {
				load[r]++
			}
			leaving = leaving || len(reps) != 3
		}
		counts := slices.Collect(maps.Values(load))
		if !leaving && len(load) == 4 && slices.Max(counts)-slices.Min(counts) <= 1 {
			t.Logf("n4 joined; r3 spread as %v within %v", load, time.Since(start).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("r3's replicas per node two minutes after n4 joined: %v", load)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out := n4.must(0, "cluster", "rebalance", "--dry-run")
	if !strings.Contains(out, "0 moves would be proposed") {
		t.Errorf("kvctl cluster rebalance --dry-run once spread: %s", out)
	}
}

// Leaderships spread by themselves: on 3 nodes, the 8 ranges of a raft
// keyspace of 3 replicas end up led by every node, none leading two
// more than another (they used to be led by whichever node campaigned
// first, often all by one).
func TestLeadersSpread(t *testing.T) {
	nodes := startCluster(t, 3)
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "r3", "--mode", "raft", "--replicas", "3", "--ranges", "8")
	start := time.Now()
	var per map[string]int
	waitFor(t, "the leaderships of r3 spread over the nodes", func() bool {
		out := n1.must(0, "cluster", "ranges", "-k", "r3", "-o", "json")
		var resp struct {
			Ranges []struct {
				Leader string `json:"leader"`
			} `json:"ranges"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("cluster ranges: %v\n%s", err, out)
		}
		per = map[string]int{}
		for _, r := range resp.Ranges {
			per[r.Leader]++
		}
		counts := slices.Collect(maps.Values(per))
		return len(per) == 3 && per[""] == 0 && slices.Max(counts)-slices.Min(counts) <= 1
	})
	t.Logf("r3's leaders per node %v, %v after it was created", per, time.Since(start).Round(100*time.Millisecond))
}
