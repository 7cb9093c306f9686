package faults

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders results as the table of docs/reliability.md: one row
// per nemesis, workload and mode.
func Markdown(results []*Result) string {
	var b strings.Builder
	b.WriteString("| nemesis | workload | mode | ops | checked | violations | acked writes lost | LWW deletes undone | faults | unavailable after a fault (max) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		unavailable := "-"
		switch {
		case r.Faults == 0:
		case r.Unavailable < 0:
			unavailable = "no write succeeded"
		default:
			unavailable = fmt.Sprintf("%.1f s", r.Unavailable.Seconds())
		}
		mode := r.Mode
		if mode == "" {
			mode = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %d | %d | %s |\n",
			r.Nemesis, r.Workload, mode, r.Ops, r.Checked, len(r.Violations), r.Lost, r.LWWLost, r.Faults, unavailable)
	}
	return b.String()
}

// Violations lists every violation of results, one per line, prefixed by
// where it was found.
func Violations(results []*Result) []string {
	var out []string
	for _, r := range results {
		for _, v := range r.Violations {
			out = append(out, fmt.Sprintf("%s / %s / %s: %s", r.Nemesis, r.Workload, r.Mode, v))
		}
	}
	return out
}

// round formats a duration for the log.
func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
