package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestEventualKeyspace runs an eventual keyspace, N=3 W=2 R=2, on three
// kvd processes: every node coordinates puts and gets; with one node
// killed, W=2 writes and R=2 reads go on while --w 3 and --r 3 fail with
// Unavailable naming the counts (a W=3 write, once gossip sees the node
// dead, before anything is written); restarted, the node receives the
// writes it missed as hints and serves R=3 reads again.
func TestEventualKeyspace(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
	for i, n := range nodes {
		k := fmt.Sprintf("k%d", i)
		n.must(0, "-k", "ev", "put", k, fmt.Sprintf("v%d", i))
		for _, m := range nodes {
			if got := m.must(0, "-k", "ev", "get", k); strings.TrimSpace(got) != fmt.Sprintf("v%d", i) {
				t.Fatalf("get %s through %s: %q", k, m.addr, got)
			}
		}
	}
	nodes[1].must(0, "-k", "ev", "put", "one", "1", "--w", "1")
	nodes[2].must(0, "-k", "ev", "get", "one", "--r", "3")
	nodes[0].must(0, "-k", "ev", "del", "k0")
	nodes[1].must(3, "-k", "ev", "get", "k0")
	if out := nodes[2].must(0, "-k", "ev", "scan"); !strings.Contains(out, "k1") || strings.Contains(out, "k0") {
		t.Fatalf("scan after deleting k0: %q", out)
	}

	// Compare-and-swap: per-key Basic Paxos over the CasPrepare and
	// CasAccept peer RPCs; the flash sale has one winner.
	nodes[0].must(0, "-k", "ev", "put", "phone", "for sale")
	nodes[1].must(0, "-k", "ev", "cas", "phone", "sold to alice", "--expect", "for sale")
	if out := nodes[2].must(4, "-k", "ev", "cas", "phone", "sold to bob", "--expect", "for sale"); !strings.Contains(out, `holds "sold to alice"`) {
		t.Fatalf("losing cas: %q", out)
	}
	if got := nodes[2].must(0, "-k", "ev", "get", "phone", "--r", "3"); strings.TrimSpace(got) != "sold to alice" {
		t.Fatalf("get after the sale: %q", got)
	}

	// A crash of n3 (not n1, whose gossip address the others' --join name).
	nodes[2].kill()
	// A majority of acceptors is left: put-if-absent goes on.
	nodes[0].must(0, "-k", "ev", "cas", "lock", "n1", "--expect-absent")
	if out := nodes[1].must(4, "-k", "ev", "cas", "lock", "n2", "--expect-absent"); !strings.Contains(out, `holds "n1"`) {
		t.Fatalf("losing put-if-absent with n3 down: %q", out)
	}
	for i := range 5 {
		nodes[i%2].must(0, "-k", "ev", "put", "x", fmt.Sprintf("x%d", i))
	}
	if got := nodes[1].must(0, "-k", "ev", "get", "x"); strings.TrimSpace(got) != "x4" {
		t.Fatalf("R=2 read with n3 down: %q", got)
	}
	// A W=3 write is refused before anything is sent once gossip sees n3
	// dead: Unavailable, nothing written. Until then, it reaches n1 and
	// n2, and its outcome is unknown (stored on 2 of 3).
	var errOut string
	waitFor(t, "a put --w 3 refused with n3 dead to gossip", func() bool {
		var code int
		code, _, errOut = nodes[0].kvctl("", "-k", "ev", "put", "y", "w3", "--w", "3")
		switch {
		case code == 1 && strings.Contains(errOut, "a write needs W=3 of N=3; this node hears from 2 of 3 replicas") &&
			strings.Contains(errOut, "nothing was written"):
			return true
		case code == 1 && strings.Contains(errOut, "stored on 2 of 3 replicas"):
			return false
		}
		t.Fatalf("put --w 3 with n3 down: exit %d, stderr %q", code, errOut)
		return false
	})
	t.Logf("put --w 3 with n3 down: %s", strings.TrimSpace(errOut))
	code, _, errOut := nodes[1].kvctl("", "-k", "ev", "get", "x", "--r", "3")
	if code != 1 || !strings.Contains(errOut, "R=3 of N=3; 2 of 3 replicas answered") {
		t.Fatalf("get --r 3 with n3 down: exit %d, stderr %q", code, errOut)
	}
	t.Logf("with n3 down: %s", strings.TrimSpace(errOut))

	// Restarted with its old configuration, addresses included. This once
	// never became ready: meta's leader, quiesced, woke on the restarted
	// follower's election attempt and quiesced again before it sent a
	// heartbeat, so the follower never learned who led.
	restarted := restartKVD(t, nodes[2], "--node-id", "n3", "--zone", "z3", "--join", nodes[0].gossip)
	// Hinted handoff: the writes n3 missed were kept as hints by the
	// coordinators (n1, n2) and are replayed once gossip sees n3 again.
	hintsDelivered := func() float64 {
		return counter(t, nodes[0], "quorumkv_wrn_hints_delivered_total") + counter(t, nodes[1], "quorumkv_wrn_hints_delivered_total")
	}
	waitFor(t, "the hints for n3 to be delivered", func() bool { return hintsDelivered() > 0 })
	t.Logf("hints queued while n3 was down: %v, delivered after its restart: %v",
		counter(t, nodes[0], "quorumkv_wrn_hints_queued_total")+counter(t, nodes[1], "quorumkv_wrn_hints_queued_total"), hintsDelivered())
	waitFor(t, "an R=3 read through the restarted node", func() bool {
		code, out, _ := restarted.kvctl("", "-k", "ev", "get", "x", "--r", "3")
		return code == 0 && strings.TrimSpace(out) == "x4"
	})
	// Hints usually bring n3 level before any read does, so read repair
	// may find nothing to do here (kv's tests cover it); it is reported.
	nodes[0].must(0, "-k", "ev", "put", "x", "all", "--w", "3")
	t.Logf("read repairs counted by the restarted node: %v", readRepairs(t, restarted))
	if body := metricsText(t, nodes[0]); !strings.Contains(body, `quorumkv_wrn_reads_total{keyspace="ev"}`) ||
		!strings.Contains(body, `quorumkv_wrn_stale_reads_total{keyspace="ev"}`) {
		t.Fatalf("staleness metrics missing from n1's /metrics")
	}
}

// metricsText returns node's /metrics.
func metricsText(t testing.TB, node *kvd) string {
	t.Helper()
	resp, err := http.Get("http://" + node.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// counter reads an unlabelled counter or gauge from node's /metrics, or
// one series of a labelled one named in full, as in
// name{label="value"} (0 if absent).
func counter(t testing.TB, node *kvd, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(metricsText(t, node))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

var readRepairsOK = regexp.MustCompile(`(?m)^quorumkv_wrn_read_repairs_total\{result="ok"\} (\S+)$`)

// readRepairs reads quorumkv_wrn_read_repairs_total{result="ok"} from
// node's /metrics (0 if absent).
func readRepairs(t testing.TB, node *kvd) float64 {
	t.Helper()
	m := readRepairsOK.FindStringSubmatch(metricsText(t, node))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
