package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/bench"
)

// fakeNode serves the calls kvctl bench makes of a one-node raft
// keyspace: DescribeKeyspace, Put and Get, over Connect and h2c as kvd
// does.
type fakeNode struct {
	quorumkvv1connect.UnimplementedKVHandler
	quorumkvv1connect.UnimplementedAdminHandler
	mu struct {
		sync.Mutex
		seq      int
		versions map[string]string
	}
}

func (f *fakeNode) DescribeKeyspace(_ context.Context, req *connect.Request[v1.DescribeKeyspaceRequest]) (*connect.Response[v1.DescribeKeyspaceResponse], error) {
	return connect.NewResponse(&v1.DescribeKeyspaceResponse{Keyspace: &v1.Keyspace{
		Name: req.Msg.GetName(), Mode: v1.Mode_MODE_RAFT, Replicas: 1, Ranges: 1, Quorum: "majority"}}), nil
}

func (f *fakeNode) Put(_ context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.seq++
	v := fmt.Sprintf("1.%d", f.mu.seq)
	f.mu.versions[string(req.Msg.GetKey())] = v
	return connect.NewResponse(&v1.PutResponse{Version: v}), nil
}

func (f *fakeNode) Get(_ context.Context, req *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.mu.versions[string(req.Msg.GetKey())]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("fake: no key %s", req.Msg.GetKey()))
	}
	return connect.NewResponse(&v1.GetResponse{Kv: &v1.KeyValue{Key: req.Msg.GetKey(), Value: []byte("v"), Version: v}}), nil
}

// serveFakeNode starts a fake node and returns its host:port.
func serveFakeNode(t *testing.T) string {
	f := &fakeNode{}
	f.mu.versions = map[string]string{}
	mux := http.NewServeMux()
	mux.Handle(quorumkvv1connect.NewKVHandler(f))
	mux.Handle(quorumkvv1connect.NewAdminHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// kvctl bench --rates runs once per rate and prints a JSON list with the
// open loop's figures; --chart draws them; stderr, not a terminal, holds
// no progress line.
func TestBenchRatesJSONAndChart(t *testing.T) {
	ep := serveFakeNode(t)
	chart := filepath.Join(t.TempDir(), "c.svg")
	code, out, errOut := kvctl(t, "bench", "--endpoints", ep, "--rates", "100,200", "--duration", "300ms", "--keys", "20",
		"--clients", "4", "-o", "json", "--chart", chart)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.ContainsAny(errOut, "\r\x1b") {
		t.Errorf("stderr, not a terminal, holds a progress line: %q", errOut)
	}
	if !strings.Contains(errOut, "running raft N=1 on keyspace default: 300ms at 100 ops/s, at most 4 in flight, 20 keys under bench/") ||
		!strings.Contains(errOut, "wrote the chart to "+chart) {
		t.Errorf("stderr:\n%s", errOut)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Fatalf("stdout is not a list of two runs (%v):\n%s", err, out)
	}
	for i, rate := range []float64{100, 200} {
		o, ok := got[i]["open_loop"].(map[string]any)
		if !ok {
			t.Fatalf("run %d has no open_loop: %v", i, got[i])
		}
		for _, k := range []string{"target_rate", "scheduled", "sent", "achieved_rate", "late", "max_late_ms", "expired"} {
			if _, ok := o[k]; !ok {
				t.Errorf("run %d: open_loop lacks %s: %v", i, k, o)
			}
		}
		// 300ms at the rate: the count follows from the schedule alone.
		n := rate * 3 / 10
		if o["target_rate"] != rate || o["scheduled"] != n || o["sent"] != n || got[i]["ops"] != n {
			t.Errorf("run %d: open_loop %v, ops %v; want %v scheduled, sent and answered", i, o, got[i]["ops"], n)
		}
		if l, ok := got[i]["latency_ms"].(map[string]any); !ok || l["p99"] == nil {
			t.Errorf("run %d: no latency_ms.p99: %v", i, got[i])
		}
	}

	b, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	polylines, circles := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "circle":
				circles++
			}
		}
	}
	// One setting, two rates: a line of two points, and a legend entry.
	if polylines != 1 || circles != 3 {
		t.Errorf("chart has %d polylines and %d circles, want 1 and 3 (2 points, 1 legend marker)", polylines, circles)
	}
}

// The table of an open-loop run shows the target and achieved rates and
// the late starts.
func TestBenchRateTable(t *testing.T) {
	ep := serveFakeNode(t)
	code, out, errOut := kvctl(t, "bench", "--endpoints", ep, "--rate", "100", "--duration", "200ms", "--keys", "10", "-o", "table")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if h := strings.Join(strings.Fields(lines[0]), " "); !strings.HasPrefix(h, "MODE N W R RATE SENT/S OPS/S") || !strings.Contains(h, "ERRORS LATE STALE") {
		t.Errorf("header %q", lines[0])
	}
	// The achieved rate depends on the machine's timers (bench's tests
	// check it on a fake clock): here only that it is there.
	if f := strings.Fields(lines[1]); len(f) < 6 || f[0] != "raft" || f[4] != "100" || strings.Trim(f[5], "0123456789") != "" {
		t.Errorf("row %q: want rate 100 and the rate sent", lines[1])
	}
	if strings.ContainsAny(errOut, "\r\x1b") {
		t.Errorf("stderr holds a progress line: %q", errOut)
	}
}

func TestBenchRateUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "-1"}, "--rate -1: want 0 (closed loop) to 1000000 requests per second"},
		{[]string{"--rate", "2e6"}, "--rate 2e+06: want 0 (closed loop) to 1000000"},
		{[]string{"--rate", "NaN"}, "--rate NaN: want 0 (closed loop)"},
		{[]string{"--rates", "100,x"}, `--rates "100,x": want requests per second, each above 0`},
		{[]string{"--rates", "100,0"}, `--rates "100,0": want requests per second, each above 0`},
		{[]string{"--rates", "2000000"}, `--rates "2000000": want requests per second, each above 0 and at most 1000000`},
		{[]string{"--rates", strings.Repeat("1,", 64) + "1"}, "65 rates, want at most 64"},
		{[]string{"--rate", "10", "--rates", "10,20"}, "--rate and --rates: give one"},
		{[]string{"--chart", "/no/such/dir/c.svg"}, `--chart "/no/such/dir/c.svg": no directory /no/such/dir to write it in`},
		{[]string{"--sweep", "--rates", "1,-2"}, `--rates "1,-2"`},
	} {
		args := append([]string{"bench", "--endpoints", "127.0.0.1:1", "--timeout", "200ms"}, c.args...)
		code, _, errOut := kvctl(t, args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("kvctl %s: exit %d, stderr:\n%s\nwant exit 2 and %q", strings.Join(args, " "), code, errOut, c.want)
		}
	}
}

func TestProgressText(t *testing.T) {
	for _, tc := range []struct {
		p    bench.Progress
		want string
	}{
		{bench.Progress{Phase: bench.PhasePrefill, Done: 400, Total: 1000}, "kvctl bench: prefill, 400 of 1000 keys written"},
		{bench.Progress{Phase: bench.PhaseLoad, Elapsed: 3500 * time.Millisecond, Remaining: 6500 * time.Millisecond, Done: 7000, Total: 20000,
			OpsPerSecond: 1999.6, Errors: 2}, "kvctl bench: 3.5s, 6.5s left: 7000/20000 ops, 2000 ops/s, 2 errors"},
		{bench.Progress{Phase: bench.PhaseLoad, Elapsed: 10 * time.Second, Done: 31000, OpsPerSecond: 3100},
			"kvctl bench: 10.0s, finishing: 31000 ops, 3100 ops/s, 0 errors"},
	} {
		if got := progressText(tc.p); got != tc.want || len(got) > 79 {
			t.Errorf("progressText(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// The line is redrawn in place and erased before anything else is
// written; nil draws nothing.
func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	l := &progressLine{w: &b}
	l.clear() // nothing drawn: nothing to erase
	l.show(bench.Progress{Phase: bench.PhasePrefill, Done: 1, Total: 2})
	l.show(bench.Progress{Phase: bench.PhasePrefill, Done: 2, Total: 2})
	l.clear()
	l.clear()
	want := "\rkvctl bench: prefill, 1 of 2 keys written\x1b[K\rkvctl bench: prefill, 2 of 2 keys written\x1b[K\r\x1b[K"
	if b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
	var none *progressLine
	none.show(bench.Progress{})
	none.clear()
}
