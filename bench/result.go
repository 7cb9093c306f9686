package bench

import (
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is one run's measurement. It prints as a row of WriteTable and
// marshals as JSON (the field tags are part of kvctl's -o json output).
type Result struct {
	Keyspace string `json:"keyspace"`
	Mode     string `json:"mode"`
	N        int    `json:"n"`
	// W and R are the quorums the run's puts and gets got (eventual
	// keyspaces; zero otherwise).
	W int `json:"w"`
	R int `json:"r"`

	Clients int `json:"clients"`
	// DurationSeconds is the load's planned duration (Workload.Duration).
	DurationSeconds float64 `json:"duration_seconds"`
	Keys            int     `json:"keys"`
	ValueSize       int     `json:"value_size"`
	ReadFraction    float64 `json:"read_fraction"`
	CASFraction     float64 `json:"cas_fraction"`
	Seed            uint64  `json:"seed"`

	// PrefillSeconds is how long writing every key once took, before the
	// clock of the load started.
	PrefillSeconds float64 `json:"prefill_seconds"`
	// ElapsedSeconds is the load phase: until the last request answered.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Ops counts the answered requests; OpsPerSecond is Ops over
	// ElapsedSeconds. A read that found nothing and a compare-and-swap
	// whose condition failed are answers too.
	Ops          int64   `json:"ops"`
	OpsPerSecond float64 `json:"ops_per_second"`
	// Errors counts the failed requests (each kind's Errors say why).
	Errors int64 `json:"errors"`
	// Latency is the percentiles of every answered request, of all kinds.
	Latency Latency `json:"latency_ms"`
	// OpenLoop is what an open-loop run (Workload.Rate) did with its
	// schedule; nil in a closed loop. Latencies of an open-loop run count
	// from each request's due time.
	OpenLoop *OpenLoop `json:"open_loop,omitempty"`

	Read  OpStats `json:"read"`
	Write OpStats `json:"write"`
	CAS   OpStats `json:"cas"`

	// Stale is the client-side check: reads that missed a write
	// acknowledged before they were sent.
	Stale StaleCheck `json:"stale"`
	// Server is the server's staleness measure (eventual keyspaces with
	// metrics endpoints; nil otherwise).
	Server *ServerStaleness `json:"server,omitempty"`

	// FirstErrors are the first few request errors, for a person to read.
	FirstErrors []string `json:"first_errors,omitempty"`
}

// OpStats is one kind of request.
type OpStats struct {
	// Ops counts answered requests; their latencies are in Latency.
	Ops int64 `json:"ops"`
	// NotFound counts reads that found no record (included in Ops).
	NotFound int64 `json:"not_found,omitempty"`
	// Conflicts counts compare-and-swaps whose condition failed (in Ops).
	Conflicts int64 `json:"conflicts,omitempty"`
	// Errors counts failed requests by kind: a Connect code such as
	// "unavailable" or "deadline_exceeded", or "no_node" when no endpoint
	// could serve.
	Errors  map[string]int64 `json:"errors,omitempty"`
	Latency Latency          `json:"latency_ms"`
}

// failed is the number of failed requests of the kind.
func (s OpStats) failed() int64 {
	var n int64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// Columns is which optional columns a table of results has.
type Columns struct {
	// CAS: compare-and-swap latencies, when some row ran them.
	CAS bool
	// OpenLoop: the target and achieved rates and the late starts, when
	// some row was open-loop.
	OpenLoop bool
}

// ColumnsFor is the columns a table of results needs.
func ColumnsFor(results []Result) Columns {
	var c Columns
	for _, r := range results {
		c.CAS = c.CAS || r.CAS.Ops > 0 || r.CASFraction > 0
		c.OpenLoop = c.OpenLoop || r.OpenLoop != nil
	}
	return c
}

// Header is the table's header row.
func (c Columns) Header() []string {
	h := []string{"MODE", "N", "W", "R"}
	if c.OpenLoop {
		h = append(h, "RATE", "SENT/S")
	}
	h = append(h, "OPS/S", "READ-P50", "READ-P99", "WRITE-P50", "WRITE-P99")
	if c.CAS {
		h = append(h, "CAS-P50", "CAS-P99")
	}
	h = append(h, "ERRORS")
	if c.OpenLoop {
		h = append(h, "LATE")
	}
	return append(h, "STALE", "SERVER-STALE")
}

// Row is the result's cells in the columns c. In an open-loop row, RATE
// is the target, SENT/S the achieved rate and LATE the requests sent
// more than LateAfter after they were due; "-" in a closed-loop row.
func (r Result) Row(c Columns) []string {
	quorum := func(n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	ms := func(v float64, ops int64) string {
		if ops == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fms", v)
	}
	row := []string{r.Mode, fmt.Sprint(r.N), quorum(r.W), quorum(r.R)}
	if c.OpenLoop {
		row = append(row, r.rateCells()...)
	}
	row = append(row, fmt.Sprintf("%.0f", r.OpsPerSecond),
		ms(r.Read.Latency.P50, r.Read.Ops), ms(r.Read.Latency.P99, r.Read.Ops),
		ms(r.Write.Latency.P50, r.Write.Ops), ms(r.Write.Latency.P99, r.Write.Ops))
	if c.CAS {
		row = append(row, ms(r.CAS.Latency.P50, r.CAS.Ops), ms(r.CAS.Latency.P99, r.CAS.Ops))
	}
	row = append(row, fmt.Sprint(r.Errors))
	if c.OpenLoop {
		row = append(row, r.lateCell())
	}
	return append(row, r.staleCell(), r.serverCell())
}

// rateCells: the target and achieved rates.
func (r Result) rateCells() []string {
	if r.OpenLoop == nil {
		return []string{"-", "-"}
	}
	return []string{fmt.Sprintf("%.0f", r.OpenLoop.TargetRate), fmt.Sprintf("%.0f", r.OpenLoop.AchievedRate)}
}

// lateCell: late starts, and their share of the scheduled requests.
func (r Result) lateCell() string {
	o := r.OpenLoop
	if o == nil || o.Scheduled == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%.1f%%)", o.Late, 100*float64(o.Late)/float64(o.Scheduled))
}

// staleCell: missed reads, and their share of the checked reads.
func (r Result) staleCell() string {
	if r.Stale.Reads == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%.2f%%)", r.Stale.Missed, 100*float64(r.Stale.Missed)/float64(r.Stale.Reads))
}

func (r Result) serverCell() string {
	switch {
	case r.Server == nil:
		return "-"
	case r.Server.Error != "":
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", r.Server.StalePercent)
}

// WriteTable prints the results as an aligned table with a header, one
// row each, and below it the errors of runs that had any.
func WriteTable(w io.Writer, results []Result) error {
	c := ColumnsFor(results)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(c.Header(), "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(r.Row(c), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if err := r.writeNotes(w); err != nil {
			return err
		}
	}
	return nil
}

// writeNotes prints what a row cannot show: errors by kind, missed reads,
// a missing server measure.
func (r Result) writeNotes(w io.Writer) error {
	label := r.Mode
	if r.W != 0 || r.R != 0 {
		label = fmt.Sprintf("%s w=%d r=%d", r.Mode, r.W, r.R)
	}
	if r.OpenLoop != nil {
		label += fmt.Sprintf(" at %.0f/s", r.OpenLoop.TargetRate)
	}
	var notes []string
	for _, k := range []struct {
		name string
		s    OpStats
	}{{"read", r.Read}, {"write", r.Write}, {"cas", r.CAS}} {
		for code, n := range sortedCounts(k.s.Errors) {
			notes = append(notes, fmt.Sprintf("%d %s errors: %s", n, k.name, code))
		}
	}
	if o := r.OpenLoop; o != nil && o.Expired > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d requests never sent: every client was busy until their timeout had passed (calls overran their deadline, or kvctl was short of CPU)",
			o.Expired, o.Scheduled))
	}
	notes = append(notes, r.FirstErrors...)
	notes = append(notes, r.Stale.Examples...)
	if r.Server != nil && r.Server.Error != "" {
		notes = append(notes, "server staleness not measured: "+r.Server.Error)
	}
	for _, n := range notes {
		if _, err := fmt.Fprintf(w, "%s: %s\n", label, n); err != nil {
			return err
		}
	}
	return nil
}

// sortedCounts yields the map's entries in key order.
func sortedCounts(m map[string]int64) iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}
