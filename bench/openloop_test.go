package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// The open-loop tests run in a synctest bubble: time there is a fake
// clock that moves only when every goroutine of the run waits (on a
// timer, a channel or the WaitGroup), so a request due at t is sent at t
// exactly, a service time of 1ms takes 1ms exactly, and the counts below
// do not depend on the speed or the load of the machine.

// pacedKV answers every request after service, and pauses the whole
// store, as a stop-the-world pause would, for stall from its stallAt-th
// request on (counting from 1, the prefill's included): a request that
// arrives during the pause is answered service after it ends. With
// lateCtx, a request notices that its context ended only once its time
// is up, as a call stuck somewhere that does not watch its deadline.
type pacedKV struct {
	*fakeStore
	service time.Duration
	stallAt int
	stall   time.Duration
	lateCtx bool

	mu struct {
		sync.Mutex
		n     int
		until time.Time // end of the pause
	}
}

func (p *pacedKV) wait(ctx context.Context) error {
	p.mu.Lock()
	p.mu.n++
	if p.mu.n == p.stallAt {
		p.mu.until = time.Now().Add(p.stall)
	}
	d := max(0, time.Until(p.mu.until)) + p.service
	p.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	if p.lateCtx {
		<-t.C
		return ctx.Err()
	}
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pacedKV) Put(ctx context.Context, ks string, k, v []byte, q client.Quorum) (string, error) {
	if err := p.wait(ctx); err != nil {
		return "", err
	}
	return p.fakeStore.Put(ctx, ks, k, v, q)
}

func (p *pacedKV) Get(ctx context.Context, ks string, k []byte, q client.Quorum) (client.KeyValue, error) {
	if err := p.wait(ctx); err != nil {
		return client.KeyValue{}, err
	}
	return p.fakeStore.Get(ctx, ks, k, q)
}

func (p *pacedKV) CompareAndSwap(ctx context.Context, ks string, k []byte, e client.Expect, v []byte) (string, error) {
	if err := p.wait(ctx); err != nil {
		return "", err
	}
	return p.fakeStore.CompareAndSwap(ctx, ks, k, e, v)
}

// openWorkload: 8 clients on 50 keys, half reads, for 4 seconds.
func openWorkload(rate float64) Workload {
	w := testWorkload(raft3)
	w.MaxOps, w.Duration, w.Rate, w.Timeout = 0, 4*time.Second, rate, 5*time.Second
	return w
}

const ms = float64(time.Millisecond)

// A store that stops for a second while 1000 requests a second are due:
// the open loop charges every request due during the stop with the part
// of it that request waited through, while the closed loop, whose
// clients stop sending when the store stops answering, records one slow
// request per client and a p99 that never saw the stop.
func TestOpenLoopCountsTheStall(t *testing.T) {
	const stall = time.Second
	stalling := func() *pacedKV {
		// The 1000th request of the load (after the 50 of the prefill)
		// starts the pause: one second into an open-loop load at 1000/s.
		return &pacedKV{fakeStore: newFakeStore(), service: time.Millisecond, stallAt: 50 + 1000, stall: stall}
	}
	synctest.Test(t, func(t *testing.T) {
		res, err := Run(t.Context(), openWorkload(1000), []KV{stalling()})
		if err != nil {
			t.Fatal(err)
		}
		o := res.OpenLoop
		if o == nil || o.Scheduled != 4000 || o.Sent != 4000 || o.Expired != 0 || res.Ops != 4000 || res.Errors != 0 {
			t.Fatalf("open loop %+v, %d answered, %d failed; want all 4000 scheduled sent and answered", o, res.Ops, res.Errors)
		}
		// About 1000 requests were due during the stop. The 8 clients each
		// took one and waited in the store; the others waited for a client.
		// Those due in its first half waited at least half a second: more
		// than 10% of the 4000, so p90 is at least that; those due in its
		// first 40ms (1% of the run) waited at least 960ms.
		if p := res.Latency; p.P90 < 500 || p.P99 < 960 || p.Max < 999 {
			t.Errorf("open loop: latency %+v ms; want p90 >= 500, p99 >= 960, max about 1000: the stop counted", p)
		}
		// Late: the requests due during the stop but the 8 the clients
		// took, and those due while the clients worked off the backlog
		// (1000 requests at 8000/s, while 1000/s more come due).
		if o.Late < 990 || o.Late > 1300 || o.MaxLateMs < 990 {
			t.Errorf("open loop: %d late, the latest by %.1fms; want about 1130 late, by up to 1s", o.Late, o.MaxLateMs)
		}
		t.Logf("open loop: %d ops, latency %+v ms, %d late", res.Ops, res.Latency, o.Late)
	})
	synctest.Test(t, func(t *testing.T) {
		w := openWorkload(0)
		res, err := Run(t.Context(), w, []KV{stalling()})
		if err != nil {
			t.Fatal(err)
		}
		// Every client waited through the stop once: 8 slow requests among
		// some 24000 leave the percentiles at the service time.
		if p := res.Latency; p.P99 > 1.01 || p.Max < 990 || res.OpenLoop != nil {
			t.Errorf("closed loop: latency %+v ms; want p99 at the 1ms service time, max about 1000", p)
		}
		t.Logf("closed loop: %d ops, latency %+v ms", res.Ops, res.Latency)
	})
}

// Below the store's capacity the schedule is kept exactly: every request
// is sent when due and answered after the service time.
func TestOpenLoopKeepsTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 4 clients at 1ms a request could do 4000/s.
		w := openWorkload(2000)
		w.Clients, w.Duration = 4, 3*time.Second
		res, err := Run(t.Context(), w, []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		o := res.OpenLoop
		if o.Scheduled != 6000 || o.Sent != 6000 || o.Late != 0 || o.Expired != 0 || o.MaxLateMs != 0 || res.Ops != 6000 {
			t.Fatalf("open loop %+v, %d answered: want 6000 sent on time", o, res.Ops)
		}
		if o.TargetRate != 2000 || math.Abs(o.AchievedRate-2000) > 1e-9 || math.Abs(res.OpsPerSecond-2000) > 2000*0.001 {
			t.Errorf("target %.3f/s, achieved %.3f/s, answered %.3f/s; want 2000 each", o.TargetRate, o.AchievedRate, res.OpsPerSecond)
		}
		if p := res.Latency; p.P50 != 1 || p.Max != 1 {
			t.Errorf("latency %+v ms; want the 1ms service time for every request", p)
		}
		if res.Read.Ops+res.Write.Ops != 6000 || res.Read.Ops < 2700 || res.Read.Ops > 3300 || res.Stale.Missed != 0 {
			t.Errorf("%d reads, %d writes, %d stale", res.Read.Ops, res.Write.Ops, res.Stale.Missed)
		}
	})
}

// Above the store's capacity the requests fall behind: every one is still
// sent, at the rate the store allows, and its latency counts from its due
// time, so latencies grow through the run. With a timeout shorter than
// the backlog's wait, they fail instead: each request's deadline counts
// from its due time, so the run still ends within the timeout of the last
// due time.
func TestOpenLoopOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Twice the 4000/s that 4 clients at 1ms each can do.
		w := openWorkload(8000)
		w.Clients, w.Duration = 4, 2*time.Second
		res, err := Run(t.Context(), w, []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		o := res.OpenLoop
		if o.Scheduled != 16000 || o.Sent != 16000 || res.Ops != 16000 || o.Expired != 0 {
			t.Fatalf("open loop %+v, %d answered: want all 16000 sent, late", o, res.Ops)
		}
		// The 16000 took 4s to send: 4000/s achieved; the last waited 2s.
		if math.Abs(o.AchievedRate-4000) > 4000*0.01 || o.Late < 15900 || o.MaxLateMs < 1990 || res.Latency.P99 < 1900 {
			t.Errorf("open loop %+v, latency %+v: want 4000/s achieved, nearly all late, p99 near 2s", o, res.Latency)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		w := openWorkload(8000)
		w.Clients, w.Duration, w.Timeout = 4, 2*time.Second, 500*time.Millisecond
		begin := time.Now()
		res, err := Run(t.Context(), w, []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		o := res.OpenLoop
		timedOut := res.Read.Errors["deadline_exceeded"] + res.Write.Errors["deadline_exceeded"]
		if res.Ops+res.Errors != 16000 || timedOut != res.Errors || timedOut < 5000 || o.MaxLateMs >= 500 {
			t.Fatalf("open loop %+v, %d answered, %d failed (%d deadline_exceeded); want every request answered or timed out",
				o, res.Ops, res.Errors, timedOut)
		}
		// The prefill at 4 clients: 50 keys in 13ms.
		if took := time.Since(begin); took > 2*time.Second+500*time.Millisecond+20*time.Millisecond {
			t.Errorf("the run took %v", took)
		}
	})
}

// A request that found no free client within its timeout of its due time
// is not sent: it fails as deadline_exceeded. That happens when calls
// overrun their deadlines (a client always takes the request due next,
// and an answer within the deadline leaves it in time for that one).
func TestOpenLoopExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := openWorkload(1000)
		w.Timeout = 500 * time.Millisecond
		kv := &pacedKV{fakeStore: newFakeStore(), service: time.Millisecond, stallAt: 50 + 1000, stall: time.Second, lateCtx: true}
		res, err := Run(t.Context(), w, []KV{kv})
		if err != nil {
			t.Fatal(err)
		}
		// The 8 clients are stuck in the store from 0.999s to 2s; the
		// requests due from 1.007s to 1.5s then waited their 500ms out.
		// The 8 stuck ones time out, and perhaps the one due at 1.501s,
		// whose deadline and answer fall on the same instant.
		o := res.OpenLoop
		timedOut := res.Read.Errors["deadline_exceeded"] + res.Write.Errors["deadline_exceeded"]
		if o.Expired < 490 || o.Expired > 500 || o.Sent+o.Expired != 4000 || timedOut < o.Expired+8 || timedOut > o.Expired+9 ||
			res.Ops+res.Errors != 4000 {
			t.Fatalf("open loop %+v, %d answered, %d failed (%d deadline_exceeded); want about 493 expired and the 8 stuck timed out",
				o, res.Ops, res.Errors, timedOut)
		}
		var b bytes.Buffer
		if err := WriteTable(&b, []Result{res}); err != nil || !strings.Contains(b.String(), fmt.Sprintf("raft at 1000/s: %d of 4000 requests never sent", o.Expired)) {
			t.Errorf("table (%v):\n%s", err, b.String())
		}
	})
}

// MaxOps bounds the schedule too.
func TestOpenLoopMaxOps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := openWorkload(1000)
		w.MaxOps = 300
		res, err := Run(t.Context(), w, []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		// 300 requests due over 0.3s: the rate is still 1000/s.
		if o := res.OpenLoop; o.Scheduled != 300 || o.Sent != 300 || math.Abs(o.AchievedRate-1000) > 1e-9 || res.ElapsedSeconds > 0.31 {
			t.Errorf("open loop %+v after %.3fs", o, res.ElapsedSeconds)
		}
	})
}

func TestOpenLoopCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		begin := time.Now()
		_, err := Run(ctx, openWorkload(1000), []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}})
		if !errors.Is(err, context.Canceled) || time.Since(begin) != time.Second {
			t.Fatalf("cancelled run: %v after %v", err, time.Since(begin))
		}
	})
}

func TestScheduleLen(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		d    time.Duration
		want int64
	}{
		{1000, time.Second, 1000},
		{3, time.Second, 3},                // 0, 333ms, 666ms
		{7, time.Second, 7},                // i/7 for i < 7
		{0.5, 10 * time.Second, 5},         // 0, 2, 4, 6, 8s
		{0.001, time.Second, 1},            // the one due at 0
		{1000, 1500 * time.Microsecond, 2}, // 0 and 1ms
		{10, 100*time.Millisecond + 1, 2},  // 0 and 100ms
		{10, 100 * time.Millisecond, 1},    // 0: 100ms is not before 100ms
		{1e6, time.Nanosecond, 1},          // the one due at 0
		{1e6, 1500 * time.Nanosecond, 2},   // 0 and 1µs
		{123.456, 10 * time.Second, 1235},  // 0 .. 1234/123.456 = 9.9955s
		{999_999, time.Second, 999_999},    // i/999999 < 1 for i < 999999
		{1e-3, MaxDuration, 4},             // 0, 1000s, 2000s, 3000s
		{MaxRate, MaxDuration, 3_600_000_000},
	} {
		if got := scheduleLen(tc.rate, tc.d); got != tc.want {
			t.Errorf("scheduleLen(%g, %v) = %d, want %d", tc.rate, tc.d, got, tc.want)
		}
	}
	// Whatever the rounding, the count agrees with the due times: the
	// last is due before d, the next one would not be.
	for _, rate := range []float64{1.0 / 3, 4000.0 / 3, 0.7, 2.5, 333.3, 1e5 / 7, MaxRate} {
		for _, d := range []time.Duration{time.Nanosecond, time.Millisecond, 3 * time.Second, 3*time.Second + 1, time.Hour} {
			n := scheduleLen(rate, d)
			if n < 1 || dueOffset(n-1, rate) >= d || dueOffset(n, rate) < d {
				t.Errorf("scheduleLen(%g, %v) = %d: due times %v and %v", rate, d, n, dueOffset(n-1, rate), dueOffset(n, rate))
			}
		}
	}
}

// Progress is reported while the run goes, in order, and never after Run
// returned.
func TestRunProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []Progress
		returned := false
		w := openWorkload(1000)
		w.Duration, w.Keys = 2*time.Second, 6000 // a prefill of 0.75s at 8 clients
		w.Progress = func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			if returned {
				t.Errorf("progress %+v after Run returned", p)
			}
			got = append(got, p)
		}
		if _, err := Run(t.Context(), w, []KV{&pacedKV{fakeStore: newFakeStore(), service: time.Millisecond}}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		returned = true
		// The prefill: 0.75s, a report at 0.5s; the load: 2s, reports at
		// 0.5, 1, 1.5 (and perhaps 2) seconds.
		if len(got) < 4 || got[0].Phase != PhasePrefill || got[0].Total != 6000 || got[0].Done < 3900 || got[0].Done > 4000 ||
			got[len(got)-1].Phase != PhaseLoad {
			t.Fatalf("progress %+v", got)
		}
		var load []Progress
		for _, p := range got {
			if p.Phase == PhaseLoad {
				load = append(load, p)
			}
		}
		if len(load) < 3 {
			t.Fatalf("%d load reports: %+v", len(load), load)
		}
		first := load[0]
		if first.Total != 2000 || first.Elapsed != ProgressInterval || first.Remaining != 2*time.Second-ProgressInterval ||
			first.Done < 490 || first.Done > 500 || math.Abs(first.OpsPerSecond-float64(first.Done)*2) > 1e-9 || first.Errors != 0 {
			t.Errorf("first load report %+v: want 0.5s in, 1.5s left, about 500 done at 1000/s", first)
		}
		for i := 1; i < len(load); i++ {
			if load[i].Done < load[i-1].Done || load[i].Elapsed <= load[i-1].Elapsed || math.Abs(load[i].OpsPerSecond-1000) > 20 {
				t.Errorf("load reports %+v then %+v", load[i-1], load[i])
			}
		}
	})
}
