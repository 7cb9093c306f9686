package bench

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

func testSweep() Sweep {
	w := testWorkload(Keyspace{})
	w.MaxOps = 300
	return Sweep{Replicas: 3, Ranges: 8, Pairs: DefaultPairs(3), Suffix: "abc123", Workload: w}
}

func TestSweep(t *testing.T) {
	f := newFakeStore()
	s := testSweep()
	var mu sync.Mutex
	var progress []string
	s.Progress = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, msg)
	}
	results, err := s.Run(context.Background(), f, []KV{f})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		mode, keyspace string
		w, r           int
	}
	var got []row
	for _, r := range results {
		got = append(got, row{r.Mode, r.Keyspace, r.W, r.R})
		if r.Ops != 300 || r.Stale.Missed != 0 {
			t.Errorf("%s w=%d r=%d: %d ops, %d stale", r.Mode, r.W, r.R, r.Ops, r.Stale.Missed)
		}
	}
	want := []row{
		{"raft", "bench-raft-abc123", 0, 0}, {"paxos", "bench-paxos-abc123", 0, 0},
		{"eventual", "bench-ev-abc123", 1, 1}, {"eventual", "bench-ev-abc123", 2, 2}, {"eventual", "bench-ev-abc123", 1, 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if left := f.keyspaceNames(); len(left) != 0 {
		t.Errorf("keyspaces left behind: %v", left)
	}
	// Each eventual pair wrote keys of its own.
	f.mu.Lock()
	for _, prefix := range []string{"bench-ev-abc123/w1r1/", "bench-ev-abc123/w2r2/", "bench-ev-abc123/w1r3/", "bench-raft-abc123/bench/"} {
		n := 0
		for k := range f.mu.history {
			if strings.HasPrefix(k, prefix) {
				n++
			}
		}
		if n != 50 {
			t.Errorf("%d keys under %s, want 50", n, prefix)
		}
	}
	f.mu.Unlock()
	if !slices.Contains(progress, "dropped keyspace bench-ev-abc123") || !slices.Contains(progress, "running eventual N=3 W=1 R=3: 1m0s, 8 clients, 50 keys") {
		t.Errorf("progress: %q", progress)
	}
}

func TestSweepKeep(t *testing.T) {
	f := newFakeStore()
	s := testSweep()
	s.Keep = true
	if _, err := s.Run(context.Background(), f, []KV{f}); err != nil {
		t.Fatal(err)
	}
	left := f.keyspaceNames()
	slices.Sort(left)
	if want := []string{"bench-ev-abc123", "bench-paxos-abc123", "bench-raft-abc123"}; !slices.Equal(left, want) {
		t.Errorf("kept %v, want %v", left, want)
	}
}

// A failed run and a cancelled sweep still drop what the sweep created.
func TestSweepCleansUp(t *testing.T) {
	f := newFakeStore()
	f.failPuts = true
	s := testSweep()
	results, err := s.Run(context.Background(), f, []KV{f})
	if err == nil || len(results) != 0 || !strings.Contains(err.Error(), "prefill of keyspace bench-raft-abc123") {
		t.Fatalf("got %d results, %v; want the raft prefill's failure", len(results), err)
	}
	if left := f.keyspaceNames(); len(left) != 0 {
		t.Errorf("keyspaces left behind after a failure: %v", left)
	}

	f = newFakeStore()
	s = testSweep()
	s.Workload.MaxOps, s.Workload.Timeout = 0, time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = s.Run(ctx, f, []KV{slowKV{f, time.Minute}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sweep: %v", err)
	}
	if left, dropped := f.keyspaceNames(), f.droppedNames(); len(left) != 0 || !slices.Equal(dropped, []string{"bench-raft-abc123"}) {
		t.Errorf("after Ctrl-C: left %v, dropped %v", left, dropped)
	}

	// A keyspace that cannot be created: nothing to drop, the error says which.
	f = newFakeStore()
	if _, err := f.CreateKeyspace(context.Background(), &v1.Keyspace{Name: "bench-paxos-abc123", Mode: v1.Mode_MODE_PAXOS, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	s = testSweep()
	results, err = s.Run(context.Background(), f, []KV{f})
	if err == nil || !strings.Contains(err.Error(), "create keyspace bench-paxos-abc123") || len(results) != 1 {
		t.Fatalf("got %d results, %v", len(results), err)
	}
	if left := f.keyspaceNames(); !slices.Equal(left, []string{"bench-paxos-abc123"}) {
		t.Errorf("left %v: the sweep dropped a keyspace it did not create, or kept one it did", left)
	}
}

// With Rates, every setting runs once per rate, in order, open-loop.
func TestSweepRates(t *testing.T) {
	f := newFakeStore()
	s := testSweep()
	s.Pairs = []client.Quorum{{W: 1, R: 1}}
	s.Workload.MaxOps, s.Workload.Duration = 0, 100*time.Millisecond
	s.Rates = []float64{200, 400}
	var mu sync.Mutex
	var progress []string
	s.Progress = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, msg)
	}
	results, err := s.Run(context.Background(), f, []KV{f})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		mode      string
		w, r      int
		rate      float64
		scheduled int64
	}
	var got []row
	for _, r := range results {
		if r.OpenLoop == nil {
			t.Fatalf("%s: closed loop", r.Mode)
		}
		got = append(got, row{r.Mode, r.W, r.R, r.OpenLoop.TargetRate, r.OpenLoop.Scheduled})
	}
	want := []row{
		{"raft", 0, 0, 200, 20}, {"raft", 0, 0, 400, 40}, {"paxos", 0, 0, 200, 20}, {"paxos", 0, 0, 400, 40},
		{"eventual", 1, 1, 200, 20}, {"eventual", 1, 1, 400, 40},
	}
	if !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if !slices.Contains(progress, "running paxos N=3: 100ms at 400 ops/s, at most 8 in flight, 50 keys") {
		t.Errorf("progress: %q", progress)
	}
}

func TestSweepValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(s *Sweep)
		knob string
	}{
		{func(s *Sweep) { s.Replicas = 0 }, "replicas"},
		{func(s *Sweep) { s.Replicas = 25 }, "replicas"},
		{func(s *Sweep) { s.Ranges = 0 }, "ranges"},
		{func(s *Sweep) { s.Pairs = nil }, "wr"},
		{func(s *Sweep) { s.Pairs = []client.Quorum{{W: 1, R: 1}, {W: 4, R: 1}} }, "wr"},
		{func(s *Sweep) { s.Pairs = []client.Quorum{{W: 0, R: 1}} }, "wr"},
		{func(s *Sweep) { s.Suffix = "Bad!" }, "suffix"},
		{func(s *Sweep) { s.Workload.Keys = -1 }, "keys"},
		{func(s *Sweep) { s.Rates = []float64{100, -1} }, "rate"},
		{func(s *Sweep) { s.Workload.Rate = MaxRate * 2 }, "rate"},
	} {
		s := testSweep()
		tc.edit(&s)
		var ke *KnobError
		if err := s.Validate(); !errors.As(err, &ke) || ke.Knob != tc.knob {
			t.Errorf("%+v: got %v, want knob %s", s, err, tc.knob)
		}
	}
}

func TestDefaultPairs(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []client.Quorum
	}{
		{1, []client.Quorum{{W: 1, R: 1}}},
		{2, []client.Quorum{{W: 1, R: 1}, {W: 2, R: 2}, {W: 1, R: 2}}},
		{3, []client.Quorum{{W: 1, R: 1}, {W: 2, R: 2}, {W: 1, R: 3}}},
		{5, []client.Quorum{{W: 1, R: 1}, {W: 3, R: 3}, {W: 1, R: 5}}},
	} {
		if got := DefaultPairs(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("DefaultPairs(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
