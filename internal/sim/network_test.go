package sim_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// blast sends n numbered messages from node 1 to node 2, one per
// microsecond, and returns what node 2 received with the arrival times.
func blast(t *testing.T, seed uint64, link sim.LinkConfig, n int) (got []int, at []time.Duration) {
	t.Helper()
	s := sim.New(sim.Config{Seed: seed, Link: link})
	s.AddNode(2, func(env *sim.Env) sim.Process {
		return sim.ProcessFunc(func(_ sim.NodeID, msg any) {
			got = append(got, msg.(int))
			at = append(at, env.Now())
		})
	})
	var env1 *sim.Env
	s.AddNode(1, func(env *sim.Env) sim.Process { env1 = env; return sim.ProcessFunc(func(sim.NodeID, any) {}) })
	for i := range n {
		s.After(time.Duration(i)*time.Microsecond, func() { env1.Send(2, i) })
	}
	if err := s.RunFor(time.Minute); err != nil {
		t.Fatal(err)
	}
	return got, at
}

func TestDropAndDuplicateRates(t *testing.T) {
	const n = 20000
	// Each bound is more than 6 standard deviations from the mean for
	// every seed, so the test cannot flake; being seeded, it could not
	// anyway, but the bounds do not depend on this one seed being lucky.
	got, _ := blast(t, 1, sim.LinkConfig{DropRate: 0.2, DupRate: 0.1, MaxDelay: time.Millisecond}, n)
	seen := make(map[int]int)
	for _, m := range got {
		seen[m]++
	}
	dups := len(got) - len(seen)
	lost := n - len(seen)
	if lost < 3600 || lost > 4400 { // mean 4000, sd 57
		t.Errorf("lost %d of %d messages at DropRate 0.2", lost, n)
	}
	if dups < 1400 || dups > 1800 { // mean 1600 (10%% of 16000), sd 38
		t.Errorf("duplicated %d of %d delivered messages at DupRate 0.1", dups, len(seen))
	}
	for m, c := range seen {
		if c > 2 {
			t.Fatalf("message %d delivered %d times", m, c)
		}
	}
}

func TestDelayBoundsAndReordering(t *testing.T) {
	const n = 1000
	link := sim.LinkConfig{MinDelay: 5 * time.Millisecond, MaxDelay: 15 * time.Millisecond}
	got, at := blast(t, 3, link, n)
	if len(got) != n {
		t.Fatalf("delivered %d of %d on a lossless link", len(got), n)
	}
	for i, m := range got {
		sent := time.Duration(m) * time.Microsecond
		if d := at[i] - sent; d < link.MinDelay || d > link.MaxDelay {
			t.Fatalf("message %d took %v, outside [%v, %v]", m, d, link.MinDelay, link.MaxDelay)
		}
	}
	if slices.IsSorted(got) {
		t.Error("random delays never reordered 1000 messages sent 1µs apart")
	}
	link.FIFO = true
	link.DupRate = 0.2
	got, _ = blast(t, 3, link, n)
	if !slices.IsSorted(got) {
		t.Error("a FIFO link reordered messages")
	}
}

func TestPartitionShapes(t *testing.T) {
	all := []sim.NodeID{1, 2, 3, 4, 5}
	// connected lists, for each shape, the directed links that still work
	// ("12" means 1 -> 2); every other link between distinct nodes is cut.
	tests := []struct {
		p         sim.Partition
		connected []string
	}{
		{sim.Isolate(all, 3), []string{"12", "21", "14", "41", "15", "51", "24", "42", "25", "52", "45", "54"}},
		{sim.Split([]sim.NodeID{1, 2, 3}, []sim.NodeID{4, 5}), []string{"12", "21", "13", "31", "23", "32", "45", "54"}},
		{sim.Split([]sim.NodeID{1}, []sim.NodeID{2}, []sim.NodeID{3, 4}), []string{"15", "51", "25", "52", "34", "43", "35", "53", "45", "54"}},
		{sim.Bridge([]sim.NodeID{1, 2}, 3, []sim.NodeID{4, 5}), []string{"12", "21", "13", "31", "23", "32", "34", "43", "35", "53", "45", "54"}},
		// 1 can send to everyone, but nobody can send to 1.
		{sim.CutOneWay([]sim.NodeID{2, 3, 4, 5}, []sim.NodeID{1}), []string{"12", "13", "14", "15", "23", "32", "24", "42", "25", "52", "34", "43", "35", "53", "45", "54"}},
		// Ring 1-2-3-4-5-1: each node keeps its two neighbours.
		{sim.MajorityRing(all), []string{"12", "21", "23", "32", "34", "43", "45", "54", "51", "15"}},
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			s := sim.New(sim.Config{Link: sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: time.Millisecond}})
			got := make(map[string]bool)
			envs := make(map[sim.NodeID]*sim.Env)
			for _, id := range all {
				s.AddNode(id, func(env *sim.Env) sim.Process {
					envs[id] = env
					return sim.ProcessFunc(func(from sim.NodeID, _ any) { got[fmt.Sprintf("%d%d", from, id)] = true })
				})
			}
			s.Net().Partition(tt.p)
			for _, a := range all {
				for _, b := range all {
					envs[a].Send(b, "x")
				}
			}
			if err := s.RunFor(time.Second); err != nil {
				t.Fatal(err)
			}
			want := make(map[string]bool)
			for _, l := range tt.connected {
				want[l] = true
			}
			for _, a := range all {
				for _, b := range all {
					l := fmt.Sprintf("%d%d", a, b)
					w := want[l] || a == b // a node always reaches itself
					if got[l] != w {
						t.Errorf("link %d->%d delivered=%t, want %t", a, b, got[l], w)
					}
					if s.Net().Blocked(a, b) == w {
						t.Errorf("Blocked(%d, %d) = %t, want %t", a, b, !w, !w)
					}
				}
			}
		})
	}
}

func TestPartitionLifecycle(t *testing.T) {
	s := sim.New(sim.Config{Link: sim.LinkConfig{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	rec := addRecorder(s, 2)
	addRecorder(s, 1)
	send := func(at time.Duration, msg string) {
		s.After(at, func() { s.Process(1).(*recorder).env.Send(2, msg) })
	}
	var heal func()
	send(0, "in flight when the cut appears")
	s.After(5*time.Millisecond, func() { heal = s.Net().Partition(sim.CutOneWay([]sim.NodeID{1}, []sim.NodeID{2})) })
	send(6*time.Millisecond, "sent into the cut") // arrives after the heal, still lost
	s.After(12*time.Millisecond, func() { heal() })
	send(13*time.Millisecond, "after heal")
	// Two overlapping partitions: healing one leaves the other.
	s.After(24*time.Millisecond, func() {
		h1 := s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2}, 1))
		s.Net().Partition(sim.Split([]sim.NodeID{1}, []sim.NodeID{2}))
		h1()
		h1() // harmless
	})
	send(25*time.Millisecond, "one of two partitions healed")
	s.After(40*time.Millisecond, s.Net().Heal)
	send(41*time.Millisecond, "after Heal")
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	want := []any{"after heal", "after Heal"}
	if !slices.Equal(rec().got, want) {
		t.Fatalf("got %q, want %q", rec().got, want)
	}
}

func TestFlapTogglesAndStops(t *testing.T) {
	s := sim.New(sim.Config{Seed: 5})
	addRecorder(s, 1)
	addRecorder(s, 2)
	f := s.Net().Flap(sim.Split([]sim.NodeID{1}, []sim.NodeID{2}), 10*time.Millisecond, 20*time.Millisecond)
	changes, last := 0, true
	for range 1000 {
		if err := s.RunFor(time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if b := s.Net().Blocked(1, 2); b != last {
			changes++
			last = b
		}
	}
	// 1s of 10–20ms periods: 50 to 100 toggles.
	if changes < 50 || changes > 100 {
		t.Errorf("flap toggled %d times in 1s with 10–20ms periods", changes)
	}
	f.Stop()
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if s.Net().Blocked(1, 2) {
		t.Error("stopped flap left the partition active")
	}
}

func TestLinkOverride(t *testing.T) {
	s := sim.New(sim.Config{Link: sim.DefaultLink()})
	addRecorder(s, 1)
	addRecorder(s, 2)
	lossy := sim.LinkConfig{DropRate: 1}
	s.Net().SetLink(1, 2, lossy)
	if s.Net().Link(1, 2) != lossy || s.Net().Link(2, 1) != sim.DefaultLink() {
		t.Fatal("SetLink did not override exactly one direction")
	}
	s.Net().ResetLink(1, 2)
	if s.Net().Link(1, 2) != sim.DefaultLink() {
		t.Fatal("ResetLink did not restore the default")
	}
}
