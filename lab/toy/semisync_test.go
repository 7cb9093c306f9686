package toy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

func TestSemiSync(t *testing.T) {
	lost := func(res *lab.Result) bool { return res.LostSales > 0 }
	testScenario(t, scenarioCase{
		design: SemiSync,
		seed1:  lab.SoldTwice,
		shows:  lost,
		what:   "an acknowledged sale lost",
		consistent: func(t *testing.T, res *lab.Result) {
			if !lost(res) {
				// The second master sold to the first master's buyer:
				// the two records agreed.
				oneKeptSale(t, res)
				return
			}
			// The first master's unacknowledged record won the pick over
			// the acknowledged sale; its buyer may have been told "sold"
			// afterwards.
			soldTwice := slices.Contains(res.ToldSold, res.Owner)
			want := lab.LostSale
			if soldTwice {
				want = lab.SoldTwice
			}
			if res.Verdict != want || res.LostSales != 1 || res.PhonesSold != 1 || res.Owner == "" || res.ToldSold[0] == res.Owner {
				t.Errorf("seed %d: verdict %q, told %v, owner %q, lost %d, phones %d: want the first told buyer's sale lost to %q",
					res.Seed, res.Verdict, res.ToldSold, res.Owner, res.LostSales, res.PhonesSold, res.Owner)
			}
		},
	})
}

// TestSemiSyncTwoMastersSettle restarts all three nodes at once, holding
// different sales, so that they look for a master together and can pick
// two, pair by pair: the two masters must settle on one by the same rule,
// and every node end following it and holding its record.
func TestSemiSyncTwoMastersSettle(t *testing.T) {
	stepDowns := 0
	for seed := uint64(1); seed <= 50; seed++ {
		r := newSemiRun(seed)
		r.stage = 2 // the scenario's nemesis stays out of it
		s := r.sale.Sim
		for _, id := range r.ids {
			s.Crash(id)
		}
		for id, owner := range []string{"ann", "bob", "bob"} {
			shopStoreOwner(s.Disk(r.ids[id]), owner)
		}
		for _, id := range r.ids {
			s.Restart(id)
		}
		if err := s.RunFor(time.Second); err != nil {
			t.Fatal(err)
		}
		var masters []sim.NodeID
		for _, id := range r.ids {
			if r.nodes[id].master == id {
				masters = append(masters, id)
			}
		}
		if len(masters) != 1 {
			t.Fatalf("seed %d: masters %v, want one", seed, masters)
		}
		m := r.nodes[masters[0]]
		for _, id := range r.ids {
			if n := r.nodes[id]; n.master != masters[0] || n.owner != m.owner {
				t.Errorf("seed %d: n%d follows n%d and holds %q; want n%d's %q", seed, id, n.master, n.owner, masters[0], m.owner)
			}
		}
		res := r.sale.Finish(&lab.Result{}, lab.Final{})
		stepDowns += len(slices.DeleteFunc(res.Timeline.Events, func(e lab.Event) bool {
			return e.Kind != lab.Note || !strings.HasPrefix(e.Label, "steps down")
		}))
	}
	t.Logf("%d step-downs in 50 seeds", stepDowns)
	if stepDowns == 0 {
		t.Error("no seed elected two masters: the test no longer reaches the step-down")
	}
}
