package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WriteChart draws results as an SVG chart: the throughput of each run
// (answered requests per second, x) against its p99 latency over all
// requests (milliseconds, y, on a log scale, since latencies past
// saturation are orders of magnitude above those below it). Runs of one
// setting (keyspace, W and R) make one line, through the runs in the
// order given: with Sweep.Rates, from the lowest rate to the highest, so
// the line bends up (and back, if throughput falls) where the cluster
// saturates. A run with no answered request has no p99 and is left out.
//
// The SVG is written directly, one element per mark, so that it needs no
// plotting library and its parts can be checked as XML.
func WriteChart(w io.Writer, results []Result) error {
	series := chartSeries(results)
	if len(series) == 0 {
		return errors.New("bench: chart: no run answered a request, so none has a p99 to draw")
	}
	var b bytes.Buffer
	c := newChart(series)
	c.draw(&b, results)
	_, err := w.Write(b.Bytes())
	return err
}

// chartPoint is one run on the chart.
type chartPoint struct {
	opsPerSecond, p99 float64
	target            float64 // the open loop's rate; 0 in a closed loop
}

// series is one setting's runs.
type series struct {
	label    string
	keyspace string
	points   []chartPoint
}

// chartSeries groups the runs by setting, in the order each first
// appears.
func chartSeries(results []Result) []series {
	var out []series
	index := map[string]int{}
	for _, r := range results {
		if r.Ops == 0 || r.Latency.P99 <= 0 {
			continue
		}
		key := fmt.Sprintf("%s\x00%d\x00%d", r.Keyspace, r.W, r.R)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, series{label: r.setting(), keyspace: r.Keyspace})
		}
		p := chartPoint{opsPerSecond: r.OpsPerSecond, p99: r.Latency.P99}
		if r.OpenLoop != nil {
			p.target = r.OpenLoop.TargetRate
		}
		out[i].points = append(out[i].points, p)
	}
	// Two keyspaces of one mode and N would share a label: name them.
	labels := map[string]int{}
	for _, s := range out {
		labels[s.label]++
	}
	for i := range out {
		if labels[out[i].label] > 1 {
			out[i].label += " (" + out[i].keyspace + ")"
		}
	}
	return out
}

// setting names the result's keyspace setting: "raft N=3", "eventual N=3
// W=1 R=1".
func (r Result) setting() string {
	s := fmt.Sprintf("%s N=%d", r.Mode, r.N)
	if r.W != 0 || r.R != 0 {
		s += fmt.Sprintf(" W=%d R=%d", r.W, r.R)
	}
	return s
}

// The chart's geometry, in SVG user units (pixels).
const (
	chartWidth, chartHeight = 860, 500
	plotLeft, plotRight     = 80, 600 // the plot area; the legend is to its right
	plotTop, plotBottom     = 70, 430
	legendLeft              = 625
)

// palette: the Okabe-Ito colours, told apart by colour-blind readers too
// (its yellow left out, too faint on white).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"}

// chart maps data to the plot area: x linear from 0, y log10.
type chart struct {
	series         []series
	xMax, xStep    float64
	yLoExp, yHiExp int // the y axis spans 10^yLoExp to 10^yHiExp ms
}

func newChart(ss []series) *chart {
	c := &chart{series: ss}
	xMax, yMin, yMax := 0.0, math.Inf(1), 0.0
	for _, s := range ss {
		for _, p := range s.points {
			xMax = max(xMax, p.opsPerSecond)
			yMin, yMax = min(yMin, p.p99), max(yMax, p.p99)
		}
	}
	c.xStep = niceStep(max(xMax, 1) * 1.05 / 5)
	c.xMax = math.Ceil(max(xMax, 1)*1.05/c.xStep) * c.xStep
	c.yLoExp = int(math.Floor(math.Log10(yMin)))
	c.yHiExp = int(math.Ceil(math.Log10(yMax)))
	if c.yHiExp <= c.yLoExp {
		c.yHiExp = c.yLoExp + 1
	}
	return c
}

// niceStep is the 1, 2 or 5 times a power of ten nearest above raw.
func niceStep(raw float64) float64 {
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func (c *chart) x(v float64) float64 {
	return plotLeft + v/c.xMax*(plotRight-plotLeft)
}

func (c *chart) y(ms float64) float64 {
	f := (math.Log10(ms) - float64(c.yLoExp)) / float64(c.yHiExp-c.yLoExp)
	return plotBottom - f*(plotBottom-plotTop)
}

// num formats a number for a label: no exponent, no trailing zeros.
func num(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

func (c *chart) draw(b *bytes.Buffer, results []Result) {
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
<rect width="%d" height="%d" fill="white"/>
`, chartWidth, chartHeight, chartWidth, chartHeight, chartWidth, chartHeight)
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="16" font-weight="bold">kvctl bench: throughput vs p99 latency</text>
<text x="%d" y="44" fill="#444">%s</text>
`, plotLeft, plotLeft, esc(subtitle(results)))
	c.drawAxes(b, results)
	for i, s := range c.series {
		c.drawSeries(b, s, palette[i%len(palette)])
	}
	c.drawLegend(b)
	b.WriteString("</svg>\n")
}

// subtitle: how the runs loaded their keyspaces.
func subtitle(results []Result) string {
	r := results[0]
	var rates []string
	for _, x := range results {
		if x.OpenLoop != nil {
			if s := num(x.OpenLoop.TargetRate); !slices.Contains(rates, s) {
				rates = append(rates, s)
			}
		}
	}
	loop := fmt.Sprintf("closed loop, %d clients", r.Clients)
	if len(rates) > 0 {
		loop = fmt.Sprintf("open loop at %s ops/s, up to %d in flight", strings.Join(rates, ", "), r.Clients)
	}
	return fmt.Sprintf("%s; %d keys, %.0f%% reads, %d B values, %ss a run", loop, r.Keys, 100*r.ReadFraction, r.ValueSize, num(r.DurationSeconds))
}

func (c *chart) drawAxes(b *bytes.Buffer, results []Result) {
	b.WriteString(`<g stroke="#ddd" stroke-width="1">` + "\n")
	for v := c.xStep; v <= c.xMax+c.xStep/2; v += c.xStep {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", c.x(v), plotTop, c.x(v), plotBottom)
	}
	for e := c.yLoExp; e < c.yHiExp; e++ {
		for _, m := range []float64{2, 5, 10} {
			dash := ` stroke-dasharray="2,3"`
			if m == 10 {
				dash = ""
			}
			y := c.y(m * math.Pow(10, float64(e)))
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"%s/>`+"\n", plotLeft, y, plotRight, y, dash)
		}
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<g stroke="black" stroke-width="1"><line x1="%d" y1="%d" x2="%d" y2="%d"/><line x1="%d" y1="%d" x2="%d" y2="%d"/></g>`+"\n",
		plotLeft, plotBottom, plotRight, plotBottom, plotLeft, plotTop, plotLeft, plotBottom)
	b.WriteString(`<g text-anchor="middle">` + "\n")
	for v := 0.0; v <= c.xMax+c.xStep/2; v += c.xStep {
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", c.x(v), plotBottom+18, num(v))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">throughput (answered requests/s)</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+45)
	b.WriteString("</g>\n")
	b.WriteString(`<g text-anchor="end">` + "\n")
	for _, v := range c.yLabels() {
		fmt.Fprintf(b, `<text x="%d" y="%.1f">%s</text>`+"\n", plotLeft-6, c.y(v)+4, num(v))
	}
	b.WriteString("</g>\n")
	label := "p99 latency (ms, log scale)"
	if !slices.ContainsFunc(results, func(r Result) bool { return r.OpenLoop == nil }) {
		label = "p99 latency from the due time (ms, log scale)"
	}
	fmt.Fprintf(b, `<text x="20" y="%d" text-anchor="middle" transform="rotate(-90 20 %d)">%s</text>`+"\n",
		(plotTop+plotBottom)/2, (plotTop+plotBottom)/2, esc(label))
}

// yLabels are the latencies labelled on the y axis: every power of ten,
// and 2 and 5 times each too when the axis spans two decades or fewer,
// which would otherwise leave it two or three labels.
func (c *chart) yLabels() []float64 {
	var vs []float64
	for e := c.yLoExp; e <= c.yHiExp; e++ {
		p := math.Pow(10, float64(e))
		vs = append(vs, p)
		if e < c.yHiExp && c.yHiExp-c.yLoExp <= 2 {
			vs = append(vs, 2*p, 5*p)
		}
	}
	return vs
}

func (c *chart) drawSeries(b *bytes.Buffer, s series, colour string) {
	var pts []string
	for _, p := range s.points {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(p.opsPerSecond), c.y(p.p99)))
	}
	fmt.Fprintf(b, `<g class="series" fill="%s" stroke="%s">`+"\n", colour, colour)
	fmt.Fprintf(b, `<polyline fill="none" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n", strings.Join(pts, " "), esc(s.label))
	for _, p := range s.points {
		what := fmt.Sprintf("%s: %.0f ops/s, p99 %.2f ms", s.label, p.opsPerSecond, p.p99)
		if p.target > 0 {
			what = fmt.Sprintf("%s at %s ops/s: %.0f ops/s, p99 %.2f ms", s.label, num(p.target), p.opsPerSecond, p.p99)
		}
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5"><title>%s</title></circle>`+"\n", c.x(p.opsPerSecond), c.y(p.p99), esc(what))
	}
	b.WriteString("</g>\n")
}

func (c *chart) drawLegend(b *bytes.Buffer) {
	b.WriteString(`<g class="legend">` + "\n")
	for i, s := range c.series {
		colour := palette[i%len(palette)]
		y := plotTop + 10 + 22*i
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><circle cx="%d" cy="%d" r="3.5" fill="%s"/>`,
			legendLeft, y, legendLeft+24, y, colour, legendLeft+12, y, colour)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", legendLeft+32, y+4, esc(s.label))
	}
	b.WriteString("</g>\n")
}
