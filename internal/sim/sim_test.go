package sim_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestMain(m *testing.M) {
	// The simulator promises to start no goroutine; porcupine's checker
	// starts some and must have stopped them by the end.
	goleak.VerifyTestMain(m)
}

// pinger is a small process for the sim's own tests: it sends a counter to
// random peers on a timer and logs what it receives. It uses every
// nondeterministic facility (timers, randomness, network, disk).
type pinger struct {
	env   *sim.Env
	peers []sim.NodeID
	sent  int
}

type ping struct {
	From sim.NodeID
	N    int
}

func newPinger(peers []sim.NodeID) sim.StartFunc {
	return func(env *sim.Env) sim.Process {
		p := &pinger{env: env, peers: peers}
		env.Every(time.Duration(1+env.Rand().IntN(10))*time.Millisecond, func() {
			p.sent++
			to := peers[env.Rand().IntN(len(peers))]
			env.Send(to, ping{From: env.ID(), N: p.sent})
			env.Disk().Set("sent", []byte(fmt.Sprint(p.sent)))
			if p.sent%3 == 0 {
				env.Disk().Sync()
			}
		})
		return p
	}
}

func (p *pinger) Receive(from sim.NodeID, msg any) {
	p.env.Logf("got %v", msg)
}

// chaosRun runs five pingers under every fault the sim has and returns the
// whole trace.
func chaosRun(seed uint64) string {
	s := sim.New(sim.Config{Seed: seed, TraceLimit: -1, Link: sim.LinkConfig{
		MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond, DropRate: 0.1, DupRate: 0.1,
	}})
	ids := []sim.NodeID{1, 2, 3, 4, 5}
	for _, id := range ids {
		s.AddNode(id, newPinger(ids))
	}
	s.StartNemesis(sim.NemesisConfig{Nodes: ids, MinGap: 10 * time.Millisecond, MaxGap: 100 * time.Millisecond})
	if err := s.RunFor(2 * time.Second); err != nil {
		panic(err)
	}
	s.Heal()
	if err := s.RunFor(100 * time.Millisecond); err != nil {
		panic(err)
	}
	return s.Trace().String()
}

func TestSameSeedSameTrace(t *testing.T) {
	a, b := chaosRun(42), chaosRun(42)
	if a != b {
		al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := range min(len(al), len(bl)) {
			if al[i] != bl[i] {
				t.Fatalf("same seed, traces differ at line %d:\n%s\n%s", i, al[i], bl[i])
			}
		}
		t.Fatalf("same seed, traces differ in length: %d vs %d lines", len(al), len(bl))
	}
	for _, kind := range []string{"send", "deliver", "drop", "dup", "timer", "crash", "restart", "partition", "heal", "nemesis", "link"} {
		if !strings.Contains(a, " "+kind+" ") {
			t.Errorf("the chaos run never recorded a %q event; the determinism test does not cover it", kind)
		}
	}
	if c := chaosRun(43); c == a {
		t.Error("different seeds gave the same trace")
	}
}

// TestToyRunIsDeterministic repeats a whole ABD run with clients, disk
// and porcupine history: the trace and the history must match exactly.
func TestToyRunIsDeterministic(t *testing.T) {
	run := func() (string, string) {
		s, h, _ := runABD(t, 11, abdParams{n: 3, r: 2, w: 2, clients: 3}, true)
		if s.Trace().Evicted() > 0 {
			t.Fatal("trace ring too small for the comparison")
		}
		return s.Trace().String(), fmt.Sprint(h.Operations())
	}
	trace1, hist1 := run()
	trace2, hist2 := run()
	if trace1 != trace2 {
		t.Error("same seed, different traces")
	}
	if hist1 != hist2 {
		t.Error("same seed, different histories")
	}
}

func TestEventsAtOneInstantRunInScheduleOrder(t *testing.T) {
	s := sim.New(sim.Config{})
	var got []int
	for i := range 100 {
		s.After(time.Millisecond, func() { got = append(got, i) })
	}
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || !slices.IsSorted(got) {
		t.Fatalf("events at one instant ran out of schedule order: %v", got)
	}
}

func TestTimers(t *testing.T) {
	s := sim.New(sim.Config{})
	var fired []string
	s.After(30*time.Millisecond, func() { fired = append(fired, fmt.Sprintf("a@%v", s.Now())) })
	b := s.After(20*time.Millisecond, func() { fired = append(fired, "b") })
	s.After(10*time.Millisecond, func() { fired = append(fired, fmt.Sprintf("c@%v", s.Now())) })
	if !b.Stop() {
		t.Error("Stop of a pending timer reported false")
	}
	if b.Stop() {
		t.Error("second Stop reported true")
	}
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c@10ms", "a@30ms"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if s.Now() != time.Second {
		t.Fatalf("RunFor(1s) left the clock at %v", s.Now())
	}
}

func TestEvery(t *testing.T) {
	s := sim.New(sim.Config{})
	n := 0
	s.AddNode(1, func(env *sim.Env) sim.Process {
		var tm *sim.Timer
		tm = env.Every(10*time.Millisecond, func() {
			n++
			if n == 5 {
				tm.Stop()
			}
		})
		return sim.ProcessFunc(func(sim.NodeID, any) {})
	})
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("Every fired %d times after stopping itself at 5", n)
	}
}

func TestRunUntil(t *testing.T) {
	s := sim.New(sim.Config{})
	done := false
	s.After(50*time.Millisecond, func() { done = true })
	if err := s.RunUntil(func() bool { return done }, time.Second); err != nil {
		t.Fatal(err)
	}
	if s.Now() != 50*time.Millisecond {
		t.Fatalf("RunUntil stopped at %v, want 50ms", s.Now())
	}
	err := s.RunUntil(func() bool { return false }, time.Second)
	if !errors.Is(err, sim.ErrDeadline) {
		t.Fatalf("RunUntil of a never-true condition returned %v, want ErrDeadline", err)
	}
	if s.Now() != 1050*time.Millisecond {
		t.Fatalf("RunUntil left the clock at %v, want 1.05s", s.Now())
	}
}

func TestStepLimitStopsLivelock(t *testing.T) {
	s := sim.New(sim.Config{MaxSteps: 1000})
	var spin func()
	spin = func() { s.After(0, spin) } // time never advances
	s.After(0, spin)
	if err := s.RunFor(time.Second); !errors.Is(err, sim.ErrStepLimit) {
		t.Fatalf("livelock: got %v, want ErrStepLimit", err)
	}
	if s.Steps() != 1000 {
		t.Fatalf("ran %d steps, limit 1000", s.Steps())
	}
}

func TestInvariantFailureIsSticky(t *testing.T) {
	s := sim.New(sim.Config{})
	x := 0
	s.AddInvariant("x below 3", func() error {
		if x >= 3 {
			return fmt.Errorf("x = %d", x)
		}
		return nil
	})
	for i := range 10 {
		s.After(time.Duration(i)*time.Millisecond, func() { x++ })
	}
	err := s.RunFor(time.Second)
	var ie *sim.InvariantError
	if !errors.As(err, &ie) || ie.Name != "x below 3" || ie.At != 2*time.Millisecond {
		t.Fatalf("got %v, want the invariant to fail at 2ms", err)
	}
	if err2 := s.RunFor(time.Second); err2 != err {
		t.Fatalf("a failed sim ran on: %v", err2)
	}
}

func TestPanicReportsWhere(t *testing.T) {
	s := sim.New(sim.Config{Seed: 7})
	s.After(time.Millisecond, func() { panic("boom") })
	defer func() {
		r := fmt.Sprint(recover())
		if !strings.Contains(r, "boom") || !strings.Contains(r, "seed 7") || !strings.Contains(r, "t=1ms") {
			t.Fatalf("panic message lacks the original value, seed or time: %.300s", r)
		}
	}()
	s.RunFor(time.Second) //nolint:errcheck // panics
}

func TestTraceRingKeepsTheEnd(t *testing.T) {
	s := sim.New(sim.Config{TraceLimit: 10})
	for i := range 25 {
		s.Tracef("note %d", i)
	}
	tr := s.Trace()
	if tr.Len() != 10 || tr.Evicted() != 15 {
		t.Fatalf("len %d evicted %d, want 10 and 15", tr.Len(), tr.Evicted())
	}
	ev := tr.Events()
	if ev[0].Text != "note 15" || ev[9].Text != "note 24" {
		t.Fatalf("ring kept %q..%q, want note 15..note 24", ev[0].Text, ev[9].Text)
	}
	if !strings.Contains(tr.String(), "15 earlier events evicted") {
		t.Error("the dump does not say events were evicted")
	}
	if got := strings.Count(tr.Tail(3), "\n"); got != 3 {
		t.Errorf("Tail(3) has %d lines", got)
	}
}
