package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// pebbleLogger adapts a *slog.Logger to pebble.Logger.
//
// It is quiet: Pebble's Infof lines (WAL recovery, table stats loaded, ...)
// go to Debug, so a healthy node logs nothing from Pebble at Info.
//
// Fatalf logs at Error and panics. Pebble calls it when it cannot go on, for
// example when writing or syncing the WAL failed: retrying an fsync after a
// failure is unsafe (the kernel may have dropped the dirty pages,
// "fsyncgate"), so the only correct recovery is a restart that replays the
// WAL. Library code does not exit the process (STYLE.md §4); the panic
// reaches main, which does.
type pebbleLogger struct {
	l *slog.Logger
}

var _ pebble.Logger = pebbleLogger{}

// Infof implements pebble.Logger.
func (p pebbleLogger) Infof(format string, args ...any) {
	// Skip the Sprintf when Debug is off: Pebble logs on hot-ish paths.
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

// Errorf implements pebble.Logger.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf implements pebble.Logger.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, slog.Bool("fatal", true))
	panic("storage: pebble: " + msg)
}

// eventStats counts the Pebble events the node wants to see in metrics.
// Safe for concurrent use.
type eventStats struct {
	backgroundErrors atomic.Uint64
	corruptions      atomic.Uint64
	diskSlow         atomic.Uint64
	writeStalls      atomic.Uint64
	writeStallNanos  atomic.Int64

	stall struct {
		sync.Mutex
		// began is when the current write stall began; zero if none.
		began time.Time
	}
}

// newEventListener routes Pebble's events to the logger and to stats.
//
// Pebble calls these synchronously, some with its mutex held, so each one
// only counts and logs.
func newEventListener(log *slog.Logger, stats *eventStats) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			stats.backgroundErrors.Add(1)
			log.Error("background error", slog.Any("err", err))
		},
		// Pebble's default calls Fatalf. The read that hit the corruption
		// returns an error, which its caller handles; whether a node keeps
		// serving after that is the node's decision, not the storage
		// layer's.
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			stats.corruptions.Add(1)
			log.Error("data corruption", slog.String("path", info.Path), slog.Any("err", info.Details))
		},
		// Called on the disk-health goroutine, which must not do IO or block
		// (the disk may be stuck, and a log write may go to that disk): count
		// only. The node reports the counter.
		DiskSlow: func(vfs.DiskSlowInfo) {
			stats.diskSlow.Add(1)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			stats.writeStalls.Add(1)
			stats.stall.Lock()
			stats.stall.began = time.Now()
			stats.stall.Unlock()
			log.Warn("write stall began", slog.String("reason", info.Reason))
		},
		WriteStallEnd: func() {
			stats.stall.Lock()
			began := stats.stall.began
			stats.stall.began = time.Time{}
			stats.stall.Unlock()
			if began.IsZero() {
				return // an end without a begin: nothing to measure
			}
			d := time.Since(began)
			stats.writeStallNanos.Add(int64(d))
			log.Warn("write stall ended", slog.Duration("duration", d))
		},
		PossibleAPIMisuse: func(info pebble.PossibleAPIMisuseInfo) {
			log.Warn("possible API misuse", slog.Any("info", info))
		},
		// Routine work: visible at Debug only. slog formats the info only if
		// Debug is enabled.
		FlushEnd: func(info pebble.FlushInfo) {
			log.Debug("flush", slog.Any("info", info))
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			log.Debug("compaction", slog.Any("info", info))
		},
	}
}
