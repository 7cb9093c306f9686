package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestNaiveRaftNoVoteCheckBreaks(t *testing.T) {
	quorumBroken(t, NaiveRaftNoVoteCheck, lab.SoldTwice, lab.LostSale)
}

func TestNaiveRaftNoNoopBreaks(t *testing.T) {
	quorumBroken(t, NaiveRaftNoNoop, lab.LostSale, lab.SoldTwice)
}

// TestNaiveRaftSafe is the control: the same code with both safeguards
// stays correct under each fault that breaks 9a and 9b, and the fault
// did strike: under fault A nodes lacking the sale campaigned, and under
// fault B the node with the newer-term entry campaigned with the highest
// term.
func TestNaiveRaftSafe(t *testing.T) {
	both := nraftSafeguards{VoteCheck: true, OwnTermCommit: true}
	for _, c := range []struct {
		name    string
		figure8 bool
		struck  func(r *nraftRun) bool
	}{
		{"partial cut", false, func(r *nraftRun) bool { return r.campaignsWithout > 0 }},
		{"figure 8", true, func(r *nraftRun) bool { return r.comeback != nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := quorumCorrectSeeds(t)
			struck := 0
			quorumCorrect(t, func(seed uint64) (*lab.Result, error) {
				r, res, err := nraftRunWith(seed, both, c.figure8)
				if err == nil && c.struck(r) {
					struck++
				}
				return res, err
			}, n)
			if struck*10 < int(n)*9 {
				t.Errorf("the fault struck on %d of %d seeds, want at least 90%%", struck, n)
			}
		})
	}
	res, err := NaiveRaftSafe(1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != lab.Correct {
		t.Errorf("NaiveRaftSafe(1): %q; story: %q", res.Verdict, res.Story)
	}
}
