package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quorumkv/quorumkv/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testWorkload is a small run bounded by its operation count, so that
// the tests do not depend on the speed of the machine.
func testWorkload(ks Keyspace) Workload {
	return Workload{
		Keyspace: ks, Clients: 8, Duration: time.Minute, MaxOps: 3000, Keys: 50,
		ValueSize: 32, ReadFraction: 0.5, Seed: 1, Timeout: time.Second, Settle: time.Millisecond,
	}
}

var (
	raft3 = Keyspace{Name: "r3", Mode: ModeRaft, Replicas: 3}
	ev3   = Keyspace{Name: "ev", Mode: ModeEventual, Replicas: 3, W: 2, R: 2}
)

// countingKV counts the requests sent through it.
type countingKV struct {
	KV
	n atomic.Int64
}

func (c *countingKV) Put(ctx context.Context, ks string, k, v []byte, q client.Quorum) (string, error) {
	c.n.Add(1)
	return c.KV.Put(ctx, ks, k, v, q)
}

func (c *countingKV) Get(ctx context.Context, ks string, k []byte, q client.Quorum) (client.KeyValue, error) {
	c.n.Add(1)
	return c.KV.Get(ctx, ks, k, q)
}

func TestRunLinearizable(t *testing.T) {
	f := newFakeStore()
	kvs := []*countingKV{{KV: f}, {KV: f}, {KV: f}}
	res, err := Run(context.Background(), testWorkload(raft3), []KV{kvs[0], kvs[1], kvs[2]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 3000 || res.Errors != 0 || res.Read.Ops+res.Write.Ops != 3000 || res.CAS.Ops != 0 {
		t.Fatalf("ops %d (read %d, write %d, cas %d), errors %d; want 3000 answered, none failed",
			res.Ops, res.Read.Ops, res.Write.Ops, res.CAS.Ops, res.Errors)
	}
	if res.Read.Ops < 1300 || res.Read.Ops > 1700 {
		t.Errorf("%d reads of 3000 with read fraction 0.5", res.Read.Ops)
	}
	if res.Stale.Missed != 0 || res.Stale.Reads != int(res.Read.Ops) || res.Read.NotFound != 0 {
		t.Errorf("stale check %+v, not found %d: a linearizable store misses nothing, and every key was prefilled", res.Stale, res.Read.NotFound)
	}
	if res.Server != nil {
		t.Errorf("server measure %+v for a raft keyspace", res.Server)
	}
	if res.W != 0 || res.R != 0 || res.N != 3 || res.Mode != ModeRaft || res.OpsPerSecond <= 0 {
		t.Errorf("result header %+v", res)
	}
	if res.Read.Latency.P50 <= 0 || res.Read.Latency.Max < res.Read.Latency.P99 || res.Read.Latency.P99 < res.Read.Latency.P50 {
		t.Errorf("read latency %+v", res.Read.Latency)
	}
	f.mu.Lock()
	dups, keys := f.mu.dupValues, len(f.mu.history)
	f.mu.Unlock()
	if dups != 0 {
		t.Errorf("%d written values were not unique", dups)
	}
	if keys != 50 {
		t.Errorf("%d keys written, want the 50 of the workload", keys)
	}
	// 3050 requests (with the prefill) over three clients.
	for i, kv := range kvs {
		if n := kv.n.Load(); n < 900 || n > 1150 {
			t.Errorf("client %d sent %d of 3050 requests: not spread evenly", i, n)
		}
	}
}

// The same seed makes the same choices.
func TestRunSeedReplays(t *testing.T) {
	counts := func(seed uint64) (int64, int64) {
		w := testWorkload(raft3)
		w.Clients, w.Seed = 1, seed
		res, err := Run(context.Background(), w, []KV{newFakeStore()})
		if err != nil {
			t.Fatal(err)
		}
		return res.Read.Ops, res.Write.Ops
	}
	r1, w1 := counts(1)
	r2, w2 := counts(1)
	r3, w3 := counts(2)
	if r1 != r2 || w1 != w2 {
		t.Errorf("seed 1 twice: %d/%d then %d/%d reads/writes", r1, w1, r2, w2)
	}
	if r1 == r3 && w1 == w3 {
		t.Errorf("seeds 1 and 2 made the same %d/%d reads/writes", r1, w1)
	}
}

func TestRunCatchesStaleReads(t *testing.T) {
	for _, ks := range []Keyspace{raft3, ev3} {
		f := newFakeStore()
		f.lag = true
		res, err := Run(context.Background(), testWorkload(ks), []KV{f})
		if err != nil {
			t.Fatal(err)
		}
		// Reads return the version before the latest: every read of a key
		// written more than once before it was sent misses a write.
		if res.Stale.Missed < int(res.Read.Ops)/2 || len(res.Stale.Examples) == 0 {
			t.Errorf("%s: %d of %d reads missed an acknowledged write; want most", ks.Mode, res.Stale.Missed, res.Read.Ops)
		}
		if res.Read.NotFound == 0 {
			t.Errorf("%s: a read one write behind a key written once finds nothing; none did", ks.Mode)
		}
	}
}

func TestRunCountsErrors(t *testing.T) {
	f := newFakeStore()
	f.failEvery, f.failFrom = 7, 50
	res, err := Run(context.Background(), testWorkload(raft3), []KV{f})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors < 300 || res.Ops+res.Errors != 3000 {
		t.Fatalf("%d answered, %d failed; want about one in 7 of 3000 failed", res.Ops, res.Errors)
	}
	if res.Read.Errors["unavailable"] == 0 || res.Write.Errors["unavailable"] == 0 || len(res.Read.Errors)+len(res.Write.Errors) != 2 {
		t.Errorf("errors by kind: read %v, write %v", res.Read.Errors, res.Write.Errors)
	}
	if len(res.FirstErrors) != maxFirstErrors || !strings.Contains(res.FirstErrors[0], "no quorum") {
		t.Errorf("first errors %q", res.FirstErrors)
	}
}

func TestRunPrefillFailure(t *testing.T) {
	f := newFakeStore()
	f.failPuts = true
	_, err := Run(context.Background(), testWorkload(raft3), []KV{f})
	if err == nil || !strings.Contains(err.Error(), "prefill of keyspace r3") || !errors.Is(err, errFakeUnavailable) {
		t.Fatalf("got %v, want the prefill's failure", err)
	}
}

func TestRunQuorumOverride(t *testing.T) {
	for _, tc := range []struct {
		q          client.Quorum
		wantW, wwR int
	}{
		{client.Quorum{W: 1, R: 3}, 1, 3},
		{client.Quorum{}, 2, 2},
		{client.Quorum{R: 1}, 2, 1},
	} {
		f := newFakeStore()
		w := testWorkload(ev3)
		w.Quorum, w.MaxOps = tc.q, 200
		res, err := Run(context.Background(), w, []KV{f})
		if err != nil {
			t.Fatal(err)
		}
		if res.W != tc.wantW || res.R != tc.wwR {
			t.Errorf("override %+v: result W=%d R=%d, want %d and %d", tc.q, res.W, res.R, tc.wantW, tc.wwR)
		}
		f.mu.Lock()
		quorums := f.mu.quorums
		f.mu.Unlock()
		// The prefill keeps the keyspace's defaults; then puts carry W
		// alone and gets R alone.
		for i, q := range quorums {
			ok := q == client.Quorum{W: tc.q.W} || q == client.Quorum{R: tc.q.R}
			if i < w.Keys {
				ok = q == client.Quorum{}
			}
			if !ok {
				t.Errorf("override %+v: request %d carried %+v", tc.q, i, q)
				break
			}
		}
	}
}

func TestRunCompareAndSwap(t *testing.T) {
	f := newFakeStore()
	f.interfereEvery = 7
	w := testWorkload(raft3)
	w.ReadFraction, w.CASFraction = 0.2, 0.5
	res, err := Run(context.Background(), w, []KV{f})
	if err != nil {
		t.Fatal(err)
	}
	if res.CAS.Ops < 1200 || res.CAS.Conflicts == 0 || res.CAS.Conflicts == res.CAS.Ops {
		t.Errorf("%d compare-and-swaps, %d conflicts: want about 1500, some but not all lost", res.CAS.Ops, res.CAS.Conflicts)
	}
	if res.Stale.Missed != 0 {
		t.Errorf("%d stale reads in a linearizable store with compare-and-swaps", res.Stale.Missed)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.dupValues != 0 {
		t.Errorf("%d written values were not unique", f.mu.dupValues)
	}
}

// metricsServer serves the staleness counters of keyspace ev, growing by
// 100 reads and 5 stale ones per scrape.
func metricsServer(t *testing.T) *httptest.Server {
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := scrapes.Add(1)
		fmt.Fprintf(w, "quorumkv_wrn_reads_total{keyspace=\"ev\"} %d\nquorumkv_wrn_stale_reads_total{keyspace=\"ev\"} %d\n", 100*n, 5*n)
		fmt.Fprintf(w, "quorumkv_wrn_reads_total{keyspace=\"other\"} 1e6\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunServerStaleness(t *testing.T) {
	a, b := metricsServer(t), metricsServer(t)
	w := testWorkload(ev3)
	w.MetricsEndpoints = []string{strings.TrimPrefix(a.URL, "http://"), b.URL}
	res, err := Run(context.Background(), w, []KV{newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	if want := (ServerStaleness{Reads: 200, StaleReads: 10, StalePercent: 5}); res.Server == nil || *res.Server != want {
		t.Fatalf("server measure %+v, want %+v", res.Server, want)
	}

	// A node listed twice counts once.
	w.MetricsEndpoints = []string{a.URL, a.URL}
	if res, err := Run(context.Background(), w, []KV{newFakeStore()}); err != nil || res.Server == nil || res.Server.Reads != 100 {
		t.Fatalf("one node listed twice: server measure %+v, %v; want 100 reads", res.Server, err)
	}

	// A raft keyspace has no such counters: not measured.
	w.Keyspace = raft3
	if res, err := Run(context.Background(), w, []KV{newFakeStore()}); err != nil || res.Server != nil {
		t.Fatalf("raft: server measure %+v, %v", res.Server, err)
	}

	// A node whose metrics cannot be read: the run stands, the measure
	// says why it is missing.
	broken := httptest.NewServer(http.NotFoundHandler())
	defer broken.Close()
	w.Keyspace, w.MetricsEndpoints = ev3, []string{a.URL, broken.URL}
	res, err = Run(context.Background(), w, []KV{newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Server == nil || !strings.Contains(res.Server.Error, "404") || res.Ops != 3000 {
		t.Fatalf("server measure %+v with a node answering 404", res.Server)
	}
}

// slowKV answers after a delay, or when its context ends.
type slowKV struct {
	KV
	delay time.Duration
}

func (s slowKV) Get(ctx context.Context, ks string, k []byte, q client.Quorum) (client.KeyValue, error) {
	select {
	case <-time.After(s.delay):
		return s.KV.Get(ctx, ks, k, q)
	case <-ctx.Done():
		return client.KeyValue{}, ctx.Err()
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	w := testWorkload(raft3)
	w.MaxOps, w.Duration, w.Clients = 0, 200*time.Millisecond, 2
	begin := time.Now()
	res, err := Run(context.Background(), w, []KV{slowKV{newFakeStore(), time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 5*time.Second || res.ElapsedSeconds < 0.2 || res.Ops == 0 {
		t.Fatalf("a 200ms run took %v (elapsed %.3fs, %d ops)", took, res.ElapsedSeconds, res.Ops)
	}
}

// A request slower than the timeout fails as deadline_exceeded.
func TestRunTimeout(t *testing.T) {
	w := testWorkload(raft3)
	w.MaxOps, w.ReadFraction, w.Timeout, w.Clients = 20, 1, 20*time.Millisecond, 2
	res, err := Run(context.Background(), w, []KV{slowKV{newFakeStore(), time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Read.Errors["deadline_exceeded"] != 20 || res.Ops != 0 {
		t.Fatalf("read errors %v, ops %d; want 20 deadline_exceeded", res.Read.Errors, res.Ops)
	}
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := testWorkload(raft3)
	w.MaxOps, w.Timeout = 0, time.Minute
	time.AfterFunc(100*time.Millisecond, cancel)
	begin := time.Now()
	_, err := Run(ctx, w, []KV{slowKV{newFakeStore(), time.Minute}})
	if !errors.Is(err, context.Canceled) || time.Since(begin) > 5*time.Second {
		t.Fatalf("cancelled run: %v after %v", err, time.Since(begin))
	}
}

func TestRunRefusesBadWorkload(t *testing.T) {
	w := testWorkload(raft3)
	w.Clients = -1
	var ke *KnobError
	if _, err := Run(context.Background(), w, []KV{newFakeStore()}); !errors.As(err, &ke) || ke.Knob != "clients" {
		t.Fatalf("got %v, want a KnobError for clients", err)
	}
	if _, err := Run(context.Background(), testWorkload(raft3), nil); err == nil {
		t.Fatal("a run with no client was accepted")
	}
}
