package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// Errors returned by the Run methods.
var (
	// ErrStepLimit means the simulation executed Config.MaxSteps events. It
	// usually points at a livelock: a timer that re-arms itself with zero
	// delay, or two nodes that answer each other forever.
	ErrStepLimit = errors.New("sim: step limit reached")
	// ErrDeadline means RunUntil reached its virtual deadline before its
	// condition held.
	ErrDeadline = errors.New("sim: virtual deadline passed before the condition held")
)

// Config configures a Sim. The zero value is usable: seed 0, default limits,
// instant lossless links.
type Config struct {
	// Seed is the only source of randomness. Two sims built from equal
	// Configs and driven by the same test code produce identical traces.
	Seed uint64
	// MaxSteps bounds the number of events one Sim executes over its whole
	// life. Too low stops long runs early with ErrStepLimit; too high lets
	// a livelocked protocol spin for minutes before the test fails.
	// 0 means DefaultMaxSteps.
	MaxSteps uint64
	// TraceLimit is how many trace events are kept (the most recent ones).
	// Each costs about 100 bytes plus whatever its message keeps alive.
	// 0 means DefaultTraceLimit; a negative value keeps everything, for
	// short runs whose whole trace is compared or read.
	TraceLimit int
	// Link is the configuration of every link without an override. The zero
	// LinkConfig delivers every message, in order, after no delay; most
	// tests want DefaultLink() or their own delays and faults.
	Link LinkConfig
}

// Defaults, with the reason for each.
const (
	// DefaultMaxSteps: a few seconds of virtual time for a 5-node Raft
	// cluster with clients is ~10^5 events; 10^7 leaves two orders of
	// magnitude for long runs while still stopping a livelock in seconds of
	// wall time.
	DefaultMaxSteps = 10_000_000
	// DefaultTraceLimit: enough to see the last few hundred milliseconds of
	// virtual time of a small cluster, small enough that hundreds of seeds
	// in one test binary do not hold gigabytes.
	DefaultTraceLimit = 100_000
)

// DefaultLink returns a reasonable datacenter-like link for protocol tests:
// 1–10 ms delay (so messages reorder), no loss. Tests add faults explicitly.
// (A function, not a variable, so no test can change it for the others.)
func DefaultLink() LinkConfig {
	return LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
}

// Sim is a deterministic discrete-event simulator: a virtual clock, an event
// queue, a network and a set of nodes, all driven from the calling goroutine.
// A Sim is not safe for concurrent use; nothing in it starts a goroutine.
type Sim struct {
	seed     uint64
	rng      *rand.Rand
	now      time.Duration
	seq      uint64 // scheduling order, breaks ties between equal times
	steps    uint64 // events executed
	maxSteps uint64
	queue    eventQueue

	net     *Network
	nodes   map[NodeID]*node
	order   []NodeID // registration order sorted by ID; iteration must never depend on map order
	trace   *Trace
	nemeses []*Nemesis

	invariants []invariant
	err        error // sticky: once an invariant fails the sim stays failed
	running    bool  // inside Step: a nested Run would reorder time
}

type invariant struct {
	name  string
	check func() error
}

// InvariantError reports a failed invariant with where it failed.
type InvariantError struct {
	Name string
	Step uint64
	At   time.Duration
	Err  error
}

func (e *InvariantError) Error() string {
	return fmt.Sprintf("sim: invariant %q violated at step %d, t=%v: %v", e.Name, e.Step, e.At, e.Err)
}

func (e *InvariantError) Unwrap() error { return e.Err }

// New returns a simulator at virtual time 0.
func New(cfg Config) *Sim {
	maxSteps := cfg.MaxSteps
	if maxSteps == 0 {
		maxSteps = DefaultMaxSteps
	}
	s := &Sim{
		seed: cfg.Seed,
		// PCG takes two words; the second is a fixed odd constant so that
		// seeds 0, 1, 2 ... give unrelated streams.
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		maxSteps: maxSteps,
		nodes:    make(map[NodeID]*node),
		trace:    newTrace(cfg.TraceLimit),
	}
	s.net = newNetwork(s, cfg.Link)
	return s
}

// Seed returns the seed the simulator was built with.
func (s *Sim) Seed() uint64 { return s.seed }

// Now returns the virtual time since the start of the simulation.
func (s *Sim) Now() time.Duration { return s.now }

// Steps returns the number of events executed so far.
func (s *Sim) Steps() uint64 { return s.steps }

// Rand returns the simulation's only random source. Every random choice of
// the sim, of the protocols under test and of the test itself must come from
// it (directly, or from a *rand.Rand seeded from it) and be made from the
// simulation goroutine, or replaying a seed will not reproduce the run.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// Net returns the simulated network.
func (s *Sim) Net() *Network { return s.net }

// Trace returns the trace recorded so far.
func (s *Sim) Trace() *Trace { return s.trace }

// Tracef adds a free-form note to the trace, e.g. what the test is about to
// do or an invariant's view of the cluster.
func (s *Sim) Tracef(format string, args ...any) {
	s.record(TraceEvent{Kind: EvNote, Text: fmt.Sprintf(format, args...)})
}

// After schedules fn to run at Now()+d on behalf of the test (it belongs to
// no node, so crashes do not cancel it). A negative d counts as 0.
func (s *Sim) After(d time.Duration, fn func()) *Timer {
	t := &Timer{s: s}
	t.ev = s.schedule(d, fn)
	return t
}

// schedule queues fn at Now()+d.
func (s *Sim) schedule(d time.Duration, fn func()) *event {
	if d < 0 {
		d = 0
	}
	s.seq++
	ev := &event{at: s.now + d, seq: s.seq, fn: fn}
	s.queue.push(ev)
	return ev
}

// AddInvariant registers a check run after every step (at most one leader
// per term, applied prefixes agree, ...). The first failure stops the run:
// every Run method then returns an *InvariantError. Checks must not change
// the simulation.
func (s *Sim) AddInvariant(name string, check func() error) {
	s.invariants = append(s.invariants, invariant{name: name, check: check})
}

// Step runs the earliest pending event and reports whether there was one.
// It advances the clock to the event's time. A panic in the event (in the
// protocol under test) is re-raised with the step, the time, the seed and
// the tail of the trace, since the bare panic would say nothing about how
// the run got there.
func (s *Sim) Step() bool {
	if s.running {
		panic("sim: Step or Run called from inside an event")
	}
	for {
		ev := s.queue.peek()
		if ev == nil {
			return false
		}
		s.queue.pop()
		if ev.canceled {
			continue
		}
		s.now = ev.at
		s.steps++
		s.run(ev.fn)
		return true
	}
}

func (s *Sim) run(fn func()) {
	s.running = true
	defer func() {
		s.running = false
		if r := recover(); r != nil {
			panic(fmt.Sprintf("sim: panic at step %d, t=%v, seed %d: %v\n%s\nlast trace events:\n%s",
				s.steps, s.now, s.seed, r, debug.Stack(), s.trace.Tail(40)))
		}
	}()
	fn()
}

// checkInvariants runs the registered invariants, remembering the first
// failure.
func (s *Sim) checkInvariants() error {
	if s.err != nil {
		return s.err
	}
	for _, inv := range s.invariants {
		if err := inv.check(); err != nil {
			s.err = &InvariantError{Name: inv.name, Step: s.steps, At: s.now, Err: err}
			s.record(TraceEvent{Kind: EvNote, Text: s.err.Error()})
			return s.err
		}
	}
	return nil
}

// RunFor runs every event due in the next d of virtual time and leaves the
// clock at Now()+d. It returns ErrStepLimit or an *InvariantError if the run
// had to stop early.
func (s *Sim) RunFor(d time.Duration) error {
	err := s.runUntil(nil, s.now+d)
	if errors.Is(err, ErrDeadline) {
		return nil
	}
	return err
}

// RunUntil runs events until cond holds (it is checked before the first
// step and after each one) and returns nil, or returns ErrDeadline once
// virtual time would pass Now()+within, leaving the clock there.
func (s *Sim) RunUntil(cond func() bool, within time.Duration) error {
	return s.runUntil(cond, s.now+within)
}

func (s *Sim) runUntil(cond func() bool, deadline time.Duration) error {
	if err := s.checkInvariants(); err != nil {
		return err
	}
	for {
		if cond != nil && cond() {
			return nil
		}
		ev := s.queue.peek()
		for ev != nil && ev.canceled {
			s.queue.pop()
			ev = s.queue.peek()
		}
		if ev == nil || ev.at > deadline {
			if deadline > s.now {
				s.now = deadline
			}
			return ErrDeadline
		}
		if s.steps >= s.maxSteps {
			return fmt.Errorf("%w: %d steps, t=%v", ErrStepLimit, s.steps, s.now)
		}
		s.Step()
		if err := s.checkInvariants(); err != nil {
			return err
		}
	}
}
