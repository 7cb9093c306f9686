package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// member is a row of kvctl cluster members -o json.
type member struct {
	Name  string `json:"node_id"`
	ID    string `json:"id"` // protojson writes uint64 as a string
	UUID  string `json:"uuid"`
	State string `json:"state"`
	// Decommissioning: kvctl node decommission started on it.
	Decommissioning bool `json:"decommissioning"`
}

func members(t *testing.T, node *kvd) []member {
	t.Helper()
	out := node.must(0, "cluster", "members", "-o", "json")
	var resp struct {
		Members []member `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("cluster members: %v\n%s", err, out)
	}
	return resp.Members
}

// localRanges is how many replicas node runs (meta included).
func localRanges(t *testing.T, node *kvd) int {
	t.Helper()
	out := node.must(0, "cluster", "status", "-o", "json")
	var st struct {
		LocalRanges int `json:"local_ranges"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}
	return st.LocalRanges
}

// TestWipedNodeRejoins is issue 10's acceptance test for node identity:
// a node whose data dir is lost, restarted with the same --node-id and
// --join, comes back as a new member with a new ID, its old ID is shown
// dead, it runs no replica of the old ID's ranges (it would run them on
// an empty log and HardState, forgetting its votes and acknowledgements),
// and the cluster goes on serving reads and writes, through it too.
func TestWipedNodeRejoins(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	for _, ks := range []string{"r3", "p3"} {
		mode := map[string]string{"r3": "raft", "p3": "paxos"}[ks]
		n1.must(0, "keyspace", "create", ks, "--mode", mode, "--replicas", "3", "--ranges", "2")
		for i := range 4 {
			n1.must(0, "-k", ks, "put", fmt.Sprintf("k%d", i), "before")
		}
	}
	var old member
	for _, m := range members(t, n1) {
		if m.Name == "n3" {
			old = m
		}
	}
	if old.ID == "" || old.UUID == "" || old.State != "alive" {
		t.Fatalf("n3 before the wipe: %+v", old)
	}
	// The default keyspace grew to three replicas once the third node
	// joined (8 ranges).
	waitFor(t, "n3 to run meta, the 8 ranges of default and 2 ranges of r3 and of p3", func() bool { return localRanges(t, n3) == 13 })

	// The disk is lost.
	n3.kill()
	if err := os.RemoveAll(n3.dataDir); err != nil {
		t.Fatal(err)
	}
	back := restartKVD(t, n3, "--node-id", "n3", "--zone", "z3", "--join", n1.gossip)

	var fresh member
	waitFor(t, "n3 back as a new member, its old ID dead", func() bool {
		fresh = member{}
		oldDead := false
		for _, m := range members(t, n1) {
			switch {
			case m.Name == "n3" && m.ID == old.ID:
				oldDead = m.UUID == old.UUID && m.State == "dead"
			case m.Name == "n3":
				fresh = m
			}
		}
		return oldDead && fresh.State == "alive" && fresh.ID != "0" && fresh.ID != ""
	})
	if fresh.UUID == old.UUID {
		t.Fatalf("n3 came back under its old UUID %s", old.UUID)
	}
	t.Logf("n3 was node %s (%s); it is back as node %s (%s)", old.ID, old.UUID, fresh.ID, fresh.UUID)
	out := n1.must(0, "cluster", "members")
	t.Logf("kvctl cluster members through n1:\n%s", out)
	if !strings.Contains(out, fresh.UUID) || !strings.Contains(out, "dead") {
		t.Fatalf("cluster members shows neither the new n3 nor a dead node:\n%s", out)
	}

	resp, err := http.Get("http://" + n1.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	if page := readBody(t, resp); !strings.Contains(page, "<td>"+old.ID+"</td><td>n3</td><td><code>"+old.UUID+"</code>") ||
		!strings.Contains(page, "<td>"+fresh.ID+"</td><td>n3</td><td><code>"+fresh.UUID+"</code>") {
		t.Fatalf("the status page does not show both n3s:\n%s", page)
	}

	// It runs meta only: the old ID's replicas are not its own.
	if got := localRanges(t, back); got != 1 {
		t.Fatalf("the new n3 runs %d replicas, want meta's alone", got)
	}

	// Reads and writes go on, through every node, the new one included:
	// each range keeps two of its three replicas.
	for _, node := range []*kvd{n1, nodes[1], back} {
		for _, ks := range []string{"r3", "p3"} {
			if got := node.must(0, "-k", ks, "get", "k0"); got != "before" {
				t.Fatalf("%s/k0 through %s: %q", ks, node.addr, got)
			}
			node.must(0, "-k", ks, "put", "k1", "after-"+node.addr)
			if got := node.must(0, "-k", ks, "get", "k1"); got != "after-"+node.addr {
				t.Fatalf("%s/k1 through %s: %q", ks, node.addr, got)
			}
		}
	}

	// Placement sees the new node alive and the old ID dead: a new
	// keyspace of three replicas lands on n1, n2 and the new n3.
	// (Placement runs on meta's leader, whose gossip may see the new n3
	// alive a moment after n1's does.)
	waitFor(t, "a keyspace of three replicas to be placed", func() bool {
		code, _, _ := n1.kvctl("", "keyspace", "create", "later", "--mode", "raft", "--replicas", "3", "--ranges", "2")
		return code == 0
	})
	waitFor(t, "the new n3 to run the new keyspace's replicas", func() bool { return localRanges(t, back) == 3 })
	back.must(0, "-k", "later", "put", "k", "v")
	if got := n1.must(0, "-k", "later", "get", "k"); got != "v" {
		t.Fatalf("later/k through n1: %q", got)
	}
}
