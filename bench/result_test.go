package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func sampleResults() []Result {
	raft := Result{Keyspace: "bench-raft-x", Mode: ModeRaft, N: 3, OpsPerSecond: 1234.4, Ops: 12344, Errors: 2,
		Read:  OpStats{Ops: 6000, Latency: Latency{P50: 1.234, P90: 2, P99: 5.678, Max: 9}},
		Write: OpStats{Ops: 6344, Latency: Latency{P50: 2.5, P99: 8}, Errors: map[string]int64{"unavailable": 1, "deadline_exceeded": 1}},
		Stale: StaleCheck{Reads: 6000}}
	ev := Result{Keyspace: "bench-ev-x", Mode: ModeEventual, N: 3, W: 1, R: 1, OpsPerSecond: 2000, Ops: 20000,
		Read:     OpStats{Ops: 10000, Latency: Latency{P50: 0.5, P99: 1}},
		Write:    OpStats{Ops: 10000, Latency: Latency{P50: 0.6, P99: 1.5}},
		Stale:    StaleCheck{Reads: 10000, Missed: 25, Examples: []string{"key 3 read at 1s returned ..."}},
		Server:   &ServerStaleness{Reads: 10000, StaleReads: 312, StalePercent: 3.12},
		OpenLoop: &OpenLoop{TargetRate: 2000, Scheduled: 20000, Sent: 20000, AchievedRate: 2000, Late: 150, MaxLateMs: 12.5}}
	return []Result{raft, ev}
}

func TestRow(t *testing.T) {
	rs := sampleResults()
	for _, tc := range []struct {
		r    Result
		cols Columns
		want []string
	}{
		{rs[0], Columns{}, []string{"raft", "3", "-", "-", "1234", "1.23ms", "5.68ms", "2.50ms", "8.00ms", "2", "0 (0.00%)", "-"}},
		{rs[1], Columns{}, []string{"eventual", "3", "1", "1", "2000", "0.50ms", "1.00ms", "0.60ms", "1.50ms", "0", "25 (0.25%)", "3.12%"}},
		{rs[1], Columns{CAS: true}, []string{"eventual", "3", "1", "1", "2000", "0.50ms", "1.00ms", "0.60ms", "1.50ms", "-", "-", "0", "25 (0.25%)", "3.12%"}},
		// The open loop's columns: RATE and SENT/S before OPS/S, LATE after ERRORS.
		{rs[1], Columns{OpenLoop: true}, []string{"eventual", "3", "1", "1", "2000", "2000", "2000", "0.50ms", "1.00ms", "0.60ms", "1.50ms", "0", "150 (0.8%)", "25 (0.25%)", "3.12%"}},
		{rs[0], Columns{OpenLoop: true}, []string{"raft", "3", "-", "-", "-", "-", "1234", "1.23ms", "5.68ms", "2.50ms", "8.00ms", "2", "-", "0 (0.00%)", "-"}},
		{Result{Mode: ModeEventual, N: 3, W: 2, R: 2, Server: &ServerStaleness{Error: "404"}}, Columns{},
			[]string{"eventual", "3", "2", "2", "0", "-", "-", "-", "-", "0", "-", "n/a"}},
	} {
		if got := tc.r.Row(tc.cols); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Row(%+v):\n got %q\nwant %q", tc.cols, got, tc.want)
		}
		if got, header := tc.r.Row(tc.cols), tc.cols.Header(); len(got) != len(header) {
			t.Errorf("Row(%+v): %d cells under %d columns", tc.cols, len(got), len(header))
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	closed := sampleResults()
	closed[1].OpenLoop = nil
	if err := WriteTable(&b, closed); err != nil {
		t.Fatal(err)
	}
	want := `MODE      N  W  R  OPS/S  READ-P50  READ-P99  WRITE-P50  WRITE-P99  ERRORS  STALE       SERVER-STALE
raft      3  -  -  1234   1.23ms    5.68ms    2.50ms     8.00ms     2       0 (0.00%)   -
eventual  3  1  1  2000   0.50ms    1.00ms    0.60ms     1.50ms     0       25 (0.25%)  3.12%
raft: 1 write errors: deadline_exceeded
raft: 1 write errors: unavailable
eventual w=1 r=1: key 3 read at 1s returned ...
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// An open-loop run adds its columns to every row, and its notes say
	// at which rate.
	b.Reset()
	if err := WriteTable(&b, sampleResults()); err != nil {
		t.Fatal(err)
	}
	want = `MODE      N  W  R  RATE  SENT/S  OPS/S  READ-P50  READ-P99  WRITE-P50  WRITE-P99  ERRORS  LATE        STALE       SERVER-STALE
raft      3  -  -  -     -       1234   1.23ms    5.68ms    2.50ms     8.00ms     2       -           0 (0.00%)   -
eventual  3  1  1  2000  2000    2000   0.50ms    1.00ms    0.60ms     1.50ms     0       150 (0.8%)  25 (0.25%)  3.12%
raft: 1 write errors: deadline_exceeded
raft: 1 write errors: unavailable
eventual w=1 r=1 at 2000/s: key 3 read at 1s returned ...
`
	if b.String() != want {
		t.Errorf("open loop: got:\n%s\nwant:\n%s", b.String(), want)
	}
	// A compare-and-swap run adds its columns to every row.
	rs := closed
	rs[0].CASFraction, rs[0].CAS = 0.1, OpStats{Ops: 5, Latency: Latency{P50: 3, P99: 4}}
	b.Reset()
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(b.String(), "\n"); !strings.Contains(lines[0], "WRITE-P99  CAS-P50  CAS-P99  ERRORS") ||
		!strings.Contains(lines[1], "3.00ms   4.00ms") {
		t.Errorf("with compare-and-swaps:\n%s", b.String())
	}
}

// The JSON names are kvctl's -o json output, which scripts read.
func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(sampleResults()[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, path := range [][]string{
		{"mode"}, {"n"}, {"w"}, {"r"}, {"ops"}, {"ops_per_second"}, {"errors"}, {"elapsed_seconds"},
		{"read", "latency_ms", "p50"}, {"read", "latency_ms", "p90"}, {"read", "latency_ms", "p99"}, {"read", "latency_ms", "max"},
		{"write", "ops"}, {"stale", "missed"}, {"stale", "reads"}, {"server", "stale_percent"}, {"server", "reads"},
		{"latency_ms", "p99"}, {"duration_seconds"},
		{"open_loop", "target_rate"}, {"open_loop", "scheduled"}, {"open_loop", "sent"}, {"open_loop", "achieved_rate"},
		{"open_loop", "late"}, {"open_loop", "max_late_ms"}, {"open_loop", "expired"},
	} {
		var v any = m
		for _, k := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = obj[k]
		}
		if v == nil {
			t.Errorf("JSON lacks %s: %s", strings.Join(path, "."), b)
		}
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Stale.Missed != 25 || back.Server.StalePercent != 3.12 || back.W != 1 {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if back.OpenLoop == nil || *back.OpenLoop != *sampleResults()[1].OpenLoop {
		t.Errorf("round trip of the open loop: %+v", back.OpenLoop)
	}
	// No server measure (raft), closed loop: no "server", no "open_loop".
	if b, _ := json.Marshal(sampleResults()[0]); strings.Contains(string(b), `"server"`) || strings.Contains(string(b), `"open_loop"`) {
		t.Errorf("raft result has a server measure or an open loop: %s", b)
	}
}
