package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/bench"
)

// progressLine shows a bench run's progress on one line of a terminal's
// stderr, redrawn in place, and erases it before anything else is
// written there (clear), so that it leaves nothing behind. A nil
// *progressLine shows nothing.
type progressLine struct {
	w  io.Writer
	mu struct {
		sync.Mutex
		shown bool // a line is drawn and not yet erased
	}
}

// newProgressLine returns a progress line if kvctl talks to a person:
// stdout and stderr are terminals and the output is not JSON. Otherwise
// (piped, redirected, -o json) nil, and the output holds no trace of it.
func newProgressLine(c *cli.Context, out format) *progressLine {
	if out == formatJSON || !isTerminal(c.App.Writer) || !isTerminal(c.App.ErrWriter) {
		return nil
	}
	return &progressLine{w: c.App.ErrWriter}
}

// Terminal controls: back to the start of the line; erase to its end.
const (
	carriageReturn = "\r"
	eraseToEnd     = "\x1b[K"
)

// show draws p over the line drawn last. bench calls it from a goroutine
// of its run.
func (l *progressLine) show(p bench.Progress) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprint(l.w, carriageReturn+progressText(p)+eraseToEnd)
	l.mu.shown = true
}

// clear erases the line, if one is drawn.
func (l *progressLine) clear() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.shown {
		fmt.Fprint(l.w, carriageReturn+eraseToEnd)
		l.mu.shown = false
	}
}

// progressText is the line for p, short enough for an 80-column terminal:
// a line that wraps cannot be redrawn in place.
func progressText(p bench.Progress) string {
	if p.Phase == bench.PhasePrefill {
		return fmt.Sprintf("kvctl bench: prefill, %d of %d keys written", p.Done, p.Total)
	}
	left := fmt.Sprintf("%.1fs left", p.Remaining.Seconds())
	if p.Remaining == 0 {
		left = "finishing"
	}
	ops := fmt.Sprint(p.Done)
	if p.Total > 0 {
		ops = fmt.Sprintf("%d/%d", p.Done, p.Total)
	}
	return fmt.Sprintf("kvctl bench: %.1fs, %s: %s ops, %.0f ops/s, %d errors",
		p.Elapsed.Seconds(), left, ops, p.OpsPerSecond, p.Errors)
}
