package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestAsyncBackup(t *testing.T) {
	testScenario(t, scenarioCase{
		design: AsyncBackup,
		seed1:  lab.SoldTwice,
		shows:  func(res *lab.Result) bool { return res.Verdict == lab.SoldTwice },
		what:   "a double sale",
		consistent: func(t *testing.T, res *lab.Result) {
			if res.Verdict == lab.SoldTwice {
				// The old primary came back as the backup and took the
				// new primary's copy.
				secondSaleWins(t, res)
				return
			}
			// A copy reached the backup before the crash.
			oneKeptSale(t, res)
		},
	})
}
