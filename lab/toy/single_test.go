package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestSingleCrash(t *testing.T) {
	testScenario(t, scenarioCase{
		design: SingleCrash,
		seed1:  lab.Stopped,
		shows:  func(res *lab.Result) bool { return res.Verdict == lab.Stopped },
		what:   "a stop",
		consistent: func(t *testing.T, res *lab.Result) {
			oneKeptSale(t, res) // what it synced survives the crash
			if (res.Verdict == lab.Stopped) != (res.Unavailable > singleStopAfter) {
				t.Errorf("seed %d: verdict %q with %v unavailable", res.Seed, res.Verdict, res.Unavailable)
			}
		},
	})
}

func TestSingleDiskLoss(t *testing.T) {
	testScenario(t, scenarioCase{
		design: SingleDiskLoss,
		seed1:  lab.SoldTwice,
		shows:  func(res *lab.Result) bool { return res.Verdict == lab.SoldTwice },
		what:   "a double sale",
		consistent: func(t *testing.T, res *lab.Result) {
			if res.Verdict == lab.SoldTwice {
				secondSaleWins(t, res)
				return
			}
			// Nobody asked after the new disk: the one sale is lost.
			if res.Verdict != lab.LostSale || len(res.ToldSold) != 1 || res.Owner != "" || res.PhonesSold != 0 {
				t.Errorf("seed %d: verdict %q, told %v, owner %q, phones %d: want the sale forgotten",
					res.Seed, res.Verdict, res.ToldSold, res.Owner, res.PhonesSold)
			}
		},
	})
}
