package road

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

// Each scenario's Expect is what its runs show: on seed 1 (what
// `kvctl lab all` prints) and, for a broken design, on most of seeds
// 1-100. The packages of the designs test their own sweeps, a correct
// design over 1,000 seeds; this keeps the registry honest about them.
func TestExpectations(t *testing.T) {
	for _, s := range Scenarios() {
		if s.Sim == nil {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			r, err := RunSim(s, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict != s.Expect {
				t.Errorf("seed 1: %s, want %s", r.Verdict, s.Expect)
			}
			if r.Scenario != s.Name || r.Number != s.Number || r.Variant != s.Variant || r.Title != s.Title {
				t.Errorf("result labelled %s %d%s %q", r.Scenario, r.Number, r.Variant, r.Title)
			}
			if s.Expect == lab.Correct {
				return
			}
			shown := 0
			for seed := uint64(1); seed <= 100; seed++ {
				r, err := RunSim(s, seed)
				if err != nil {
					t.Fatal(err)
				}
				if r.Verdict == s.Expect {
					shown++
				}
			}
			if shown <= 50 {
				t.Errorf("%s on %d of seeds 1-100, want most", s.Expect, shown)
			}
			t.Logf("%s on %d of seeds 1-100", s.Expect, shown)
		})
	}
}

func TestNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Scenarios() {
		label := s.Name
		if seen[label] {
			t.Errorf("two scenarios are called %s", label)
		}
		seen[label] = true
		if s.Sim == nil && s.Cluster == nil {
			t.Errorf("%s runs nowhere", s.Name)
		}
	}
	if _, err := Find("nope"); err == nil {
		t.Error("Find(nope) found something")
	}
}
