package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"connectrpc.com/connect"
)

// op sends one request for key (a value of valueBytes for a put, nil
// for a get). worker and seq tell which client sends it and its count,
// for spreading REST requests over the nodes. It must not keep key or
// value.
type op func(ctx context.Context, worker int, seq uint64, key, value []byte) error

// errMiss is an op's answer that the key was not found: an answer, timed
// and counted as one, and counted apart too.
var errMiss = errors.New("versus: key not found")

// load is one closed-loop run: clients goroutines, each sending a request,
// waiting for its answer, then sending the next, for duration.
type load struct {
	op         op
	clients    int
	duration   time.Duration
	keys       int  // keys are chosen uniformly among the first keys
	put        bool // requests carry a value
	valueBytes int
	timeout    time.Duration // per request
	seed       uint64
	pids       []int // the servers whose CPU the run measures
	otherPIDs  []int // the other system's servers, idle meanwhile
}

// runResult is what one run measured.
type runResult struct {
	Ops       int64            `json:"ops"` // answered requests
	Misses    int64            `json:"misses,omitempty"`
	Errors    int64            `json:"errors,omitempty"`
	ErrorKind map[string]int64 `json:"error_kinds,omitempty"`
	FirstErr  string           `json:"first_error,omitempty"`
	Elapsed   time.Duration    `json:"elapsed_ns"`
	CPU       cpuUse           `json:"cpu_ns"`
	hist      *hdrhistogram.Histogram
}

// OpsPerSec is the run's throughput.
func (r runResult) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Latencies are kept in microseconds, 1 µs to histMaxMicros, to three
// significant digits; a slower answer is recorded as histMaxMicros.
const histMaxMicros = int64(time.Minute / time.Microsecond)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, histMaxMicros, 3) }

// errorPause is how long a client waits after a failed request before
// its next: a node that refuses at once must not turn the closed loop
// into a busy loop.
const errorPause = 10 * time.Millisecond

// run runs the load and measures it. Each client keeps its own histogram
// (no lock on the request path); they are merged at the end. A cancelled
// ctx ends the run early with ctx's error.
func (l load) run(ctx context.Context) (runResult, error) {
	type worker struct {
		hist              *hdrhistogram.Histogram
		ops, misses, errs int64
		kinds             map[string]int64
		firstErr          error
	}
	workers := make([]*worker, l.clients)
	before, err := sampleCPU(l.pids, l.otherPIDs)
	if err != nil {
		return runResult{}, err
	}
	begin := time.Now()
	deadline := begin.Add(l.duration)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{hist: newHist(), kinds: map[string]int64{}}
		workers[i] = w
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(l.seed, uint64(i)))
			var value []byte
			for seq := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				key := keyName(rng.IntN(l.keys))
				if l.put {
					value = newValue(rng, l.valueBytes)
				}
				rctx, cancel := context.WithTimeout(ctx, l.timeout)
				start := time.Now()
				err := l.op(rctx, i, seq, key, value)
				took := time.Since(start)
				cancel()
				if err != nil && !errors.Is(err, errMiss) {
					if ctx.Err() != nil {
						return // cancelled: not the server's failure
					}
					w.errs++
					w.kinds[errorKind(err)]++
					if w.firstErr == nil {
						w.firstErr = err
					}
					time.Sleep(errorPause)
					continue
				}
				if err != nil {
					w.misses++
				}
				w.ops++
				_ = w.hist.RecordValue(min(max(took.Microseconds(), 1), histMaxMicros))
			}
		})
	}
	wg.Wait()
	res := runResult{Elapsed: time.Since(begin), ErrorKind: map[string]int64{}, hist: newHist()}
	if err := ctx.Err(); err != nil {
		return runResult{}, err
	}
	after, err := sampleCPU(l.pids, l.otherPIDs)
	if err != nil {
		return runResult{}, err
	}
	res.CPU = before.until(after)
	for _, w := range workers {
		res.Ops += w.ops
		res.Misses += w.misses
		res.Errors += w.errs
		for k, n := range w.kinds {
			res.ErrorKind[k] += n
		}
		if w.firstErr != nil && res.FirstErr == "" {
			res.FirstErr = w.firstErr.Error()
		}
		res.hist.Merge(w.hist)
	}
	return res, nil
}

// keyName is the benchmark's key i, the same in both systems: "k" and 7
// digits.
func keyName(i int) []byte {
	b := make([]byte, 0, 8)
	b = append(b, 'k')
	s := strconv.Itoa(i)
	for range 7 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// newValue returns n random printable bytes: a new value per request,
// so that no request is a repeat of the last and nothing compresses it
// away.
func newValue(rng *rand.Rand, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return b
}

// errorKind names an error's kind for the counts: a gRPC or Connect code,
// an HTTP status, a deadline, or "other".
func errorKind(err error) string {
	var he *httpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.As(err, &he):
		return fmt.Sprintf("http_%d", he.status)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String()
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return "grpc_" + s.Code().String()
	}
	return "other"
}
