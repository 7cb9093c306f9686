package lab

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// The picture's geometry, in SVG user units (pixels).
const (
	svgWidth      = 1100
	svgLeft       = 70  // room for lane names
	svgRight      = 30  // room after the last tick
	svgTop        = 70  // title and verdict
	svgLane       = 34  // distance between lanes
	svgBottom     = 110 // time axis and legend
	svgMaxArrows  = 400 // beyond this the arrows are a grey wash; the count says how many were left out
	svgLabelChars = 18
)

// Colours: one per kind of mark, chosen to read on white and in grey.
const (
	colMessage = "#7f8c99"
	colLost    = "#c0392b"
	colSold    = "#1e8449"
	colRefused = "#5d6d7e"
	colNoAns   = "#d68910"
	colCrash   = "#c0392b"
	colRestart = "#1e8449"
	colPause   = "#7d3c98"
	colCut     = "#f5cba7"
	colBroke   = "#c0392b"
)

// SVG draws r's timeline: one horizontal lane per node and buyer, time
// running left to right, each message an arrow from its sender's lane
// at the moment it was sent to its receiver's lane at the moment it
// arrived (a lost message ends in a cross), faults as marks on their
// lane or shaded bands across all lanes, buyers' answers as dots, and
// the moment the design broke as a red line. It uses nothing but SVG 1.1,
// so a browser or any image viewer shows it.
func SVG(w io.Writer, r *Result) error {
	tl := r.Timeline
	lanes := map[string]int{}
	for i, l := range tl.Lanes {
		lanes[l] = i
	}
	height := svgTop + svgLane*max(1, len(tl.Lanes)) + svgBottom
	end := drawnEnd(tl)
	x := func(t time.Duration) float64 {
		return svgLeft + float64(t)/float64(end)*float64(svgWidth-svgLeft-svgRight)
	}
	y := func(lane string) float64 { return float64(svgTop + svgLane*lanes[lane] + svgLane/2) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">%s  %s</text>`+"\n", esc(r.Label()), esc(r.Title))
	verdictColour := colSold
	if r.Verdict != Correct {
		verdictColour = colBroke
	}
	fmt.Fprintf(&b, `<text x="10" y="44" fill="%s" font-weight="bold">%s</text>`, verdictColour, esc(strings.ToUpper(string(r.Verdict))))
	// Bold capitals are at most about 9 units wide at this size.
	fmt.Fprintf(&b, `<text x="%d" y="44">told sold: %d%s · double sales: %d · lost: %d · unavailable: %s · %s</text>`+"\n",
		10+9*len(r.Verdict)+16, len(r.ToldSold), esc(names(r.ToldSold)), r.DoubleSales, r.LostSales, seconds(r.Unavailable), esc(seedText(r)))

	// Bands first, so everything else is drawn over them: a network fault
	// shades every lane from its cut to its heal.
	var cutAt []time.Duration
	for _, ev := range tl.Events {
		switch ev.Kind {
		case Cut:
			cutAt = append(cutAt, ev.At)
		case Heal:
			for _, from := range cutAt {
				band(&b, x(from), x(ev.At), height, ev.Label)
			}
			cutAt = nil
		}
	}
	for _, from := range cutAt {
		band(&b, x(from), x(end), height, "")
	}

	// Lanes.
	for i, l := range tl.Lanes {
		ly := svgTop + svgLane*i + svgLane/2
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d5d8dc"/>`, svgLeft, ly, svgWidth-svgRight, ly)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", svgLeft-8, ly, esc(l))
	}

	// Messages.
	drawn, skipped := 0, 0
	for _, ev := range tl.Events {
		if ev.Kind != Message {
			continue
		}
		if _, ok := lanes[ev.Lane]; !ok {
			continue
		}
		if _, ok := lanes[ev.To]; !ok {
			continue
		}
		if drawn >= svgMaxArrows {
			skipped++
			continue
		}
		drawn++
		x1, y1 := x(ev.At), y(ev.Lane)
		if ev.Arrive == 0 {
			// Lost: a short dashed stub towards the receiver, ending in a cross.
			x2, y2 := x1+6, y1+(y(ev.To)-y1)*0.4
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="3,2"><title>%s (lost)</title></line>`, x1, y1, x2, y2, colLost, esc(ev.Label))
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl4 4m0 -4l-4 4" stroke="%s"/>`+"\n", x2-2, y2-2, colLost)
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-opacity="0.7"><title>%s</title></line>`+"\n",
			x1, y1, x(ev.Arrive), y(ev.To), colMessage, esc(ev.Label))
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.8" fill="%s"/>`, x(ev.Arrive), y(ev.To), colMessage)
	}

	// Marks.
	for _, ev := range tl.Events {
		if ev.Kind == Message || ev.Kind == Cut || ev.Kind == Heal {
			continue
		}
		if ev.Kind == Broke {
			bx := x(ev.At)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>`, bx, svgTop-8, bx, height-svgBottom+4, colBroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" font-weight="bold" text-anchor="%s">%s</text>`+"\n",
				bx, svgTop-12, colBroke, anchor(bx), esc(ev.Label))
			continue
		}
		if _, ok := lanes[ev.Lane]; !ok {
			continue
		}
		mx, my := x(ev.At), y(ev.Lane)
		title := fmt.Sprintf("%s at %s: %s", ev.Lane, ms(ev.At), ev.Label)
		switch ev.Kind {
		case Sold:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="6" fill="%s"><title>%s</title></circle>`, mx, my, colSold, esc(title))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s" font-weight="bold">%s</text>`+"\n", mx+8, my-6, colSold, esc(short(cmp.Or(ev.Label, "sold"))))
		case Refused:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="white" stroke="%s" stroke-width="2"><title>%s</title></circle>`+"\n", mx, my, colRefused, esc(title))
		case NoAnswer:
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="7" height="7" fill="%s"><title>%s</title></rect>`+"\n", mx-3.5, my-3.5, colNoAns, esc(title))
		case Crash:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl10 10m0 -10l-10 10" stroke="%s" stroke-width="3"><title>%s</title></path>`, mx-5, my-5, colCrash, esc(title))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", mx+7, my-7, colCrash, esc(short(ev.Label)))
		case Restart:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl10 6l-10 6z" fill="%s"><title>%s</title></path>`+"\n", mx, my-6, colRestart, esc(title))
		case Pause, Resume:
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="4" height="14" fill="%s"><title>%s</title></rect>`+"\n", mx-2, my-7, colPause, esc(title))
		default:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="black"><title>%s</title></circle>`, mx, my, esc(title))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="%s">%s</text>`+"\n", mx+5, my+12, anchor(mx), esc(short(ev.Label)))
		}
	}

	// Time axis.
	axisY := svgTop + svgLane*len(tl.Lanes) + 10
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", svgLeft, axisY, svgWidth-svgRight, axisY)
	step := tickStep(end)
	for t := time.Duration(0); t <= end; t += step {
		tx := x(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>`, tx, axisY, tx, axisY+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`+"\n", tx, axisY+17, ms(t))
	}
	legend(&b, axisY+40, r.Where == "cluster", drawn, skipped)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// drawnEnd is where the picture's time axis ends: a little after the last
// thing drawn, so that a run whose sale is over in 40ms and that then
// settles quietly for 400ms is not squeezed into its first tenth.
func drawnEnd(tl Timeline) time.Duration {
	var last time.Duration
	for _, ev := range tl.Events {
		last = max(last, ev.At, ev.Arrive)
	}
	end := min(tl.End, last+last/20+time.Millisecond)
	if end <= 0 {
		end = max(tl.End, time.Millisecond)
	}
	return end
}

func band(b *strings.Builder, x1, x2 float64, height int, label string) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.45"><title>%s</title></rect>`+"\n",
		x1, svgTop-4, max(1, x2-x1), height-svgTop-svgBottom+8, colCut, esc(label))
}

func legend(b *strings.Builder, ly int, cluster bool, drawn, skipped int) {
	items := []struct{ colour, text string }{
		{colMessage, "message"}, {colLost, "lost message"}, {colSold, "told \"sold\""},
		{colRefused, "told \"sold out\""}, {colNoAns, "no answer"}, {colCrash, "crash"},
		{colRestart, "restart"}, {colPause, "pause/resume"}, {colCut, "network cut"}, {colBroke, "where it broke"},
	}
	lx := 10
	for _, it := range items {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			lx, ly-9, it.colour, lx+14, ly, esc(it.text))
		lx += 14 + 7*len(it.text) + 14
	}
	note := fmt.Sprintf("%d message arrows", drawn)
	if skipped > 0 {
		note += fmt.Sprintf(" (%d more not drawn)", skipped)
	}
	if cluster {
		note = "a cluster's messages are not observable from outside: only the buyers' answers and the faults are drawn"
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="11" fill="#5d6d7e">%s</text>`+"\n", ly+22, esc(note))
}

// tickStep picks a round step that puts 5-12 ticks on the axis.
func tickStep(end time.Duration) time.Duration {
	for _, s := range []time.Duration{
		time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
		10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
	} {
		if end/s <= 12 {
			return s
		}
	}
	return end / 10
}

func anchor(x float64) string {
	switch {
	case x > svgWidth-200:
		return "end"
	case x < svgLeft+100:
		return "start"
	default:
		return "middle"
	}
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.0fs", d.Seconds())
	}
	if d >= time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

func short(s string) string {
	r := []rune(s)
	if len(r) <= svgLabelChars {
		return s
	}
	return string(r[:svgLabelChars-1]) + "…"
}

func esc(s string) string { return html.EscapeString(s) }
