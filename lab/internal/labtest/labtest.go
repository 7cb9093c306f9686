// Package labtest holds what the tests of the lab's designs share: run a
// design on a seed, check what every simulator run must fill in, and check
// that a seed replays exactly.
package labtest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

// Design is a design's simulator run.
type Design func(seed uint64) (*lab.Result, error)

// Run runs design on seed, failing the test on an error.
func Run(t testing.TB, design Design, seed uint64) *lab.Result {
	t.Helper()
	res, err := design(seed)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	return res
}

// Check checks what every simulator run must fill in: the design, the
// fault, a story that names every buyer told "sold", the buyers, the
// messages, and a lane for every server and buyer. buyers, if not 0, is
// how many buyers the design races.
func Check(t testing.TB, res *lab.Result, buyers int) {
	t.Helper()
	if res.Design == "" || res.Fault == "" || len(res.Story) < 2 || res.Buyers == 0 || res.Messages == 0 ||
		(buyers != 0 && res.Buyers != buyers) {
		t.Errorf("seed %d: design %q, fault %q, story %q, buyers %d, messages %d: want all filled in",
			res.Seed, res.Design, res.Fault, res.Story, res.Buyers, res.Messages)
	}
	if res.Where != "sim" || len(res.Timeline.Lanes) <= res.Buyers {
		t.Errorf("seed %d: where %q, lanes %v: want the sim's servers' and %d buyers' lanes", res.Seed, res.Where, res.Timeline.Lanes, res.Buyers)
	}
	story := strings.Join(res.Story, " ")
	for _, b := range res.ToldSold {
		if !strings.Contains(story, b) {
			t.Errorf("seed %d: %s was told \"sold\" but the story does not name them: %q", res.Seed, b, res.Story)
		}
	}
}

// SameTwice fails unless two runs of design on seed give the same JSON.
func SameTwice(t testing.TB, design Design, seed uint64) {
	t.Helper()
	a, err := json.Marshal(Run(t, design, seed))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(Run(t, design, seed))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("seed %d: two runs differ:\n%s\n%s", seed, a, b)
	}
}
