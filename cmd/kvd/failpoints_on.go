//go:build qkv_failpoints

package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/storage"
)

// failpointsPoll is how often the failpoints file is read again: a fault
// suite switches a fault and expects it in force a moment later.
const failpointsPoll = 100 * time.Millisecond

// loadFailpoints reads the failpoints file that KVD_TEST_FAILPOINTS names
// (failpointSettings says what it holds) and reads it again every
// failpointsPoll, for the container fault suite (e2e/faults), which shares
// the host's clock and disk with its nodes and so cannot skew or fail
// them from outside. Test-only: release builds have no failpoints.
func loadFailpoints(h *testHooks, logger *slog.Logger) error {
	path := os.Getenv(failpointsEnv)
	if path == "" {
		return nil
	}
	read := func() (failpointSettings, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return failpointSettings{}, err
		}
		return parseFailpoints(string(b))
	}
	first, err := read()
	if err != nil {
		return fmt.Errorf("%s=%s: %w", failpointsEnv, path, err)
	}
	var offset atomic.Int64
	disk := &storage.DiskFaults{}
	apply := func(s failpointSettings) {
		offset.Store(int64(s.clockOffset))
		disk.Set(s.failSyncs, s.failWrites, s.syncDelay)
	}
	apply(first)
	logger.Warn("TEST-ONLY FAILPOINTS ARE ON: this kvd skews its clock and fails its disk as a file says", "file", path)
	h.clock = func() int64 { return time.Now().UnixNano() + offset.Load() }
	h.disk = disk

	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		last := first
		for {
			select {
			case <-stop:
				return
			case <-time.After(failpointsPoll):
			}
			s, err := read()
			switch {
			case err != nil:
				logger.Warn("reading the failpoints file; keeping the last settings", "file", path, "err", err)
			case s != last:
				logger.Warn("failpoints changed", "clock-offset", s.clockOffset, "fail-syncs", s.failSyncs,
					"sync-delay", s.syncDelay, "fail-writes", s.failWrites)
				apply(s)
				last = s
			}
		}
	}()
	h.stop = func() { close(stop); <-done }
	return nil
}
