package sim_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestNemesisInjectsEveryFaultAndHealEndsThem(t *testing.T) {
	s := sim.New(sim.Config{Seed: 9, Link: sim.DefaultLink()})
	ids := []sim.NodeID{1, 2, 3, 4, 5}
	for _, id := range ids {
		s.AddNode(id, newPinger(ids))
	}
	cfg := sim.NemesisConfig{Nodes: ids, Crashable: ids[:3], MaxCrashed: 2}
	s.StartNemesis(cfg)
	maxDown := 0
	s.AddInvariant("nemesis respects MaxCrashed and Crashable", func() error {
		down := 0
		for _, id := range ids {
			if !s.Up(id) {
				down++
				if id > 3 {
					return fmt.Errorf("node %d is not crashable but is down", id)
				}
			}
		}
		maxDown = max(maxDown, down)
		if down > cfg.MaxCrashed {
			return fmt.Errorf("%d nodes down", down)
		}
		return nil
	})
	if err := s.RunFor(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	tr := s.Trace().String()
	for _, shape := range []string{"isolate{", "split{", "bridge{", "oneway{", "ring{", "nemesis   flap", "nemesis   crash", "nemesis   loss"} {
		if !strings.Contains(tr, shape) {
			t.Errorf("30s of nemesis never injected %q", shape)
		}
	}
	if maxDown != 2 {
		t.Errorf("at most %d nodes were down at once; MaxCrashed is 2", maxDown)
	}

	s.Heal()
	for _, a := range ids {
		if !s.Up(a) {
			t.Errorf("node %d down after Heal", a)
		}
		for _, b := range ids {
			if s.Net().Blocked(a, b) {
				t.Errorf("link %d->%d blocked after Heal", a, b)
			}
			if s.Net().Link(a, b) != sim.DefaultLink() {
				t.Errorf("link %d->%d is %v after Heal", a, b, s.Net().Link(a, b))
			}
		}
	}
	healedAt := s.Now()
	if err := s.RunFor(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	events := s.Trace().Events()
	if events[0].At > healedAt {
		t.Fatal("trace ring too small to see the time of Heal")
	}
	for _, e := range events {
		fault := e.Kind == sim.EvNemesis || e.Kind == sim.EvCrash || e.Kind == sim.EvPartition
		if e.At > healedAt && fault {
			t.Fatalf("fault after Heal at %v: %v", healedAt, e)
		}
	}
}

func TestNemesisConfigValidate(t *testing.T) {
	bad := []sim.NemesisConfig{
		{},
		{Nodes: []sim.NodeID{1}, Faults: []sim.Fault{99}},
		{Nodes: []sim.NodeID{1}, MinGap: time.Second, MaxGap: time.Millisecond},
		{Nodes: []sim.NodeID{1}, LossRate: 2},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (sim.NemesisConfig{Nodes: []sim.NodeID{1}}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
