package server

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The console's live figures come from the node's own Prometheus
// registry: each request for them gathers the registry and keeps the
// result in a small ring of samples (at most one a second), and a rate
// is the difference between now and the oldest sample of the last
// rateWindowMax, which must be at least rateWindowMin old. No goroutine
// samples in the background: a node nobody watches does no work for the
// console, and its first answer after a silence has no rates yet ("—").
const (
	// rateWindowMin: a shorter window would divide a handful of
	// requests by a few milliseconds.
	rateWindowMin = time.Second
	// rateWindowMax: a longer one would show as "live" a rate from
	// minutes ago.
	rateWindowMax = 10 * time.Second
	// sampleRingSize bounds the samples kept: one a second at most, so
	// 16 cover rateWindowMax.
	sampleRingSize = 16
)

// Metric names the console reads (registered by kv/metrics).
const (
	metricRequestDuration = "quorumkv_request_duration_seconds"
	metricWRNReads        = "quorumkv_wrn_reads_total"
	metricWRNStaleReads   = "quorumkv_wrn_stale_reads_total"
)

// keyspaceCounters are one keyspace's cumulative counters in a sample.
type keyspaceCounters struct {
	requests, errors float64
	// bounds are the latency histogram's upper bounds (seconds) and
	// buckets the cumulative counts at each, summed over operations and
	// results.
	bounds  []float64
	buckets []float64
	reads   float64 // eventual reads answered
	stale   float64 // of those, stale
}

type sample struct {
	at        time.Time
	keyspaces map[string]*keyspaceCounters
}

// sampler keeps the ring of samples of one registry.
type sampler struct {
	gatherer prometheus.Gatherer
	mu       struct {
		sync.Mutex
		ring []sample // oldest first
	}
}

// Figures are live figures over a window: rates per second, latency
// quantiles in seconds. Known is false when there was no sample to
// compare with (the first look at a node after a silence).
type Figures struct {
	Known          bool    `json:"known"`
	WindowSeconds  float64 `json:"window_seconds,omitempty"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	ErrorsPerSec   float64 `json:"errors_per_sec"`
	// P50Seconds and P99Seconds are estimated from the histogram's
	// buckets as Prometheus's histogram_quantile does; 0 with no request
	// in the window.
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
	// ReadsPerSec and StaleReadsPerSec: eventual keyspaces' reads.
	ReadsPerSec      float64 `json:"reads_per_sec,omitempty"`
	StaleReadsPerSec float64 `json:"stale_reads_per_sec,omitempty"`
	// Totals since the node started, known even without a window.
	TotalRequests float64 `json:"total_requests"`
	TotalErrors   float64 `json:"total_errors"`
	// WindowRequests, Bounds and Deltas are the requests of the window
	// and their histogram (cumulative counts at each upper bound, in
	// seconds), for the console to merge nodes' quantiles.
	WindowRequests float64   `json:"window_requests,omitempty"`
	Bounds         []float64 `json:"bucket_bounds,omitempty"`
	Deltas         []float64 `json:"bucket_counts,omitempty"`
}

// gather reads the registry into a sample.
func (s *sampler) gather(now time.Time) (sample, error) {
	out := sample{at: now, keyspaces: map[string]*keyspaceCounters{}}
	if s.gatherer == nil {
		return out, nil
	}
	families, err := s.gatherer.Gather()
	if err != nil {
		return out, err
	}
	get := func(ks string) *keyspaceCounters {
		c, ok := out.keyspaces[ks]
		if !ok {
			c = &keyspaceCounters{}
			out.keyspaces[ks] = c
		}
		return c
	}
	for _, f := range families {
		switch f.GetName() {
		case metricRequestDuration:
			for _, m := range f.GetMetric() {
				h := m.GetHistogram()
				c := get(label(m, "keyspace"))
				n := float64(h.GetSampleCount())
				c.requests += n
				if label(m, "result") != "ok" {
					c.errors += n
				}
				addBuckets(c, h)
			}
		case metricWRNReads:
			for _, m := range f.GetMetric() {
				get(label(m, "keyspace")).reads += m.GetCounter().GetValue()
			}
		case metricWRNStaleReads:
			for _, m := range f.GetMetric() {
				get(label(m, "keyspace")).stale += m.GetCounter().GetValue()
			}
		}
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addBuckets adds h's cumulative bucket counts to c's (every series of
// the histogram has the same bounds).
func addBuckets(c *keyspaceCounters, h *dto.Histogram) {
	bs := h.GetBucket()
	if c.bounds == nil {
		for _, b := range bs {
			c.bounds = append(c.bounds, b.GetUpperBound())
		}
		c.buckets = make([]float64, len(bs))
	}
	for i, b := range bs {
		if i < len(c.buckets) {
			c.buckets[i] += float64(b.GetCumulativeCount())
		}
	}
}

// figures gathers the registry, keeps the sample, and returns the
// figures of every keyspace and their sum ("" key is not used: the sum
// is returned apart).
func (s *sampler) figures(now time.Time) (map[string]Figures, Figures, error) {
	cur, err := s.gather(now)
	if err != nil {
		return nil, Figures{}, err
	}
	base, ok := s.keep(cur)
	out := map[string]Figures{}
	total := &keyspaceCounters{}
	totalBase := &keyspaceCounters{}
	for ks, c := range cur.keyspaces {
		var b *keyspaceCounters
		if ok {
			b = base.keyspaces[ks]
			if b == nil {
				b = &keyspaceCounters{}
			}
			sumInto(totalBase, b)
		}
		sumInto(total, c)
		out[ks] = rates(c, b, ok, cur.at.Sub(base.at))
	}
	var tb *keyspaceCounters
	if ok {
		tb = totalBase
	}
	return out, rates(total, tb, ok, cur.at.Sub(base.at)), nil
}

// keep adds cur to the ring (if the newest is a second old) and returns
// the sample to compare it with, if one is in the window.
func (s *sampler) keep(cur sample) (sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var base sample
	found := false
	for _, old := range s.mu.ring {
		age := cur.at.Sub(old.at)
		if age <= rateWindowMax && age >= rateWindowMin {
			base, found = old, true
			break
		}
	}
	if n := len(s.mu.ring); n == 0 || cur.at.Sub(s.mu.ring[n-1].at) >= rateWindowMin {
		s.mu.ring = append(s.mu.ring, cur)
		if len(s.mu.ring) > sampleRingSize {
			s.mu.ring = s.mu.ring[len(s.mu.ring)-sampleRingSize:]
		}
	}
	return base, found
}

func sumInto(dst, src *keyspaceCounters) {
	dst.requests += src.requests
	dst.errors += src.errors
	dst.reads += src.reads
	dst.stale += src.stale
	if dst.bounds == nil && src.bounds != nil {
		dst.bounds = src.bounds
		dst.buckets = make([]float64, len(src.buckets))
	}
	for i := range src.buckets {
		if i < len(dst.buckets) {
			dst.buckets[i] += src.buckets[i]
		}
	}
}

// rates compares cur with base (nil: no window).
func rates(cur, base *keyspaceCounters, known bool, window time.Duration) Figures {
	f := Figures{TotalRequests: cur.requests, TotalErrors: cur.errors}
	if !known || base == nil || window <= 0 {
		return f
	}
	sec := window.Seconds()
	f.Known, f.WindowSeconds = true, sec
	// A counter that went down was reset (the node restarted between
	// samples cannot happen here, but a series can be new): count from 0.
	d := func(c, b float64) float64 {
		if c < b {
			return c
		}
		return c - b
	}
	f.RequestsPerSec = d(cur.requests, base.requests) / sec
	f.ErrorsPerSec = d(cur.errors, base.errors) / sec
	f.ReadsPerSec = d(cur.reads, base.reads) / sec
	f.StaleReadsPerSec = d(cur.stale, base.stale) / sec
	if len(cur.bounds) > 0 {
		delta := make([]float64, len(cur.buckets))
		for i := range cur.buckets {
			var b float64
			if i < len(base.buckets) {
				b = base.buckets[i]
			}
			delta[i] = d(cur.buckets[i], b)
		}
		count := d(cur.requests, base.requests)
		f.WindowRequests, f.Bounds, f.Deltas = count, cur.bounds, delta
		f.P50Seconds = quantile(0.5, cur.bounds, delta, count)
		f.P99Seconds = quantile(0.99, cur.bounds, delta, count)
	}
	return f
}

// quantile estimates the q-quantile from cumulative bucket counts with
// upper bounds bounds and count observations in all (the +Inf bucket),
// interpolating linearly inside a bucket as histogram_quantile does. An
// answer in the +Inf bucket is the highest finite bound.
func quantile(q float64, bounds, cumulative []float64, count float64) float64 {
	if count <= 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * count
	i := sort.Search(len(cumulative), func(i int) bool { return cumulative[i] >= rank })
	if i == len(cumulative) {
		return bounds[len(bounds)-1]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = bounds[i-1], cumulative[i-1]
	}
	in := cumulative[i] - below
	if in <= 0 {
		return bounds[i]
	}
	v := lo + (bounds[i]-lo)*(rank-below)/in
	if math.IsNaN(v) {
		return 0
	}
	return v
}
