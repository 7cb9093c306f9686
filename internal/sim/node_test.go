package sim_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// recorder is a process that remembers what it received.
type recorder struct {
	env *sim.Env
	got []any
}

func (r *recorder) Receive(from sim.NodeID, msg any) { r.got = append(r.got, msg) }

func addRecorder(s *sim.Sim, id sim.NodeID) func() *recorder {
	var cur *recorder
	s.AddNode(id, func(env *sim.Env) sim.Process {
		cur = &recorder{env: env}
		return cur
	})
	return func() *recorder { return cur }
}

func TestTimersOfACrashedIncarnationNeverFire(t *testing.T) {
	s := sim.New(sim.Config{})
	var fired []string
	s.AddNode(1, func(env *sim.Env) sim.Process {
		inc := env.Incarnation()
		env.After(50*time.Millisecond, func() { fired = append(fired, "after/"+string(rune('0'+inc))) })
		env.Every(30*time.Millisecond, func() { fired = append(fired, "every/"+string(rune('0'+inc))) })
		return sim.ProcessFunc(func(sim.NodeID, any) {})
	})
	s.After(40*time.Millisecond, func() { s.Crash(1) })
	// Restart before the first incarnation's 50ms timer would have fired:
	// only an epoch check, not "is the node up", can suppress it.
	s.After(45*time.Millisecond, func() { s.Restart(1) })
	if err := s.RunFor(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Incarnation 0: every@30 fires; after@50 and every@60 must not.
	// Incarnation 1 (from 45ms): every@75, after@95.
	want := []string{"every/0", "every/1", "after/1"}
	if !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
}

func TestCrashedNodeNeitherSendsNorReceives(t *testing.T) {
	s := sim.New(sim.Config{Link: sim.LinkConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	rec := addRecorder(s, 2)
	var env1 *sim.Env
	s.AddNode(1, func(env *sim.Env) sim.Process {
		env1 = env
		return sim.ProcessFunc(func(sim.NodeID, any) {})
	})
	old := env1
	s.After(0, func() { old.Send(2, "in flight before the crash") })
	s.After(1*time.Millisecond, func() { s.Crash(1) })
	s.After(2*time.Millisecond, func() { old.Send(2, "sent by a dead incarnation") })
	s.After(3*time.Millisecond, func() { rec().env.Send(1, "to a crashed node") })
	if err := s.RunFor(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if want := []any{"in flight before the crash"}; !slices.Equal(rec().got, want) {
		t.Fatalf("node 2 got %v, want %v", rec().got, want)
	}
	tr := s.Trace().String()
	for _, want := range []string{"(sender crashed)", "(receiver down)"} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace lacks %q:\n%s", want, tr)
		}
	}
	if old.Alive() {
		t.Error("a crashed incarnation's Env reports Alive")
	}
}

func TestInFlightMessageReachesRestartedNode(t *testing.T) {
	s := sim.New(sim.Config{Link: sim.LinkConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	rec := addRecorder(s, 2)
	addRecorder(s, 1)
	s.After(0, func() { s.Crash(2) })
	s.After(1*time.Millisecond, func() { s.Process(1).(*recorder).env.Send(2, "hello") })
	s.After(5*time.Millisecond, func() { s.Restart(2) })
	if err := s.RunFor(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if want := []any{"hello"}; !slices.Equal(rec().got, want) {
		t.Fatalf("restarted node got %v, want %v", rec().got, want)
	}
}

// stopper checks the order of events in a crash.
type stopper struct {
	env     *sim.Env
	stopped *[]string
}

func (p *stopper) Receive(sim.NodeID, any) {}

func (p *stopper) Stop() {
	v, _ := p.env.Disk().Get("k")
	*p.stopped = append(*p.stopped, "stop sees "+string(v))
	p.env.Disk().Set("k", []byte("written by Stop")) // must not survive either
}

func TestCrashRestartRebuildsFromSyncedDisk(t *testing.T) {
	s := sim.New(sim.Config{})
	var log []string
	s.AddNode(1, func(env *sim.Env) sim.Process {
		v, ok := env.Disk().Get("k")
		log = append(log, "start sees "+string(v))
		if !ok {
			env.Disk().Set("k", []byte("synced"))
			env.Disk().Sync()
			env.Disk().Set("k", []byte("unsynced"))
		}
		return &stopper{env: env, stopped: &log}
	})
	s.Crash(1)
	if s.Up(1) || s.Process(1) != nil {
		t.Fatal("crashed node still up")
	}
	s.Crash(1) // no-op
	s.Restart(1)
	want := []string{"start sees ", "stop sees synced", "start sees synced"}
	if !slices.Equal(log, want) {
		t.Fatalf("got %q, want %q", log, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("Restart of a running node did not panic")
		}
	}()
	s.Restart(1)
}

func TestHealRestartsEveryNode(t *testing.T) {
	s := sim.New(sim.Config{})
	ids := []sim.NodeID{1, 2, 3}
	for _, id := range ids {
		addRecorder(s, id)
	}
	s.Crash(2)
	s.Crash(3)
	s.Net().Partition(sim.Isolate(ids, 1))
	s.Heal()
	for _, id := range ids {
		if !s.Up(id) {
			t.Errorf("node %d still down after Heal", id)
		}
	}
	if s.Net().Blocked(1, 2) {
		t.Error("partition survived Heal")
	}
}
