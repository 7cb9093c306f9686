package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/internal/labtest"
)

// nobodySold is the anomaly of design 5: every replica took a different
// first buyer, so nobody bought the phone and the replicas disagree.
func nobodySold(res *lab.Result) bool {
	return res.Verdict == lab.Diverged && len(res.ToldSold) == 0 && res.Owner == "" && res.PhonesSold == 3
}

func TestMultiWrite(t *testing.T) {
	testScenario(t, scenarioCase{
		design: MultiWrite,
		seed1:  lab.Diverged,
		shows:  nobodySold,
		what:   "three replicas with three owners and nobody sold",
		consistent: func(t *testing.T, res *lab.Result) {
			if res.DoubleSales != 0 || res.LostSales != 0 {
				t.Errorf("seed %d: %d double sales, %d lost: the pigeonhole rule allows neither", res.Seed, res.DoubleSales, res.LostSales)
			}
			if nobodySold(res) {
				return
			}
			// Two replicas took the same first buyer, who was sold the
			// phone; a third that took another still names that one.
			if len(res.ToldSold) != 1 || res.Owner != res.ToldSold[0] || (res.PhonesSold == 2) != (res.Verdict == lab.Diverged) {
				t.Errorf("seed %d: verdict %q, told %v, owner %q, phones %d: want one sale, by a majority",
					res.Seed, res.Verdict, res.ToldSold, res.Owner, res.PhonesSold)
			}
		},
	})
}

// TestMultiWriteSplitRate checks the rate multiBuyers' comment promises:
// 0.70-0.80 of seeds 1..1000 split the replicas three ways.
func TestMultiWriteSplitRate(t *testing.T) {
	split := 0
	for seed := uint64(1); seed <= 1000; seed++ {
		if nobodySold(labtest.Run(t, MultiWrite, seed)) {
			split++
		}
	}
	t.Logf("%d of seeds 1..1000 split three ways", split)
	if split < 700 || split > 800 {
		t.Errorf("%d of seeds 1..1000 split three ways, want 700-800", split)
	}
}
