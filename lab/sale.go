package lab

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Sale is one flash sale in the simulator: the bookkeeping every design
// shares. A design builds its servers and buyers as sim processes, names
// their lanes, and reports each buyer's attempts (Begin, then Answer or
// NoAnswer); Finish turns that, the trace and the replicas' final owners
// into a Result.
type Sale struct {
	Sim *sim.Sim

	lanes    []string
	laneOf   map[sim.NodeID]string
	open     map[string]time.Duration // buyer -> start of its open attempt
	failed   [][2]time.Duration       // failed attempts, for Unavailable
	told     []string
	toldSet  map[string]bool
	rts      []int
	marks    []Event
	matters  func(msg any) bool
	labelOf  func(msg any) string
	maxArrow int
}

// BuyerNames returns n unique buyer names, short enough for a lane label.
func BuyerNames(n int) []string {
	base := []string{"ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lea"}
	names := make([]string, n)
	for i := range names {
		if i < len(base) {
			names[i] = base[i]
		} else {
			names[i] = fmt.Sprintf("b%d", i+1)
		}
	}
	return names
}

// NewSale starts a simulator from seed with every link configured as
// link, keeping the whole trace (runs are short).
func NewSale(seed uint64, link sim.LinkConfig) *Sale {
	return &Sale{
		Sim:      sim.New(sim.Config{Seed: seed, Link: link, TraceLimit: -1, MaxSteps: 2_000_000}),
		laneOf:   make(map[sim.NodeID]string),
		open:     make(map[string]time.Duration),
		toldSet:  make(map[string]bool),
		maxArrow: 400,
	}
}

// Lane names node id's lane in the picture; lanes are drawn in the order
// they are named (servers first, then buyers).
func (s *Sale) Lane(id sim.NodeID, name string) {
	s.laneOf[id] = name
	s.lanes = append(s.lanes, name)
}

// Matters chooses which messages the picture draws (default: all) and how
// each is labelled (default: its Go type's %v form, cut short).
func (s *Sale) Matters(keep func(msg any) bool, label func(msg any) string) {
	s.matters, s.labelOf = keep, label
}

// Begin records that buyer starts an attempt now.
func (s *Sale) Begin(buyer string) { s.open[buyer] = s.Sim.Now() }

// Answer records that buyer's attempt ended with an answer: sold, or sold
// out. roundTrips is how many sequential network round trips the attempt
// waited for, counted by the design as it ran.
func (s *Sale) Answer(buyer string, sold bool, roundTrips int) {
	delete(s.open, buyer)
	kind, label := Refused, "sold out"
	if sold {
		kind, label = Sold, "sold"
		if !s.toldSet[buyer] {
			s.toldSet[buyer] = true
			s.told = append(s.told, buyer)
			s.rts = append(s.rts, roundTrips)
		}
	}
	s.Mark(kind, buyer, label)
}

// NoAnswer records that buyer's attempt ended with no answer (an error or
// a timeout): the system was unavailable to it for the attempt's length.
func (s *Sale) NoAnswer(buyer, why string) {
	if start, ok := s.open[buyer]; ok {
		s.failed = append(s.failed, [2]time.Duration{start, s.Sim.Now()})
		delete(s.open, buyer)
	}
	s.Mark(NoAnswer, buyer, why)
}

// Paused and Resumed mark a node frozen (as by a long GC pause or
// SIGSTOP) and thawed; internal/replsim reports its pauses through them.
func (s *Sale) Paused(node uint64)  { s.Mark(Pause, s.laneOf[sim.NodeID(node)], "paused") }
func (s *Sale) Resumed(node uint64) { s.Mark(Resume, s.laneOf[sim.NodeID(node)], "resumed") }

// Told reports whether buyer has been told "sold".
func (s *Sale) Told(buyer string) bool { return s.toldSet[buyer] }

// Mark puts an event on the timeline now.
func (s *Sale) Mark(kind EventKind, lane, label string) {
	s.marks = append(s.marks, Event{At: s.Sim.Now(), Kind: kind, Lane: lane, Label: label})
}

// Broke marks the moment the design broke.
func (s *Sale) Broke(lane, how string) { s.Mark(Broke, lane, how) }

// Final is what the replicas say at the end of a run, after the faults
// healed.
type Final struct {
	// Owners is each replica's owner ("" for none), for PhonesSold and
	// divergence; replicas lost for good are left out.
	Owners []string
	// Owner is what a final read through the design returned.
	Owner string
	// StopAfter is the unavailability that counts as a stop (0: any).
	StopAfter time.Duration
}

// Finish completes res (whose Scenario, Number, Title, Design, Fault and
// Buyers the design filled in) from the sale's records and f, judges it,
// and adds the counting line to its story.
func (s *Sale) Finish(res *Result, f Final) *Result {
	res.Where = "sim"
	res.Seed = s.Sim.Seed()
	res.Duration = s.Sim.Now()
	res.ToldSold = append([]string{}, s.told...) // [] in JSON when nobody was
	res.Owner = f.Owner
	owners := map[string]bool{}
	for _, o := range f.Owners {
		if o != "" {
			owners[o] = true
		}
	}
	res.PhonesSold = len(owners)
	res.LostSales = 0
	for _, b := range res.ToldSold {
		if b != f.Owner {
			res.LostSales++
		}
	}
	res.Unavailable = Union(s.failed)
	if len(s.rts) > 0 {
		sum := 0
		for _, n := range s.rts {
			sum += n
		}
		res.RoundTrips = float64(sum) / float64(len(s.rts))
	}
	if len(s.told) > 1 && !slices.ContainsFunc(s.marks, func(e Event) bool { return e.Kind == Broke }) {
		// The design did not say where it broke; a second "sold" is
		// where it did, whatever led to it.
		for _, e := range s.marks {
			if e.Kind == Sold && e.Lane == s.told[1] {
				s.marks = append(s.marks, Event{At: e.At, Kind: Broke, Lane: e.Lane, Label: "sold again: " + e.Lane})
				break
			}
		}
	}
	res.Messages, res.Timeline = s.timeline()
	res.Judge(len(owners) > 1, f.StopAfter)
	return res
}

// Union is the total length of a set of intervals [from, to): the time
// during which at least one of them was open.
func Union(iv [][2]time.Duration) time.Duration {
	iv = slices.Clone(iv)
	sort.Slice(iv, func(i, j int) bool { return iv[i][0] < iv[j][0] })
	var total, start, end time.Duration
	for i, x := range iv {
		switch {
		case i == 0:
			start, end = x[0], x[1]
		case x[0] > end:
			total += end - start
			start, end = x[0], x[1]
		default:
			end = max(end, x[1])
		}
	}
	if len(iv) > 0 {
		total += end - start
	}
	return total
}

// timeline counts the messages sent and builds the picture's events from
// the trace and the marks.
func (s *Sale) timeline() (int, Timeline) {
	tl := Timeline{Lanes: slices.Clone(s.lanes), End: s.Sim.Now()}
	type key struct {
		from, to sim.NodeID
		msg      string
	}
	sent := 0
	pending := map[key][]int{} // unmatched sends -> index in tl.Events
	arrows := 0
	for _, ev := range s.Sim.Trace().Events() {
		switch ev.Kind {
		case sim.EvSend:
			sent++
			if arrows >= s.maxArrow || (s.matters != nil && !s.matters(ev.Msg)) {
				continue
			}
			from, ok1 := s.laneOf[ev.From]
			to, ok2 := s.laneOf[ev.To]
			if !ok1 || !ok2 {
				continue
			}
			arrows++
			k := key{ev.From, ev.To, fmt.Sprintf("%v", ev.Msg)}
			pending[k] = append(pending[k], len(tl.Events))
			tl.Events = append(tl.Events, Event{At: ev.At, Kind: Message, Lane: from, To: to, Label: s.label(ev.Msg)})
		case sim.EvDeliver:
			k := key{ev.From, ev.To, fmt.Sprintf("%v", ev.Msg)}
			if q := pending[k]; len(q) > 0 {
				tl.Events[q[0]].Arrive = ev.At
				pending[k] = q[1:]
			}
		case sim.EvCrash:
			if l, ok := s.laneOf[ev.From]; ok {
				tl.Events = append(tl.Events, Event{At: ev.At, Kind: Crash, Lane: l, Label: "crash"})
			}
		case sim.EvRestart:
			if l, ok := s.laneOf[ev.From]; ok {
				tl.Events = append(tl.Events, Event{At: ev.At, Kind: Restart, Lane: l, Label: "restart"})
			}
		case sim.EvPartition:
			tl.Events = append(tl.Events, Event{At: ev.At, Kind: Cut, Label: ev.Text})
		case sim.EvHeal:
			tl.Events = append(tl.Events, Event{At: ev.At, Kind: Heal, Label: ev.Text})
		}
	}
	tl.Events = append(tl.Events, s.marks...)
	sort.SliceStable(tl.Events, func(i, j int) bool { return tl.Events[i].At < tl.Events[j].At })
	return sent, tl
}

func (s *Sale) label(msg any) string {
	if s.labelOf != nil {
		return s.labelOf(msg)
	}
	l := fmt.Sprintf("%T", msg)
	return l[strings.LastIndexByte(l, '.')+1:]
}
