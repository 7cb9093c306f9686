package cores

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/internal/labtest"
)

// basicPaxosSeeds is how many seeds TestBasicPaxosCorrect runs: 1,000, as
// the acceptance asks, or QKV_LAB_SEEDS. A seed takes a few milliseconds.
func basicPaxosSeeds(t *testing.T) uint64 {
	t.Helper()
	s := os.Getenv(envSeeds)
	if s == "" {
		return 1000
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", envSeeds, s)
	}
	return n
}

// TestBasicPaxosCorrect: the product's Basic Paxos core sells the phone
// once, keeps the sale and leaves every acceptor holding the owner,
// seed after seed; a sale takes the two phases without contention and
// more when proposers duel.
func TestBasicPaxosCorrect(t *testing.T) {
	n := basicPaxosSeeds(t)
	start := time.Now()
	least, most, sum := 100.0, 0.0, 0.0
	for seed := uint64(1); seed <= n; seed++ {
		res := labtest.Run(t, BasicPaxos, seed)
		labtest.Check(t, res, buyers)
		if res.Verdict != lab.Correct || len(res.ToldSold) != 1 || res.PhonesSold != 1 || res.Owner != res.ToldSold[0] {
			t.Fatalf("seed %d: verdict %q, told sold %v, phones sold %d, owner %q; story %q",
				seed, res.Verdict, res.ToldSold, res.PhonesSold, res.Owner, res.Story)
		}
		least, most, sum = min(least, res.RoundTrips), max(most, res.RoundTrips), sum+res.RoundTrips
	}
	if least != 2 || most <= 2 {
		t.Errorf("round trips per sale range over [%v, %v], want 2 without contention and more when proposers duel", least, most)
	}
	t.Logf("seeds 1..%d correct, %v a seed; round trips per sale %v to %v, mean %.2f",
		n, time.Since(start)/time.Duration(n), least, most, sum/float64(n))
}

// TestBasicPaxosReplay: a seed replays its run exactly.
func TestBasicPaxosReplay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 77} {
		a, _ := json.Marshal(labtest.Run(t, BasicPaxos, seed))
		b, _ := json.Marshal(labtest.Run(t, BasicPaxos, seed))
		if string(a) != string(b) {
			t.Errorf("seed %d: two runs differ", seed)
		}
	}
}
