package storage

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// ErrInjectedFault is the error of a write or sync that DiskFaults failed.
var ErrInjectedFault = errors.New("storage: injected disk fault")

// DiskFaults fails or delays the database's file writes and syncs
// (Options.Faults), for the tests that must see a node stop or refuse,
// never acknowledge, when its disk fails: the container fault suite
// (e2e/faults) through kvd's test-only failpoints, and this package's
// tests. The zero value injects nothing. Safe for concurrent use: the
// fault may be switched while the database runs.
type DiskFaults struct {
	failSyncs  atomic.Bool
	failWrites atomic.Bool
	syncDelay  atomic.Int64 // nanoseconds
}

// Set switches the faults: every sync fails (failSyncs), every write to a
// file fails (failWrites), every sync first waits syncDelay.
func (f *DiskFaults) Set(failSyncs, failWrites bool, syncDelay time.Duration) {
	f.failSyncs.Store(failSyncs)
	f.failWrites.Store(failWrites)
	f.syncDelay.Store(int64(syncDelay))
}

// maybeError is the errorfs injector: it runs before each filesystem
// operation of the database.
func (f *DiskFaults) maybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if d := time.Duration(f.syncDelay.Load()); d > 0 {
			time.Sleep(d)
		}
		if f.failSyncs.Load() {
			return ErrInjectedFault
		}
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
		if f.failWrites.Load() {
			return ErrInjectedFault
		}
	}
	return nil
}
