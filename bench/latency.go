package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in HDR histograms (Gil Tene's HdrHistogram): a
// fixed amount of memory whatever the number of requests, and every
// percentile within 0.1% of the true value. A run keeps one per kind of
// request (about 170 KiB each at this range and precision), shared by its
// clients under a lock (latencies): recording takes tens of nanoseconds,
// against a millisecond or more per request, so the lock costs nothing
// the clients would notice, while a histogram per client would cost
// half a MiB per client.
const (
	// histMin and histMax bound what a histogram records, in microseconds.
	// A request is bounded by its timeout; slower ones (a timeout of more
	// than histMax) are recorded as histMax.
	histMin = 1
	histMax = int64(10 * time.Minute / time.Microsecond)
	// histDigits: three significant digits, the usual choice.
	histDigits = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

// latencies are a run's histograms, one per kind of request.
type latencies struct {
	mu struct {
		sync.Mutex
		hist [numKinds]*hdrhistogram.Histogram
	}
}

func newLatencies() *latencies {
	l := &latencies{}
	for k := range l.mu.hist {
		l.mu.hist[k] = newHistogram()
	}
	return l
}

// record adds one request's latency.
func (l *latencies) record(k kind, d time.Duration) {
	us := min(max(d.Microseconds(), histMin), histMax)
	l.mu.Lock()
	defer l.mu.Unlock()
	// Within [histMin, histMax] RecordValue cannot fail.
	_ = l.mu.hist[k].RecordValue(us)
}

// summary is the kind's percentiles; call it once the clients are done.
func (l *latencies) summary(k kind) Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	return summarize(l.mu.hist[k])
}

// Latency summarises a histogram in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)),
		P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)),
		Max: ms(h.Max()),
	}
}

// summaryAll is the percentiles of every answered request, whatever its
// kind; call it once the clients are done.
func (l *latencies) summaryAll() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := newHistogram()
	for _, h := range l.mu.hist {
		// Same bounds and precision: Merge drops nothing.
		all.Merge(h)
	}
	return summarize(all)
}
