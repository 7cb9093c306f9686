package bench

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// An open-loop run sends requests on a schedule instead of as fast as
// its clients get answers. A closed loop measures a request from when a
// client sent it; when the cluster stalls, its clients stall with it and
// send nothing, so the stall shows as one slow request per client, while
// the users a real service has would have kept arriving and queued
// (coordinated omission: the load generator coordinates with the system
// it measures and omits the samples that would have been bad). The open
// loop fixes each request's due time in advance and measures it from
// there, so every request due during a stall carries the part of the
// stall it waited through.
//
// The clients share the schedule: each takes the next request from it,
// waits for its due time if that is still ahead, and sends it. When all
// Clients are busy at a due time, the request waits for the first one
// free (it is late), and its latency counts that wait. Clients is thus
// the most requests in flight, as a connection pool would be. (The one
// delay not counted is the client's own timer's, see LateAfter.)
//
// A request's Timeout counts from its due time too, as a caller's
// deadline would: under overload the requests wait longer and longer for
// a client until they fail as deadline_exceeded, and the run ends at
// most Timeout after Duration. A request that found no free client
// within its Timeout is not sent (Expired): that takes a call that
// overran its deadline, or a load generator short of CPU, since a client
// answered within its deadline is free in time for the request due next.

// LateAfter is how long after its due time a request may be sent before
// it counts as late. It covers the wake-up of a client sleeping until the
// due time: Go's timers on Linux wake up to about a millisecond late
// (measured on a shared 2-core machine: 0.55ms at the median, 1.1ms at
// p99), and twice that leaves room for a busy moment. Later than this,
// every client was busy at the due time, or the load generator was short
// of CPU.
//
// A request whose client was free and waiting for its due time, and sent
// it within LateAfter, is measured from when it was sent: that delay is
// the load generator's timer, not the cluster, and would otherwise add
// half a millisecond to every latency. Every other request is measured
// from its due time.
const LateAfter = 2 * time.Millisecond

// errExpired fails a request that waited out its timeout for a client.
var errExpired = fmt.Errorf("bench: not sent: every client was busy until the timeout of its due time had passed: %w",
	context.DeadlineExceeded)

// schedule is an open-loop run's due times: request i at start + i/rate,
// for the n requests due within the load's duration (and MaxOps).
type schedule struct {
	start time.Time
	rate  float64 // requests per second
	n     int64
	// next is the next request to take; the clients share it.
	next atomic.Int64
}

func newSchedule(start time.Time, w *Workload) *schedule {
	n := scheduleLen(w.Rate, w.Duration)
	if w.MaxOps > 0 {
		n = min(n, int64(w.MaxOps))
	}
	return &schedule{start: start, rate: w.Rate, n: n}
}

// dueOffset is when request i is due, after the start.
func dueOffset(i int64, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// scheduleLen counts the requests due before d: those i >= 0 with
// dueOffset(i) < d. The estimate from the product is corrected against
// dueOffset itself, so that the two never disagree by a rounding.
func scheduleLen(rate float64, d time.Duration) int64 {
	n := int64(math.Ceil(rate * d.Seconds()))
	for n > 0 && dueOffset(n-1, rate) >= d {
		n--
	}
	for dueOffset(n, rate) < d {
		n++
	}
	return n
}

// take hands out the next request and its due time; false once all n
// were taken.
func (s *schedule) take() (time.Time, bool) {
	i := s.next.Add(1) - 1
	if i >= s.n {
		return time.Time{}, false
	}
	return s.start.Add(dueOffset(i, s.rate)), true
}

// openStats is one client's share of an open-loop run.
type openStats struct {
	sent, late, expired int64
	maxLate             time.Duration
	lastSent            time.Time
}

// loadOpen sends the schedule's requests, each at its due time or as soon
// after it as this client is free, until the schedule or ctx ends.
func (wk *worker) loadOpen(ctx context.Context, s *schedule) {
	for ctx.Err() == nil {
		due, ok := s.take()
		if !ok {
			return
		}
		wait := time.Until(due)
		if err := sleep(ctx, wait); err != nil {
			return
		}
		k, key := wk.pick()
		now := time.Now()
		lateBy := now.Sub(due)
		if lateBy >= wk.w.Timeout {
			wk.open.expired++
			wk.failed(ctx, k, errExpired)
			continue
		}
		wk.open.sent++
		wk.open.lastSent = now
		wk.open.maxLate = max(wk.open.maxLate, lateBy)
		start := due
		switch {
		case lateBy > LateAfter:
			wk.open.late++
		case wait > 0:
			start = now // the timer's delay, not the cluster's (LateAfter)
		}
		wk.send(ctx, k, key, start)
	}
}

// OpenLoop is what an open-loop run did with its schedule.
type OpenLoop struct {
	// TargetRate is the schedule's requests per second (Workload.Rate).
	TargetRate float64 `json:"target_rate"`
	// Scheduled counts the requests due within the run's duration (and
	// its request bound); each was answered, failed, or never sent.
	Scheduled int64 `json:"scheduled"`
	// Sent counts the requests sent. AchievedRate is Sent per second over
	// the schedule's span (Scheduled / TargetRate), or until the last was
	// sent if that was later: below TargetRate when the requests fell
	// behind their due times for good.
	Sent         int64   `json:"sent"`
	AchievedRate float64 `json:"achieved_rate"`
	// Late counts requests sent more than LateAfter after they were due:
	// every client was busy then (or the load generator was short of
	// CPU). Their latency includes the wait. MaxLateMs is the longest
	// such wait, in milliseconds.
	Late      int64   `json:"late"`
	MaxLateMs float64 `json:"max_late_ms"`
	// Expired counts requests never sent: no client was free within
	// their timeout of their due time (calls overran their deadlines, or
	// the load generator was short of CPU). They are counted as
	// deadline_exceeded errors too.
	Expired int64 `json:"expired"`
}

// newOpenLoop merges the clients' shares of schedule s.
func newOpenLoop(s *schedule, workers []*worker) *OpenLoop {
	o := &OpenLoop{TargetRate: s.rate, Scheduled: s.n}
	var maxLate time.Duration
	span := dueOffset(s.n, s.rate)
	for _, wk := range workers {
		o.Sent += wk.open.sent
		o.Late += wk.open.late
		o.Expired += wk.open.expired
		maxLate = max(maxLate, wk.open.maxLate)
		if wk.open.sent > 0 {
			span = max(span, wk.open.lastSent.Sub(s.start))
		}
	}
	o.MaxLateMs = float64(maxLate) / float64(time.Millisecond)
	if span > 0 {
		o.AchievedRate = float64(o.Sent) / span.Seconds()
	}
	return o
}
