package bench

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/client"
)

// Run runs the workload (after WithDefaults) through kvs, and measures it:
//
//  1. Prefill: every key is written once, with the keyspace's default
//     quorum, so that reads find values; not timed.
//  2. Load: Clients goroutines, each sending one request at a time, the
//     j-th request of client i through kvs[(i+j) % len(kvs)], until
//     Duration has passed or MaxOps requests were sent. Requests in
//     flight at the end are waited for. In a closed loop (Rate 0) a
//     client sends its next request when the last one is answered; in
//     an open loop it sends the schedule's next request when that is due
//     (see Workload.Rate and LateAfter).
//  3. Check: the reads against the acknowledged writes (MissedAcks), and
//     for eventual keyspaces the server's counters after Settle.
//
// Cancelling ctx stops the run early; Run then returns the context's
// error and no result. Run keeps kvs only while it runs.
func Run(ctx context.Context, w Workload, kvs []KV) (Result, error) {
	w = w.WithDefaults()
	if err := w.Validate(); err != nil {
		return Result{}, err
	}
	if len(kvs) == 0 {
		return Result{}, errors.New("bench: no client to send requests through")
	}
	begin := time.Now()
	sh := &shared{latencies: newLatencies()}
	sh.budget.Store(int64(w.MaxOps))
	if w.CASFraction > 0 {
		sh.versions.enable(w.Keys)
	}
	workers := make([]*worker, w.Clients)
	for i := range workers {
		workers[i] = newWorker(i, &w, kvs, begin, sh)
	}
	if err := prefill(ctx, workers); err != nil {
		return Result{}, err
	}
	prefillTime := time.Since(begin)

	var probe *serverProbe
	if w.Keyspace.Mode == ModeEventual && len(w.MetricsEndpoints) > 0 {
		probe = startServerProbe(ctx, &w)
	}
	ld := load(ctx, &w, workers)
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("bench: run on keyspace %s stopped before its end: %w", w.Keyspace.Name, context.Cause(ctx))
	}

	res := newResult(&w, workers, sh.latencies, prefillTime, ld.elapsed)
	if ld.sched != nil {
		res.OpenLoop = newOpenLoop(ld.sched, workers)
	}
	var err error
	if res.Stale, err = checkStale(workers); err != nil {
		return Result{}, fmt.Errorf("bench: keyspace %s: stale-read check: %w", w.Keyspace.Name, err)
	}
	if probe != nil {
		if res.Server, err = probe.finish(ctx); err != nil {
			return Result{}, fmt.Errorf("bench: run on keyspace %s stopped before its end: %w", w.Keyspace.Name, err)
		}
	}
	return res, nil
}

// loaded is what load did.
type loaded struct {
	// elapsed is until the last request was answered.
	elapsed time.Duration
	// sched is the open loop's schedule (nil in a closed loop).
	sched *schedule
}

// load runs the workers, in a closed loop until Duration has passed, or
// in an open one until the schedule's requests were all sent, and waits
// for their last answers.
func load(ctx context.Context, w *Workload, workers []*worker) loaded {
	start := time.Now()
	sh := workers[0].sh
	var ld loaded
	run := func(wk *worker) { wk.load(ctx, start.Add(w.Duration)) }
	total := int64(w.MaxOps)
	if w.Rate > 0 {
		ld.sched = newSchedule(start, w)
		run = func(wk *worker) { wk.loadOpen(ctx, ld.sched) }
		total = ld.sched.n
	}
	rep := startReporter(w, func() Progress {
		return Progress{Phase: PhaseLoad, Remaining: max(0, time.Until(start.Add(w.Duration))),
			Done: sh.finished.Load(), Total: total, Errors: sh.errors.Load()}
	})
	defer rep.stop()
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Go(func() { run(wk) })
	}
	wg.Wait()
	ld.elapsed = time.Since(start)
	return ld
}

// checkStale checks the workers' reads against their acknowledged writes.
func checkStale(workers []*worker) (StaleCheck, error) {
	var acks []Ack
	var reads []Read
	for _, wk := range workers {
		acks = append(acks, wk.acks...)
		reads = append(reads, wk.reads...)
	}
	return MissedAcks(acks, reads)
}

// serverProbe reads the server's staleness counters before and after a
// run. A node whose /metrics cannot be read spoils the measure, not the
// run: the result says why the measure is missing.
type serverProbe struct {
	w      *Workload
	hc     *http.Client
	before wrnCounters
	err    error
}

func startServerProbe(ctx context.Context, w *Workload) *serverProbe {
	p := &serverProbe{w: w, hc: &http.Client{Timeout: w.Timeout}}
	if w.TLS != nil {
		p.hc.Transport = &http.Transport{TLSClientConfig: w.TLS}
	}
	p.before, p.err = readWRNCounters(ctx, p.hc, w.MetricsEndpoints, w.Keyspace.Name, w.TLS != nil)
	return p
}

// finish waits for Settle, then reads the counters again. Its error is
// only ctx's.
func (p *serverProbe) finish(ctx context.Context) (*ServerStaleness, error) {
	if err := sleep(ctx, p.w.Settle); err != nil {
		return nil, err
	}
	var after wrnCounters
	if p.err == nil {
		after, p.err = readWRNCounters(ctx, p.hc, p.w.MetricsEndpoints, p.w.Keyspace.Name, p.w.TLS != nil)
	}
	if p.err != nil {
		return &ServerStaleness{Error: p.err.Error()}, nil
	}
	s := serverDelta(p.before, after)
	return &s, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// shared is the state the clients of one run share.
type shared struct {
	// budget is the requests left to send when Workload.MaxOps is set.
	budget atomic.Int64
	// checked counts the acks and reads kept for the staleness check,
	// up to MaxCheckedOps.
	checked atomic.Int64
	// versions is the latest version seen per key, which compare-and-swaps
	// expect (only with CASFraction > 0).
	versions versionBook
	// latencies of the answered requests.
	latencies *latencies
	// prefilled, finished and errors count keys written by the prefill,
	// requests of the load answered or failed, and those failed, for
	// progress reports while the run goes on.
	prefilled, finished, errors atomic.Int64
}

// versionBook keeps a recently seen version of every key: a compare-and-
// swap expecting it succeeds unless another write came in between, as in
// an application that read the key first. A run without compare-and-swaps
// leaves it disabled, and its clients then never take its lock.
type versionBook struct {
	enabled bool // set before the clients start, read-only after
	mu      struct {
		sync.Mutex
		latest []string // by key index; "" when none was seen
	}
}

func (b *versionBook) enable(keys int) {
	b.enabled = true
	b.mu.latest = make([]string, keys)
}

func (b *versionBook) get(key int) string {
	if !b.enabled {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.latest[key]
}

func (b *versionBook) set(key int, v string) {
	if !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.latest[key] = v
}

// kind is a kind of request.
type kind int

const (
	kindRead kind = iota
	kindWrite
	kindCAS
	numKinds
)

var kindNames = [numKinds]string{"read", "write", "cas"}

// maxFirstErrors is how many request errors a run keeps for people.
const maxFirstErrors = 3

// tagBytes is the size of the tag that starts every value: the client and
// its sequence number in hex, unique within a run.
const tagBytes = 16

// worker is one client, closed-loop or open-loop. Only its goroutine
// touches it until the run's WaitGroup says it is done.
type worker struct {
	id    int
	w     *Workload
	kvs   []KV
	begin time.Time // the origin of Ack.At and Read.Sent
	sh    *shared
	rng   *rand.Rand
	sent  int    // requests sent: picks the next endpoint
	seq   uint64 // values written: makes each unique
	value []byte // reused for every write once the call returned
	key   []byte // likewise

	stats     [numKinds]OpStats
	open      openStats // open loop only
	acks      []Ack
	reads     []Read
	firstErrs []string
}

func newWorker(id int, w *Workload, kvs []KV, begin time.Time, sh *shared) *worker {
	wk := &worker{id: id, w: w, kvs: kvs, begin: begin, sh: sh,
		rng:   rand.New(rand.NewPCG(w.Seed, uint64(id))),
		value: make([]byte, w.ValueSize)}
	for i := range wk.value {
		wk.value[i] = byte('a' + i%26)
	}
	return wk
}

// prefill has every worker write its share of the keys (key i goes to
// worker i mod Clients), and stops them all at the first failure.
func prefill(ctx context.Context, workers []*worker) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w, sh := workers[0].w, workers[0].sh
	rep := startReporter(w, func() Progress {
		return Progress{Phase: PhasePrefill, Done: sh.prefilled.Load(), Total: int64(w.Keys)}
	})
	defer rep.stop()
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Go(func() {
			for key := wk.id; key < wk.w.Keys && ctx.Err() == nil; key += len(workers) {
				if err := wk.prefillKey(ctx, key); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("bench: prefill of keyspace %s: %w", workers[0].w.Keyspace.Name, err)
	}
	return nil
}

func (wk *worker) prefillKey(ctx context.Context, key int) error {
	rctx, cancel := context.WithTimeout(ctx, wk.w.Timeout)
	defer cancel()
	v, err := wk.next().Put(rctx, wk.w.Keyspace.Name, wk.keyBytes(key), wk.nextValue(), client.Quorum{})
	if err != nil {
		return fmt.Errorf("key %s: %w", wk.keyBytes(key), err)
	}
	wk.acked(key, time.Since(wk.begin), v)
	wk.sh.prefilled.Add(1)
	return nil
}

// load sends requests in a closed loop until the deadline, the request
// budget or ctx ends.
func (wk *worker) load(ctx context.Context, deadline time.Time) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if wk.w.MaxOps > 0 && wk.sh.budget.Add(-1) < 0 {
			return
		}
		k, key := wk.pick()
		wk.send(ctx, k, key, time.Now())
	}
}

// pick chooses the next request's kind and key.
func (wk *worker) pick() (kind, int) {
	w := wk.w
	key := wk.rng.IntN(w.Keys)
	switch x := wk.rng.Float64(); {
	case x < w.ReadFraction:
		return kindRead, key
	case x < w.ReadFraction+w.CASFraction:
		return kindCAS, key
	}
	return kindWrite, key
}

// send sends a request and measures its latency from start: when it was
// sent (closed loop) or due (open loop). Its Timeout counts from start
// too.
func (wk *worker) send(ctx context.Context, k kind, key int, start time.Time) {
	switch k {
	case kindRead:
		wk.read(ctx, key, start)
	case kindCAS:
		wk.cas(ctx, key, start)
	default:
		wk.put(ctx, key, start)
	}
}

func (wk *worker) read(ctx context.Context, key int, start time.Time) {
	rctx, cancel := context.WithDeadline(ctx, start.Add(wk.w.Timeout))
	defer cancel()
	sent := time.Since(wk.begin) // before the request: never later than it
	kv, err := wk.next().Get(rctx, wk.w.Keyspace.Name, wk.keyBytes(key), client.Quorum{R: wk.w.Quorum.R})
	lat := time.Since(start)
	switch {
	case errors.Is(err, client.ErrNotFound):
		wk.answered(kindRead, lat)
		wk.stats[kindRead].NotFound++
		wk.keepRead(Read{Key: key, Sent: sent})
	case err != nil:
		wk.failed(ctx, kindRead, err)
	default:
		wk.answered(kindRead, lat)
		wk.keepRead(Read{Key: key, Sent: sent, Version: kv.Version})
		wk.sh.versions.set(key, kv.Version)
	}
}

func (wk *worker) put(ctx context.Context, key int, start time.Time) {
	rctx, cancel := context.WithDeadline(ctx, start.Add(wk.w.Timeout))
	defer cancel()
	v, err := wk.next().Put(rctx, wk.w.Keyspace.Name, wk.keyBytes(key), wk.nextValue(), client.Quorum{W: wk.w.Quorum.W})
	lat := time.Since(start)
	at := time.Since(wk.begin) // after the ack: never earlier than it
	if err != nil {
		wk.failed(ctx, kindWrite, err)
		return
	}
	wk.answered(kindWrite, lat)
	wk.acked(key, at, v)
}

// cas swaps in a new value if the key is still at the version last seen
// (or absent, when none was).
func (wk *worker) cas(ctx context.Context, key int, start time.Time) {
	expect := client.Expect{Absent: true}
	if v := wk.sh.versions.get(key); v != "" {
		expect = client.Expect{Version: v}
	}
	rctx, cancel := context.WithDeadline(ctx, start.Add(wk.w.Timeout))
	defer cancel()
	v, err := wk.next().CompareAndSwap(rctx, wk.w.Keyspace.Name, wk.keyBytes(key), expect, wk.nextValue())
	lat := time.Since(start)
	at := time.Since(wk.begin)
	switch {
	case errors.Is(err, client.ErrConditionFailed):
		wk.answered(kindCAS, lat)
		wk.stats[kindCAS].Conflicts++
	case err != nil:
		wk.failed(ctx, kindCAS, err)
	default:
		wk.answered(kindCAS, lat)
		wk.acked(key, at, v)
	}
}

// next is the client the next request goes through.
func (wk *worker) next() KV {
	kv := wk.kvs[(wk.id+wk.sent)%len(wk.kvs)]
	wk.sent++
	return kv
}

func (wk *worker) keyBytes(key int) []byte {
	wk.key = fmt.Appendf(wk.key[:0], "%sk%07d", wk.w.KeyPrefix, key)
	return wk.key
}

// nextValue tags the value buffer with the worker and the next sequence
// number.
func (wk *worker) nextValue() []byte {
	var tag [8]byte
	binary.BigEndian.PutUint64(tag[:], uint64(wk.id)<<48|wk.seq)
	wk.seq++
	hex.Encode(wk.value[:tagBytes], tag[:])
	return wk.value
}

func (wk *worker) answered(k kind, lat time.Duration) {
	wk.stats[k].Ops++
	wk.sh.latencies.record(k, lat)
	wk.sh.finished.Add(1)
}

// failed counts a failed request, unless the run itself was stopped.
func (wk *worker) failed(ctx context.Context, k kind, err error) {
	if ctx.Err() != nil {
		return
	}
	wk.sh.finished.Add(1)
	wk.sh.errors.Add(1)
	s := &wk.stats[k]
	if s.Errors == nil {
		s.Errors = make(map[string]int64)
	}
	s.Errors[errorKind(err)]++
	if len(wk.firstErrs) < maxFirstErrors {
		wk.firstErrs = append(wk.firstErrs, fmt.Sprintf("%s: %v", kindNames[k], err))
	}
}

// errorKind names a failure: the Connect code, or no_node when the client
// found no endpoint that could serve.
func errorKind(err error) string {
	switch {
	case errors.Is(err, client.ErrNoNode):
		return "no_node"
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded.String()
	}
	return connect.CodeOf(err).String()
}

// acked keeps an acknowledged write for the staleness check.
func (wk *worker) acked(key int, at time.Duration, version string) {
	wk.sh.versions.set(key, version)
	if wk.sh.checked.Add(1) <= MaxCheckedOps {
		wk.acks = append(wk.acks, Ack{Key: key, At: at, Version: version})
	}
}

func (wk *worker) keepRead(r Read) {
	if wk.sh.checked.Add(1) <= MaxCheckedOps {
		wk.reads = append(wk.reads, r)
	}
}

// newResult merges the workers' counts, with the run's latencies.
func newResult(w *Workload, workers []*worker, lat *latencies, prefill, elapsed time.Duration) Result {
	wq, rq := w.effectiveQuorum()
	res := Result{
		Keyspace: w.Keyspace.Name, Mode: w.Keyspace.Mode, N: w.Keyspace.Replicas, W: wq, R: rq,
		Clients: w.Clients, Keys: w.Keys, ValueSize: w.ValueSize,
		ReadFraction: w.ReadFraction, CASFraction: w.CASFraction, Seed: w.Seed, DurationSeconds: w.Duration.Seconds(),
		PrefillSeconds: prefill.Seconds(), ElapsedSeconds: elapsed.Seconds(),
	}
	var stats [numKinds]OpStats
	for _, wk := range workers {
		for k := range numKinds {
			s := &stats[k]
			s.Ops += wk.stats[k].Ops
			s.NotFound += wk.stats[k].NotFound
			s.Conflicts += wk.stats[k].Conflicts
			for code, n := range wk.stats[k].Errors {
				if s.Errors == nil {
					s.Errors = make(map[string]int64)
				}
				s.Errors[code] += n
			}
		}
		for _, e := range wk.firstErrs {
			if len(res.FirstErrors) < maxFirstErrors {
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
	}
	for k := range numKinds {
		stats[k].Latency = lat.summary(k)
		res.Ops += stats[k].Ops
		res.Errors += stats[k].failed()
	}
	res.Latency = lat.summaryAll()
	res.Read, res.Write, res.CAS = stats[kindRead], stats[kindWrite], stats[kindCAS]
	if secs := elapsed.Seconds(); secs > 0 {
		res.OpsPerSecond = float64(res.Ops) / secs
	}
	return res
}
