package toy

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

// quorumSweep runs design on seeds 1..n and counts the verdicts; a run
// that fails is a test failure.
func quorumSweep(t *testing.T, design func(seed uint64) (*lab.Result, error), n uint64) map[lab.Verdict]int {
	t.Helper()
	counts := map[lab.Verdict]int{}
	for seed := uint64(1); seed <= n; seed++ {
		res, err := design(seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		counts[res.Verdict]++
	}
	return counts
}

// quorumCorrectSeeds is how many seeds a correct design must pass:
// 1,000, or QKV_LAB_SEEDS.
func quorumCorrectSeeds(t *testing.T) uint64 {
	if v := os.Getenv("QKV_LAB_SEEDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("QKV_LAB_SEEDS=%q: %v", v, err)
		}
		return n
	}
	return 1000
}

// quorumBroken checks a broken design: seed 1 ends in one of want, and so
// do more than 50 of seeds 1..100.
func quorumBroken(t *testing.T, design func(seed uint64) (*lab.Result, error), want ...lab.Verdict) {
	t.Helper()
	res, err := design(1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(want, res.Verdict) {
		t.Errorf("seed 1: verdict %q, want one of %q; story: %q", res.Verdict, want, res.Story)
	}
	counts := quorumSweep(t, design, 100)
	hits := 0
	for _, v := range want {
		hits += counts[v]
	}
	if hits <= 50 {
		t.Errorf("%d of seeds 1..100 show %q, want more than 50; verdicts: %v", hits, want, counts)
	}
	t.Logf("seeds 1..100: %v", counts)
}

// quorumCorrect checks a correct design on seeds 1..n: every run is
// lab.Correct, with exactly one buyer told "sold", the final read naming
// that buyer, and every replica agreeing.
func quorumCorrect(t *testing.T, design func(seed uint64) (*lab.Result, error), n uint64) []*lab.Result {
	t.Helper()
	var all []*lab.Result
	for seed := uint64(1); seed <= n; seed++ {
		res, err := design(seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Verdict != lab.Correct || len(res.ToldSold) != 1 || res.Owner != res.ToldSold[0] || res.PhonesSold != 1 {
			t.Fatalf("seed %d: verdict %q, told %v, owner %q, %d phones in the records; story: %q",
				seed, res.Verdict, res.ToldSold, res.Owner, res.PhonesSold, res.Story)
		}
		all = append(all, res)
	}
	return all
}

// TestQuorumDesignsReplay checks that a seed replays: the same seed gives
// the same Result, timeline and story included.
func TestQuorumDesignsReplay(t *testing.T) {
	designs := map[string]func(uint64) (*lab.Result, error){
		"WRNConcurrent":        WRNConcurrent,
		"WRNClockSkew":         WRNClockSkew,
		"ReadThenWrite":        ReadThenWrite,
		"NaiveRaftNoVoteCheck": NaiveRaftNoVoteCheck,
		"NaiveRaftNoNoop":      NaiveRaftNoNoop,
		"NaiveRaftSafe":        NaiveRaftSafe,
	}
	for name, design := range designs {
		t.Run(name, func(t *testing.T) {
			for _, seed := range []uint64{1, 2, 77} {
				a, err := design(seed)
				if err != nil {
					t.Fatal(err)
				}
				b, err := design(seed)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(a, b) {
					t.Errorf("seed %d: two runs differ:\n%+v\n%+v", seed, a, b)
				}
				if len(a.Story) == 0 || a.Design == "" || a.Fault == "" || a.Buyers == 0 || a.Messages == 0 {
					t.Errorf("seed %d: result incomplete: %+v", seed, a)
				}
			}
		})
	}
}
