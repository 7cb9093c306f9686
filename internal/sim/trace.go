package sim

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// EventKind says what a TraceEvent records.
type EventKind uint8

// Trace event kinds.
const (
	EvSend      EventKind = iota + 1 // From sent Msg to To
	EvDeliver                        // Msg from From was delivered to To
	EvDrop                           // Msg from From to To was lost; Text says why
	EvDuplicate                      // the network will deliver Msg a second time
	EvTimer                          // a timer of node From fired
	EvCrash                          // node From crashed
	EvRestart                        // node From restarted
	EvPartition                      // a partition (Text) took effect
	EvHeal                           // a partition (Text) or every fault ended
	EvLink                           // a link's configuration changed
	EvNemesis                        // the nemesis chose a fault (Text)
	EvCall                           // client From invoked an operation (Text)
	EvReturn                         // client From's operation returned (Text)
	EvNote                           // free text from the test (Sim.Tracef)
)

var kindNames = [...]string{
	EvSend: "send", EvDeliver: "deliver", EvDrop: "drop", EvDuplicate: "dup",
	EvTimer: "timer", EvCrash: "crash", EvRestart: "restart",
	EvPartition: "partition", EvHeal: "heal", EvLink: "link", EvNemesis: "nemesis",
	EvCall: "call", EvReturn: "return", EvNote: "note",
}

func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// TraceEvent is one line of the trace. Messages are kept as values and
// formatted only when the trace is printed, because formatting every message
// of every run would cost more than the simulation itself. So a message must
// not be changed after it is sent (the network may also deliver it twice),
// and its %v form must not contain pointers, or two runs of one seed print
// different traces.
type TraceEvent struct {
	Step uint64        // Sim.Steps() when the event was recorded
	At   time.Duration // virtual time
	Kind EventKind
	From NodeID // sender, or the node a crash/restart/timer/call is about
	To   NodeID // receiver, for message events
	Msg  any    // the message, for message events
	Text string // reason, partition shape, operation, note
}

func (e TraceEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%14s #%-7d %-9s", e.At, e.Step, e.Kind)
	switch e.Kind {
	case EvSend, EvDeliver, EvDrop, EvDuplicate:
		fmt.Fprintf(&b, " n%d->n%d %v", e.From, e.To, e.Msg)
		if e.Text != "" {
			fmt.Fprintf(&b, " (%s)", e.Text)
		}
	case EvTimer, EvCrash, EvRestart, EvCall, EvReturn:
		fmt.Fprintf(&b, " n%d", e.From)
		if e.Text != "" {
			fmt.Fprintf(&b, " %s", e.Text)
		}
	default:
		if e.Text != "" {
			fmt.Fprintf(&b, " %s", e.Text)
		}
	}
	return b.String()
}

// Trace is the in-memory record of a run: a ring buffer of the most recent
// events (or every event when unbounded).
type Trace struct {
	limit   int // <0: unbounded
	events  []TraceEvent
	start   int    // index of the oldest event once the ring is full
	evicted uint64 // events overwritten
}

func newTrace(limit int) *Trace {
	if limit == 0 {
		limit = DefaultTraceLimit
	}
	return &Trace{limit: limit}
}

func (t *Trace) add(e TraceEvent) {
	// The ring grows by append up to its limit, so short runs never pay for
	// a full-size buffer.
	if t.limit < 0 || len(t.events) < t.limit {
		t.events = append(t.events, e)
		return
	}
	t.events[t.start] = e
	t.start = (t.start + 1) % len(t.events)
	t.evicted++
}

func (s *Sim) record(e TraceEvent) {
	e.Step = s.steps
	e.At = s.now
	s.trace.add(e)
}

// Len returns the number of events kept.
func (t *Trace) Len() int { return len(t.events) }

// Evicted returns how many old events the ring has overwritten.
func (t *Trace) Evicted() uint64 { return t.evicted }

// Events returns a copy of the kept events, oldest first.
func (t *Trace) Events() []TraceEvent {
	out := make([]TraceEvent, 0, len(t.events))
	out = append(out, t.events[t.start:]...)
	return append(out, t.events[:t.start]...)
}

// WriteTo writes the kept events, one per line.
func (t *Trace) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if t.evicted > 0 {
		k, err := fmt.Fprintf(w, "... %d earlier events evicted (raise Config.TraceLimit)\n", t.evicted)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	for _, e := range t.Events() {
		k, err := io.WriteString(w, e.String()+"\n")
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// String returns the whole kept trace. Two runs of one seed give equal
// strings.
func (t *Trace) String() string {
	var b strings.Builder
	t.WriteTo(&b) //nolint:errcheck // strings.Builder never fails
	return b.String()
}

// Tail returns the last n events, one per line.
func (t *Trace) Tail(n int) string {
	events := t.Events()
	if n < len(events) {
		events = events[len(events)-n:]
	}
	var b strings.Builder
	for _, e := range events {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
