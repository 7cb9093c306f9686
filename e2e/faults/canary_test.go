package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// suiteCanaries are the bugs the suite must catch, each in a kvd built
// with the qkv_canary tag (cmd/kvd/canary_on.go), with the nemesis and the
// keyspaces that expose it, and the workload whose checker must say so.
var suiteCanaries = []struct {
	name     string
	nemesis  string
	targets  []Target
	workload string
	// rounds is how many rounds may pass before the canary counts as
	// missed: some bugs need a fault at the right moment.
	rounds int
}{
	// Two buyers' swaps proposed before either applies both become puts:
	// the phone is sold twice, no fault needed.
	{name: "cas-at-propose", nemesis: "none", targets: linearizable, workload: Sale, rounds: 2},
	// A replica serves reads from its own data, leader or not: one cut
	// off from its range answers stale reads once the others took
	// writes. (skip-read-barrier, the same bug on a leader alone, is
	// caught by the simulator, kv's TestNodeCanaries: on a real cluster
	// its window, between a new leader's first write and the old
	// leader's step-down by check-quorum, is a fraction of a second.)
	{name: "read-any-replica", nemesis: "partition-leader", targets: linearizable, workload: Register, rounds: 3},
}

var linearizable = []Target{{Keyspace: "r", Mode: "raft"}, {Keyspace: "p", Mode: "paxos"}}

// TestCanaries: the suite catches every planted bug. A suite that passes
// a kvd with these bugs proves nothing about one without them.
func TestCanaries(t *testing.T) {
	needSuite(t)
	img := image(t, TagFailpoints, TagCanary)
	sd := seed(t)
	for i, k := range suiteCanaries {
		t.Run(k.name, func(t *testing.T) {
			c := startCluster(t, img, 3, k.targets, "KVD_TEST_CANARY="+k.name)
			if log := c.Log(context.Background(), c.Nodes[0]); !strings.Contains(log, "TEST-ONLY CANARY BUILD") {
				t.Fatalf("n1 does not say it has the canary planted:\n%s", log)
			}
			nem := nemesisNamed(t, k.nemesis)
			for r := range k.rounds {
				results, err := RunRound(context.Background(), c, Round{Nemesis: nem, Duration: 16 * time.Second, Targets: k.targets,
					Seed: sd + uint64(100*i+r), Prefix: fmt.Sprintf("%s-%d", k.name, r), CheckTimeout: time.Minute, Logf: t.Logf})
				if err != nil {
					t.Fatal(err)
				}
				var caught []string
				for _, res := range results {
					if res.Workload == k.workload {
						caught = append(caught, res.Violations...)
					}
				}
				if len(caught) > 0 {
					t.Logf("caught in round %d by the %s checker: %d violations; the first: %s", r+1, k.workload, len(caught), caught[0])
					return
				}
				t.Logf("round %d: not caught\n%s", r+1, Markdown(results))
			}
			t.Errorf("canary %s not caught by the %s checker in %d rounds of %s", k.name, k.workload, k.rounds, k.nemesis)
		})
	}
}
