package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// svgElement is an element of the chart, with its text.
type svgElement struct {
	name  string
	attrs map[string]string
	text  string
	// parent is the enclosing element's name and class.
	parent, parentClass string
}

// parseSVG checks that the chart is well-formed XML with an svg root, and
// returns its elements in document order.
func parseSVG(t *testing.T, b []byte) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var out []svgElement
	var stack []int // indexes into out
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 && (e.name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", tok.Name)
			}
			if len(stack) > 0 {
				p := out[stack[len(stack)-1]]
				e.parent, e.parentClass = p.name, p.attrs["class"]
			}
			out = append(out, e)
			stack = append(stack, len(out)-1)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				out[stack[len(stack)-1]].text += string(tok)
			}
		}
	}
	return out
}

// chartRuns: a sweep of three settings at three rates; the eventual one's
// last run answered nothing.
func chartRuns() []Result {
	var rs []Result
	for _, s := range []struct {
		ks   string
		mode string
		w, r int
		p99  []float64
	}{
		{"bench-raft-x", ModeRaft, 0, 0, []float64{2.1, 3.5, 250}},
		{"bench-paxos-x", ModePaxos, 0, 0, []float64{2.3, 4, 900}},
		{"bench-ev-x", ModeEventual, 1, 1, []float64{0.9, 1.2, 0}},
	} {
		for i, rate := range []float64{1000, 2000, 4000} {
			r := Result{Keyspace: s.ks, Mode: s.mode, N: 3, W: s.w, R: s.r, Clients: 16, Keys: 1000, ValueSize: 256,
				ReadFraction: 0.5, DurationSeconds: 10, Ops: int64(rate * 10), OpsPerSecond: rate * 0.99,
				Latency: Latency{P50: s.p99[i] / 2, P99: s.p99[i]}, OpenLoop: &OpenLoop{TargetRate: rate}}
			if s.p99[i] == 0 {
				r.Ops, r.OpsPerSecond = 0, 0
			}
			rs = append(rs, r)
		}
	}
	return rs
}

func TestWriteChart(t *testing.T) {
	var b bytes.Buffer
	if err := WriteChart(&b, chartRuns()); err != nil {
		t.Fatal(err)
	}
	els := parseSVG(t, b.Bytes())

	// One polyline per setting, through its runs that answered.
	var lines [][]string
	var titles []string
	for _, e := range els {
		if e.name == "polyline" {
			lines = append(lines, strings.Fields(e.attrs["points"]))
		}
		if e.name == "title" && e.parent == "polyline" {
			titles = append(titles, e.text)
		}
	}
	want := []string{"raft N=3", "paxos N=3", "eventual N=3 W=1 R=1"}
	if len(lines) != 3 || !slices.Equal(titles, want) {
		t.Fatalf("polylines %v titled %q; want one per setting, %q", lines, titles, want)
	}
	if len(lines[0]) != 3 || len(lines[1]) != 3 || len(lines[2]) != 2 {
		t.Errorf("points per line %d, %d, %d; want 3, 3 and 2 (the run that answered nothing left out)", len(lines[0]), len(lines[1]), len(lines[2]))
	}
	// Higher throughput is further right; higher p99 is higher up (a
	// smaller y); everything within the plot area.
	xy := func(p string) (float64, float64) {
		xs, ys, _ := strings.Cut(p, ",")
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if err1 != nil || err2 != nil || x < plotLeft || x > plotRight || y < plotTop || y > plotBottom {
			t.Errorf("point %q outside the plot area", p)
		}
		return x, y
	}
	for _, l := range lines {
		for i := 1; i < len(l); i++ {
			x0, y0 := xy(l[i-1])
			x1, y1 := xy(l[i])
			if x1 <= x0 || y1 >= y0 {
				t.Errorf("line %v: %s then %s, want right and up", l, l[i-1], l[i])
			}
		}
	}
	// Axis titles with units, the decades of the log scale, the ticks of
	// the throughput, and what the runs did.
	var texts []string
	for _, e := range els {
		if e.name == "text" {
			texts = append(texts, e.text)
		}
	}
	for _, w := range []string{"throughput (answered requests/s)", "p99 latency from the due time (ms, log scale)",
		"0.1", "1", "10", "100", "1000", "0", "2000", "4000",
		"open loop at 1000, 2000, 4000 ops/s, up to 16 in flight; 1000 keys, 50% reads, 256 B values, 10s a run"} {
		if !slices.Contains(texts, w) {
			t.Errorf("chart has no text %q: %q", w, texts)
		}
	}
	if slices.Contains(texts, "20") || slices.Contains(texts, "500") {
		t.Errorf("a four-decade axis labels its 2s and 5s too: %q", texts)
	}
	// A legend entry per setting, in order, and a tooltip per point.
	var legend, tips []string
	for _, e := range els {
		if e.name == "text" && e.parentClass == "legend" {
			legend = append(legend, e.text)
		}
		if e.name == "title" && e.parent == "circle" {
			tips = append(tips, e.text)
		}
	}
	if !slices.Equal(legend, want) {
		t.Errorf("legend %q, want %q", legend, want)
	}
	if len(tips) != 8 || tips[2] != "raft N=3 at 4000 ops/s: 3960 ops/s, p99 250.00 ms" {
		t.Errorf("tooltips %q", tips)
	}
}

// Two keyspaces of one mode are told apart by name; text is escaped; a
// closed-loop run's latency is not said to count from a due time.
func TestWriteChartLabels(t *testing.T) {
	rs := []Result{
		{Keyspace: "a<b", Mode: ModeRaft, N: 3, Ops: 10, OpsPerSecond: 1, Latency: Latency{P99: 1}, Clients: 4, DurationSeconds: 1},
		{Keyspace: "c&d", Mode: ModeRaft, N: 3, Ops: 10, OpsPerSecond: 2, Latency: Latency{P99: 1}},
	}
	var b bytes.Buffer
	if err := WriteChart(&b, rs); err != nil {
		t.Fatal(err)
	}
	var legend, texts []string
	for _, e := range parseSVG(t, b.Bytes()) {
		if e.name == "text" && e.parentClass == "legend" {
			legend = append(legend, e.text)
		}
		if e.name == "text" {
			texts = append(texts, e.text)
		}
	}
	if want := []string{"raft N=3 (a<b)", "raft N=3 (c&d)"}; !slices.Equal(legend, want) {
		t.Errorf("legend %q, want %q", legend, want)
	}
	// Equal p99s: the axis still spans a decade, labelled at 1, 2 and 5.
	for _, w := range []string{"p99 latency (ms, log scale)", "1", "2", "5", "10", "closed loop, 4 clients; 0 keys, 0% reads, 0 B values, 1s a run"} {
		if !slices.Contains(texts, w) {
			t.Errorf("chart has no text %q: %q", w, texts)
		}
	}
	if err := WriteChart(io.Discard, []Result{{Mode: ModeRaft}}); err == nil {
		t.Error("a chart of runs that answered nothing was drawn")
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ raw, want float64 }{
		{0.3, 0.5}, {1, 1}, {1.1, 2}, {840, 1000}, {2100, 5000}, {4200, 5000}, {5001, 10000},
	} {
		if got := niceStep(tc.raw); got != tc.want {
			t.Errorf("niceStep(%g) = %g, want %g", tc.raw, got, tc.want)
		}
	}
}
