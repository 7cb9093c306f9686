package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Label is the scenario's place on the road as the table shows it: "6a".
func (r *Result) Label() string { return fmt.Sprintf("%d%s", r.Number, r.Variant) }

// WriteStory writes the run's story: what the design does, the fault,
// what happened, the counts and the verdict.
func WriteStory(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  (%s, %s)\n\n", r.Label(), r.Title, r.Where, seedText(r))
	wrap(&b, "Design: ", r.Design)
	wrap(&b, "Fault:  ", r.Fault)
	if len(r.Story) > 0 {
		b.WriteString("\nWhat happened:\n")
		for _, s := range r.Story {
			wrap(&b, "  - ", s)
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  buyers                     %d\n", r.Buyers)
	fmt.Fprintf(&b, "  phones sold (records)      %d\n", r.PhonesSold)
	fmt.Fprintf(&b, "  buyers told \"sold\"         %d%s\n", len(r.ToldSold), names(r.ToldSold))
	fmt.Fprintf(&b, "  double sales               %d\n", r.DoubleSales)
	fmt.Fprintf(&b, "  acknowledged sales lost    %d\n", r.LostSales)
	fmt.Fprintf(&b, "  owner after healing        %s\n", orNone(r.Owner))
	fmt.Fprintf(&b, "  unavailable                %s\n", seconds(r.Unavailable))
	fmt.Fprintf(&b, "  messages                   %s\n", measured(r, r.Messages > 0, fmt.Sprint(r.Messages)))
	fmt.Fprintf(&b, "  round trips per sale       %s\n", measured(r, r.RoundTrips > 0, fmt.Sprintf("%.1f", r.RoundTrips)))
	fmt.Fprintf(&b, "  run took                   %s\n", seconds(r.Duration))
	fmt.Fprintf(&b, "\nVerdict: %s\n", strings.ToUpper(string(r.Verdict)))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTable writes one row per result: the article's argument as numbers.
func WriteTable(w io.Writer, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tDESIGN\tVERDICT\tTOLD SOLD\tDOUBLE\tLOST\tUNAVAILABLE\tMESSAGES\tRT/SALE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Label(), r.Title, r.Verdict,
			len(r.ToldSold), r.DoubleSales, r.LostSales, seconds(r.Unavailable),
			measured(r, r.Messages > 0, fmt.Sprint(r.Messages)),
			measured(r, r.RoundTrips > 0, fmt.Sprintf("%.1f", r.RoundTrips)))
	}
	return tw.Flush()
}

// WriteJSON writes the results as one JSON document: an object for one
// result, an array for several.
func WriteJSON(w io.Writer, rs []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(rs) == 1 {
		return enc.Encode(rs[0])
	}
	return enc.Encode(rs)
}

func seedText(r *Result) string {
	if r.Where == "cluster" {
		return "no seed: real processes"
	}
	return fmt.Sprintf("seed %d", r.Seed)
}

// measured prints v, or "—" where a count is zero because nothing
// measured it (a cluster's messages) or nothing was sold.
func measured(r *Result, ok bool, v string) string {
	if ok {
		return v
	}
	if r.Where == "cluster" {
		return "n/m"
	}
	return "—"
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func names(ns []string) string {
	if len(ns) == 0 {
		return ""
	}
	return " (" + strings.Join(ns, ", ") + ")"
}

func orNone(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}

// wrap writes text after prefix, wrapped at 80 columns with a hanging
// indent.
func wrap(b *strings.Builder, prefix, text string) {
	indent := strings.Repeat(" ", len([]rune(prefix)))
	line := prefix
	for i, word := range strings.Fields(text) {
		if i > 0 && len([]rune(line))+1+len([]rune(word)) > 80 {
			b.WriteString(line + "\n")
			line = indent + word
			continue
		}
		if i > 0 {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
}
