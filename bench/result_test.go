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
		Read:   OpStats{Ops: 10000, Latency: Latency{P50: 0.5, P99: 1}},
		Write:  OpStats{Ops: 10000, Latency: Latency{P50: 0.6, P99: 1.5}},
		Stale:  StaleCheck{Reads: 10000, Missed: 25, Examples: []string{"key 3 read at 1s returned ..."}},
		Server: &ServerStaleness{Reads: 10000, StaleReads: 312, StalePercent: 3.12}}
	return []Result{raft, ev}
}

func TestRow(t *testing.T) {
	rs := sampleResults()
	for _, tc := range []struct {
		r       Result
		withCAS bool
		want    []string
	}{
		{rs[0], false, []string{"raft", "3", "-", "-", "1234", "1.23ms", "5.68ms", "2.50ms", "8.00ms", "2", "0 (0.00%)", "-"}},
		{rs[1], false, []string{"eventual", "3", "1", "1", "2000", "0.50ms", "1.00ms", "0.60ms", "1.50ms", "0", "25 (0.25%)", "3.12%"}},
		{rs[1], true, []string{"eventual", "3", "1", "1", "2000", "0.50ms", "1.00ms", "0.60ms", "1.50ms", "-", "-", "0", "25 (0.25%)", "3.12%"}},
		{Result{Mode: ModeEventual, N: 3, W: 2, R: 2, Server: &ServerStaleness{Error: "404"}}, false,
			[]string{"eventual", "3", "2", "2", "0", "-", "-", "-", "-", "0", "-", "n/a"}},
	} {
		if got := tc.r.Row(tc.withCAS); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Row(%v):\n got %q\nwant %q", tc.withCAS, got, tc.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleResults()); err != nil {
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
	// A compare-and-swap run adds its columns to every row.
	rs := sampleResults()
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
	// No server measure (raft): no "server" key.
	if b, _ := json.Marshal(sampleResults()[0]); strings.Contains(string(b), `"server"`) {
		t.Errorf("raft result has a server measure: %s", b)
	}
}
