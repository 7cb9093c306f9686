package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestSyncBackup(t *testing.T) {
	testScenario(t, scenarioCase{
		design: SyncBackup,
		seed1:  lab.Stopped,
		shows:  func(res *lab.Result) bool { return res.Verdict == lab.Stopped },
		what:   "a stop",
		consistent: func(t *testing.T, res *lab.Result) {
			oneKeptSale(t, res) // no acknowledged sale is lost
			// Sold on the first answer (after the backup's) or on a
			// retry once the sale was settled.
			if res.RoundTrips != 1 && res.RoundTrips != 2 {
				t.Errorf("seed %d: %v round trips for the sale, want 2 (or 1 on a retry)", res.Seed, res.RoundTrips)
			}
		},
	})
}
