package road

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/quorumkv/quorumkv/lab"
)

// Tally is what a run of one scenario over many seeds showed.
type Tally struct {
	Scenario string         `json:"scenario"`
	Number   string         `json:"number"`
	Seeds    int            `json:"seeds"`
	First    uint64         `json:"first_seed,string"`
	Expect   lab.Verdict    `json:"expect"`
	Shown    int            `json:"shown"` // runs whose verdict was Expect
	Verdicts map[string]int `json:"verdicts"`
	// Example is the first seed whose verdict was not correct, to replay
	// it: 0 if none.
	Example uint64 `json:"example_seed,string"`
}

// Sweep runs s in the simulator on seeds first, first+1, ... (n of them)
// and counts the verdicts: how often a broken design shows its anomaly,
// and that a correct one never does.
func Sweep(s *lab.Scenario, first uint64, n int) (Tally, error) {
	t := Tally{Scenario: s.Name, Number: fmt.Sprintf("%d%s", s.Number, s.Variant), Seeds: n, First: first,
		Expect: s.Expect, Verdicts: map[string]int{}}
	for seed := first; seed < first+uint64(n); seed++ {
		r, err := RunSim(s, seed)
		if err != nil {
			return t, err
		}
		t.Verdicts[string(r.Verdict)]++
		if r.Verdict == s.Expect {
			t.Shown++
		}
		if r.Verdict != lab.Correct && t.Example == 0 {
			t.Example = seed
		}
	}
	return t, nil
}

// WriteSweep writes one row per tally, with the command that replays the
// first seed that broke.
func WriteSweep(w io.Writer, tallies []Tally) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSCENARIO\tSEEDS\tEXPECTED\tSHOWN\tVERDICTS\tREPLAY")
	for _, t := range tallies {
		var vs []string
		for _, v := range []lab.Verdict{lab.SoldTwice, lab.LostSale, lab.Diverged, lab.Stopped, lab.Correct} {
			if k := t.Verdicts[string(v)]; k > 0 {
				vs = append(vs, fmt.Sprintf("%s %d", v, k))
			}
		}
		replay := "-"
		if t.Example != 0 {
			replay = fmt.Sprintf("kvctl lab %s --seed %d", t.Scenario, t.Example)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d-%d\t%s\t%d of %d\t%s\t%s\n", t.Number, t.Scenario, t.First, t.First+uint64(t.Seeds)-1,
			t.Expect, t.Shown, t.Seeds, strings.Join(vs, ", "), replay)
	}
	return tw.Flush()
}
