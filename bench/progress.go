package bench

import (
	"sync"
	"time"
)

// ProgressInterval is how often a run reports its progress (Workload.
// Progress): often enough for a person watching a terminal, rarely
// enough that reading a few counters costs nothing.
const ProgressInterval = 500 * time.Millisecond

// Progress is a run's state at a moment, for a person to watch.
type Progress struct {
	// Phase is PhasePrefill or PhaseLoad.
	Phase string
	// Elapsed is the time since the phase began. Remaining is what is
	// left of the load's Duration: 0 in the prefill, and once Duration
	// has passed while the last requests finish.
	Elapsed, Remaining time.Duration
	// Done counts keys written (prefill) or requests finished, answered
	// or failed (load), so far.
	Done int64
	// Total is the keys to write (prefill), or the requests the load will
	// finish: scheduled ones (open loop) or MaxOps; 0 when only Duration
	// bounds the load.
	Total int64
	// Errors counts the load's failed requests so far.
	Errors int64
	// OpsPerSecond is Done's growth per second since the last report.
	OpsPerSecond float64
}

// Phases of a run, as Progress names them.
const (
	PhasePrefill = "prefill"
	PhaseLoad    = "load"
)

// reporter calls a workload's Progress every ProgressInterval from a
// goroutine of its own, until stop.
type reporter struct {
	stopc chan struct{}
	done  sync.WaitGroup
}

// startReporter reports snap's progress (with Elapsed and OpsPerSecond
// filled in) to w.Progress; with no Progress it does nothing.
func startReporter(w *Workload, snap func() Progress) *reporter {
	r := &reporter{stopc: make(chan struct{})}
	if w.Progress == nil {
		return r
	}
	begin := time.Now()
	r.done.Go(func() {
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		var lastDone int64
		last := begin
		for {
			select {
			case <-r.stopc:
				return
			case now := <-t.C:
				p := snap()
				p.Elapsed = now.Sub(begin)
				if secs := now.Sub(last).Seconds(); secs > 0 {
					p.OpsPerSecond = float64(p.Done-lastDone) / secs
				}
				lastDone, last = p.Done, now
				w.Progress(p)
			}
		}
	})
	return r
}

// stop ends the reports and waits for the last one to return: Progress
// is not called after stop.
func (r *reporter) stop() {
	close(r.stopc)
	r.done.Wait()
}
