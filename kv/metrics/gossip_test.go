package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// quorumkv_gossip_members exports every state, at 0 when counts leaves
// it out, read at each scrape.
func TestGossipMembers(t *testing.T) {
	reg := prometheus.NewRegistry()
	counts := map[string]int{"alive": 3}
	RegisterGossipMembers(reg, func() map[string]int { return counts })
	want := func(alive, dead, left int) string {
		return strings.NewReplacer("{alive}", itoa(alive), "{dead}", itoa(dead), "{left}", itoa(left)).Replace(`# HELP quorumkv_gossip_members Nodes this node's gossip sees, itself included, by state: alive (suspects included), dead (failure detection gave up on it), left (it said goodbye).
# TYPE quorumkv_gossip_members gauge
quorumkv_gossip_members{state="alive"} {alive}
quorumkv_gossip_members{state="dead"} {dead}
quorumkv_gossip_members{state="left"} {left}
`)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(3, 0, 0)), "quorumkv_gossip_members"); err != nil {
		t.Error(err)
	}
	counts = map[string]int{"alive": 1, "dead": 1, "left": 1}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(1, 1, 1)), "quorumkv_gossip_members"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg, "quorumkv_gossip_members"); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
