package toy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/internal/labtest"
)

// sweepSeeds is how many seeds the sweeps run: the acceptance asks for the
// anomaly on most (> 50) of seeds 1..100.
const sweepSeeds = 100

// scenarioCase is what a scenario's test checks.
type scenarioCase struct {
	design func(uint64) (*lab.Result, error)
	// seed1 is the verdict seed 1 must show.
	seed1 lab.Verdict
	// shows tells whether a run shows the scenario's anomaly, what names
	// it.
	shows func(*lab.Result) bool
	what  string
	// consistent checks a run's counts against the design's story.
	consistent func(t *testing.T, res *lab.Result)
}

// testScenario checks c on seed 1, on seeds 1..sweepSeeds (every run
// consistent, most showing the anomaly), and that seeds replay.
func testScenario(t *testing.T, c scenarioCase) {
	t.Helper()
	if res := labtest.Run(t, c.design, 1); res.Verdict != c.seed1 || !c.shows(res) {
		t.Errorf("seed 1: verdict %q (want %q), shows %s: %v; story: %q", res.Verdict, c.seed1, c.what, c.shows(res), res.Story)
	}
	var showing []uint64
	for seed := uint64(1); seed <= sweepSeeds; seed++ {
		res := labtest.Run(t, c.design, seed)
		labtest.Check(t, res, 0)
		c.consistent(t, res)
		if c.shows(res) {
			showing = append(showing, seed)
			if !slices.ContainsFunc(res.Timeline.Events, func(e lab.Event) bool { return e.Kind == lab.Broke }) {
				t.Errorf("seed %d shows %s but its timeline marks no moment it broke", seed, c.what)
			}
		}
	}
	t.Logf("%d of seeds 1..%d show %s", len(showing), sweepSeeds, c.what)
	if len(showing) <= sweepSeeds/2 {
		t.Errorf("only %d of seeds 1..%d show %s (want > %d): %v", len(showing), sweepSeeds, c.what, sweepSeeds/2, showing)
	}
	for _, seed := range []uint64{1, 7} {
		labtest.SameTwice(t, c.design, seed)
	}
}

// oneKeptSale fails unless res has exactly one buyer told "sold", who is
// the owner every replica names.
func oneKeptSale(t *testing.T, res *lab.Result) {
	t.Helper()
	if len(res.ToldSold) != 1 || res.Owner != res.ToldSold[0] || res.LostSales != 0 || res.PhonesSold != 1 || res.DoubleSales != 0 {
		t.Errorf("seed %d: told %v, owner %q, lost %d, phones %d, double %d: want one sale, kept by every replica",
			res.Seed, res.ToldSold, res.Owner, res.LostSales, res.PhonesSold, res.DoubleSales)
	}
}

// secondSaleWins fails unless res has two buyers told "sold" and the
// second owns the phone on every replica: the first sale is lost.
func secondSaleWins(t *testing.T, res *lab.Result) {
	t.Helper()
	if len(res.ToldSold) != 2 || res.Owner != res.ToldSold[1] || res.LostSales != 1 || res.PhonesSold != 1 || res.DoubleSales != 1 {
		t.Errorf("seed %d: told %v, owner %q, lost %d, phones %d, double %d: want two told, the second the owner everywhere",
			res.Seed, res.ToldSold, res.Owner, res.LostSales, res.PhonesSold, res.DoubleSales)
	}
}

// TestBuyersGiveUp checks the bound on a buyer's patience: against
// servers that never answer, both kinds of buyer try shopMaxTries times,
// asking the servers in turn, and give up.
func TestBuyersGiveUp(t *testing.T) {
	sale := lab.NewSale(1, sim.DefaultLink())
	servers := shopServers(sale, 2)
	asked := map[sim.NodeID]int{}
	for _, id := range servers {
		sale.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			return sim.ProcessFunc(func(sim.NodeID, any) { asked[id]++ })
		})
	}
	one := shopBuyers(sale, 1, servers, func() time.Duration { return 0 })[0]
	all := &multiBuyer{sale: sale, name: "all", replicas: servers}
	sale.Sim.AddNode(200, func(env *sim.Env) sim.Process {
		all.env = env
		env.After(0, all.ask)
		return all
	})
	sale.Lane(200, "all")
	if err := sale.Sim.RunUntil(func() bool { return one.done && all.done }, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The one-at-a-time buyer alternates; the other writes to both each try.
	if want := shopMaxTries/2 + shopMaxTries; asked[servers[0]] != want || asked[servers[1]] != want {
		t.Errorf("servers asked %v times, want %d each", asked, want)
	}
	res := sale.Finish(&lab.Result{}, lab.Final{})
	gaveUp := 0
	for _, e := range res.Timeline.Events {
		if e.Kind == lab.Note && e.Label == fmt.Sprintf("gives up after %d tries", shopMaxTries) {
			gaveUp++
		}
	}
	if gaveUp != 2 || res.Verdict != lab.Stopped || len(res.ToldSold) != 0 {
		t.Errorf("%d buyers gave up, verdict %q, told %v: want both gave up, stopped, nobody sold", gaveUp, res.Verdict, res.ToldSold)
	}
}
