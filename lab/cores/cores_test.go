package cores

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/internal/labtest"
)

// envSeeds sets how many seeds the correct designs run: the acceptance
// asks for 1,000 (QKV_LAB_SEEDS=1000).
const envSeeds = "QKV_LAB_SEEDS"

// defaultSeeds keeps this package's tests well under 90s of wall time on
// two shared cores: a seed of all five correct designs takes about 0.16s
// of one core (grid 70ms, zones 45ms, Raft and weighted 20ms, Multi-Paxos
// 6ms).
const defaultSeeds = 300

func seeds(t *testing.T) int {
	t.Helper()
	s := os.Getenv(envSeeds)
	if s == "" {
		return defaultSeeds
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", envSeeds, s)
	}
	return n
}

var correct = []struct {
	name   string
	design func(uint64) (*lab.Result, error)
}{
	{"raft", Raft}, {"multipaxos", MultiPaxos}, {"weighted", Weighted}, {"zones", Zones}, {"grid", Grid},
}

// TestCorrectDesigns: the designs built right sell once, keep the sale,
// agree and keep selling, seed after seed.
func TestCorrectDesigns(t *testing.T) {
	n := seeds(t)
	for _, c := range correct {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			for seed := uint64(1); seed <= uint64(n); seed++ {
				res := labtest.Run(t, c.design, seed)
				labtest.Check(t, res, buyers)
				if res.Verdict != lab.Correct || len(res.ToldSold) != 1 || res.PhonesSold != 1 || res.Owner != res.ToldSold[0] {
					t.Errorf("seed %d: verdict %q, told sold %v, phones sold %d, owner %q; story %q",
						seed, res.Verdict, res.ToldSold, res.PhonesSold, res.Owner, res.Story)
				}
				if res.RoundTrips < 2 {
					t.Errorf("seed %d: %v round trips per sale: a replicated write takes at least 2", seed, res.RoundTrips)
				}
			}
			t.Logf("seeds 1..%d correct, %v a seed", n, time.Since(start)/time.Duration(n))
		})
	}
}

// TestNonIntersecting: quorums that need not meet sell the phone twice
// under the partition that separates them, on seed 1 and on most seeds.
func TestNonIntersecting(t *testing.T) {
	res := labtest.Run(t, NonIntersecting, 1)
	if res.Verdict != lab.SoldTwice {
		t.Errorf("seed 1: verdict %q, want %q; story %q", res.Verdict, lab.SoldTwice, res.Story)
	}
	var twice []uint64
	for seed := uint64(1); seed <= 100; seed++ {
		res := labtest.Run(t, NonIntersecting, seed)
		labtest.Check(t, res, buyers)
		if res.Verdict != lab.SoldTwice {
			continue
		}
		twice = append(twice, seed)
		if !slices.ContainsFunc(res.Timeline.Events, func(e lab.Event) bool { return e.Kind == lab.Broke }) {
			t.Errorf("seed %d sold twice but its timeline marks no moment it broke", seed)
		}
		if !strings.Contains(strings.Join(res.Story, " "), "proof rejects") {
			t.Errorf("seed %d: the story does not tell the proof's counterexample: %q", seed, res.Story)
		}
	}
	t.Logf("%d of seeds 1..100 sell twice", len(twice))
	if len(twice) <= 50 {
		t.Errorf("only %d of seeds 1..100 sell twice, want > 50", len(twice))
	}
}

// TestSameSeedSameResult: a seed replays its run exactly.
func TestSameSeedSameResult(t *testing.T) {
	all := append(slices.Clone(correct), struct {
		name   string
		design func(uint64) (*lab.Result, error)
	}{"nonintersecting", NonIntersecting})
	for _, c := range all {
		for _, seed := range []uint64{1, 7} {
			labtest.SameTwice(t, c.design, seed)
		}
	}
}

// TestPausesOnTimeline: every pause the story counts is on the picture,
// and each paused node resumes, crashes or is still paused at the end.
func TestPausesOnTimeline(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		res := labtest.Run(t, Raft, seed)
		paused := map[string]bool{}
		pauses := 0
		for _, ev := range res.Timeline.Events {
			switch ev.Kind {
			case lab.Pause:
				pauses++
				paused[ev.Lane] = true
			case lab.Resume:
				if !paused[ev.Lane] {
					t.Errorf("seed %d: %s resumes at %v without a pause", seed, ev.Lane, ev.At)
				}
				paused[ev.Lane] = false
			case lab.Crash:
				paused[ev.Lane] = false
			}
		}
		if !slices.ContainsFunc(res.Story, func(s string) bool { return strings.Contains(s, " "+strconv.Itoa(pauses)+" nodes were paused") }) {
			t.Errorf("seed %d: %d pauses on the timeline; the story says %q", seed, pauses, res.Story)
		}
	}
}
