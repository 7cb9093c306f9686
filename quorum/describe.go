package quorum

import (
	"fmt"
	"io"
	"strings"
)

// FormatSet writes ids as {a,b,c} using name for each voter.
func FormatSet(ids []uint64, name func(uint64) string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = name(id)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// WriteText writes r for people, naming voters with name, and the verdict
// for each protocol in protocols.
func (r *Report) WriteText(w io.Writer, name func(uint64) string, protocols []Protocol) error {
	set := func(ids []uint64) string { return FormatSet(ids, name) }
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("geometry", "%s on %d voters %s", r.Geometry, len(r.Voters), set(r.Voters))
	for _, ph := range []struct {
		label string
		pr    *PhaseReport
	}{{"phase 1", &r.Phase1}, {"phase 2", &r.Phase2}} {
		pr := ph.pr
		size := fmt.Sprint(pr.MinSize)
		if pr.MaxSize != pr.MinSize {
			size = fmt.Sprintf("%d to %d", pr.MinSize, pr.MaxSize)
		}
		examples := make([]string, len(pr.Examples))
		for i, e := range pr.Examples {
			examples[i] = set(e)
		}
		more := ""
		if pr.Minimal > len(pr.Examples) {
			more = " ..."
		}
		line(ph.label, "%s", pr.Describe)
		line("", "quorum size %s (%d minimal quorums), e.g. %s%s", size, pr.Minimal, strings.Join(examples, " "), more)
		line("", "tolerates %s; blocked when %s fail", plural(pr.Tolerates, "failure"), set(pr.Blocking))
	}
	if r.Intersect {
		line("proof", "checked all %d subsets: every phase-1 quorum meets every phase-2 quorum", r.Subsets)
	} else {
		line("proof", "checked all %d subsets: COUNTEREXAMPLE phase-1 quorum %s and phase-2 quorum %s share no voter",
			r.Subsets, set(r.Counterexample.A), set(r.Counterexample.B))
	}
	if r.Phase1Intersect {
		line("", "every two phase-1 quorums meet")
	} else {
		line("", "phase-1 quorums %s and %s share no voter", set(r.Phase1Disjoint.A), set(r.Phase1Disjoint.B))
	}
	line("", "%s can block both phases at once: %s", plural(len(r.BothBlocking), "failure"), set(r.BothBlocking))
	for _, p := range protocols {
		ok, why := r.Safe(p)
		verdict := "safe"
		if !ok {
			verdict = "UNSAFE"
		}
		line(string(p), "%s: %s", verdict, why)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
