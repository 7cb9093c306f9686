package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// memDir is the directory OpenMem puts the database in, inside its MemFS.
const memDir = "db"

// OpenMem opens a new database on a fresh in-memory filesystem made by
// vfs.NewCrashableMem, for tests and simulation: it behaves like a disk,
// including losing unsynced writes in a simulated crash (DB.CrashClone,
// CrashAndReopen). opts.FS must be nil.
func OpenMem(opts Options) (*DB, error) {
	if opts.FS != nil {
		return nil, fmt.Errorf("%w: OpenMem makes its own filesystem; FS must be nil, not %T",
			ErrInvalidOptions, opts.FS)
	}
	opts.FS = vfs.NewCrashableMem()
	return Open(memDir, opts)
}

// CrashClone returns the filesystem a machine crash at this instant could
// leave behind: everything synced, and of what was not synced only what
// cfg lets through (nothing for the zero CrashCloneCfg; with
// UnsyncedDataPercent > 0, a random share of unsynced blocks and directory
// entries chosen by cfg.RNG, for seeded simulations). Writes made by db after
// the call do not reach the clone. db must be open on a *vfs.MemFS made by
// vfs.NewCrashableMem (as OpenMem does); Pebble panics on other MemFSs.
//
// To restart the crashed node, Close db and Open the same directory with
// Options.FS set to the clone; CrashAndReopen does both.
func (db *DB) CrashClone(cfg vfs.CrashCloneCfg) (*vfs.MemFS, error) {
	mem, ok := db.opts.FS.(*vfs.MemFS)
	if !ok {
		return nil, fmt.Errorf("storage: crash clone needs a database on a *vfs.MemFS, not %T", db.opts.FS)
	}
	if cfg.UnsyncedDataPercent < 0 || cfg.UnsyncedDataPercent > 100 {
		return nil, fmt.Errorf("storage: crash clone: UnsyncedDataPercent is %d, want in [0, 100]",
			cfg.UnsyncedDataPercent)
	}
	if cfg.UnsyncedDataPercent > 0 && cfg.RNG == nil {
		return nil, fmt.Errorf("storage: crash clone: UnsyncedDataPercent is %d but RNG is nil",
			cfg.UnsyncedDataPercent)
	}
	return mem.CrashClone(cfg), nil
}

// CrashAndReopen simulates a crash and restart of db's machine: it takes
// db.CrashClone(cfg), closes db (what db does while closing does not reach
// the clone), and opens a new DB with the same directory and options on the
// clone. db must not be used afterwards. Stop every user of db first: an
// iterator or snapshot still open makes closing db fail, and then nothing is
// reopened.
func CrashAndReopen(db *DB, cfg vfs.CrashCloneCfg) (*DB, error) {
	fs, err := db.CrashClone(cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("storage: crash and reopen: %w", err)
	}
	opts := db.opts
	opts.FS = fs
	return Open(db.dir, opts)
}
