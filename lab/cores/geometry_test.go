package cores

import (
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/replsim"
)

// TestSurvive: the failure sets the designs' texts promise, from the
// proof's enumeration.
func TestSurvive(t *testing.T) {
	for _, tc := range []struct {
		m       replsim.Membership
		largest string
		n       int // how many largest sets
	}{
		// The 8 votes: n1 alone (3), n2 with a light node (3), the three
		// light nodes (3); n1 with any other is 4 or more.
		{replsim.Weighted5(), "[[1] [2 3] [2 4] [2 5] [3 4 5]]", 5},
		// One node from each of two zones: the third zone whole commits,
		// and every zone keeps a node to elect.
		{replsim.Zones3x2(), "", 12},
		// Everything but one row and one column: 9 sets of 4.
		{replsim.Grid3x3(), "", 9},
	} {
		sv, err := survive(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if len(sv.largest) != tc.n {
			t.Errorf("%s: %d largest survivable sets, want %d: %v", tc.m, len(sv.largest), tc.n, sv.largest)
		}
		if tc.largest != "" && fmt.Sprint(sv.largest) != tc.largest {
			t.Errorf("%s: largest survivable sets %v, want %s", tc.m, sv.largest, tc.largest)
		}
		for _, f := range sv.largest {
			if !sv.survives(f) || sv.survives(sv.fatal(f)) {
				t.Errorf("%s: %v survived %v, %v one more survived %v", tc.m, f, sv.survives(f), sv.fatal(f), sv.survives(sv.fatal(f)))
			}
		}
	}
}
