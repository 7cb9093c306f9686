package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// storeVersion is the version of the key layout and value encodings written
// by this package, kept under StoreVersionKey. Bump it on any change to
// keys.go's layout; Open refuses stores with a newer version, and marks an
// older store with this version, so that the older binary refuses it from
// then on. Version 2 added the request dedup keys (prefix 0x07), which
// version 1 binaries would ignore. Version 3 added the snapshot install
// markers (SnapshotInstallKey): a version 2 binary would ignore one left by
// a crash and open the replica half installed.
const storeVersion uint64 = 3

// Reader reads a consistent view of the database: the DB itself (the latest
// committed state at each call) or a Snapshot (the state when it was taken).
type Reader interface {
	// Get returns a copy of the value of key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// NewIter returns an iterator over the keys in bounds. The caller must
	// Close it.
	NewIter(bounds Span) (*Iterator, error)
}

// DB is the node's Pebble database. It is safe for concurrent use. It must
// not be used after Close: Pebble panics on that misuse.
type DB struct {
	pdb  *pebble.DB
	dir  string
	opts Options // with defaults applied; opts.FS as given (nil = OS)
	// fs is the filesystem the database is on (opts.FS, or the OS's with
	// disk-health checks), where staged sstables are written (staged.go).
	fs vfs.FS

	walSyncs     *walSyncStats
	events       *eventStats
	healthCloser io.Closer // stops disk-health checking; a no-op without it

	commits       atomic.Uint64
	syncedCommits atomic.Uint64
	closed        atomic.Bool
}

var _ Reader = (*DB)(nil)

// Open opens, creating it if needed, the database in directory dir of
// opts.FS. It applies opts.EnsureDefaults, checks opts.Validate, and refuses
// stores written with a newer layout (ErrUnsupportedVersion). A directory
// can be open in one DB at a time (Pebble locks it).
func Open(dir string, opts Options) (*DB, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger.With(slog.String("component", "pebble"))
	events := &eventStats{}
	listener := newEventListener(log, events)

	fs, healthCloser := opts.FS, io.Closer(nopCloser{})
	if fs == nil {
		// Pebble adds disk-health checks itself only when it picks the
		// filesystem; we pick it, so we add them, the same way.
		fs, healthCloser = vfs.WithDiskHealthChecks(vfs.Default, opts.DiskSlowThreshold, nil,
			func(info vfs.DiskSlowInfo) { listener.DiskSlow(info) })
	}
	if opts.Faults != nil {
		fs = errorfs.Wrap(fs, errorfs.InjectorFunc(opts.Faults.maybeError))
	}
	wfs := newWALSyncFS(fs, opts.OnWALSync)

	pdb, err := pebble.Open(dir, pebbleOptions(&opts, wfs, log, listener))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("storage: open %s: %w", dir, err), healthCloser.Close())
	}
	db := &DB{
		pdb:          pdb,
		dir:          dir,
		opts:         opts,
		fs:           fs,
		walSyncs:     wfs.stats,
		events:       events,
		healthCloser: healthCloser,
	}
	if err := db.checkStoreVersion(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// checkStoreVersion writes the store version into a new store, and refuses
// a store written by a newer layout.
func (db *DB) checkStoreVersion() error {
	v, err := db.Get(StoreVersionKey())
	switch {
	case errors.Is(err, ErrNotFound):
		// A new store.
		return db.writeStoreVersion()
	case err != nil:
		return err
	case len(v) != uint64Len:
		return fmt.Errorf("storage: store version value %x in %s: %w", v, db.dir, ErrCorruption)
	}
	switch got := binary.BigEndian.Uint64(v); {
	case got > storeVersion:
		return fmt.Errorf("storage: %s has store version %d, this binary reads up to %d: %w",
			db.dir, got, storeVersion, ErrUnsupportedVersion)
	case got == 0:
		return fmt.Errorf("storage: store version 0 in %s: %w", db.dir, ErrCorruption)
	case got < storeVersion:
		// Every older layout is a subset of this one: upgrading is
		// marking the store.
		return db.writeStoreVersion()
	}
	return nil
}

// writeStoreVersion marks the store with this layout's version, synced, so
// that the version is on disk before anything written under the layout
// can be.
func (db *DB) writeStoreVersion() error {
	var buf [uint64Len]byte
	binary.BigEndian.PutUint64(buf[:], storeVersion)
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(StoreVersionKey(), buf[:]); err != nil {
		return err
	}
	return b.Commit(true /* sync */)
}

// Close closes the database. Every Batch, Snapshot and Iterator must be
// closed first; Close reports leaked iterators as an error. Calling Close
// again returns ErrClosed.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return ErrClosed
	}
	err := errors.Join(db.pdb.Close(), db.healthCloser.Close())
	if err != nil {
		return fmt.Errorf("storage: close %s: %w", db.dir, err)
	}
	return nil
}

// Dir returns the directory the database was opened in.
func (db *DB) Dir() string { return db.dir }

// MaxBatchBytes is Options.MaxBatchBytes: the most one batch may hold.
func (db *DB) MaxBatchBytes() int { return db.opts.MaxBatchBytes }

// Get returns a copy of the latest committed value of key, or ErrNotFound.
// key is not retained.
func (db *DB) Get(key []byte) ([]byte, error) {
	return get(db.pdb, key)
}

// NewIter returns an iterator over the latest committed keys in bounds. It
// sees writes committed before the call, not after. bounds.End is required
// (an iterator without an upper bound would walk into other ranges' keys).
// bounds is copied. The caller must Close the iterator.
func (db *DB) NewIter(bounds Span) (*Iterator, error) {
	return newIter(db.pdb, bounds)
}

// NewSnapshot returns a consistent, read-only view of the database as of
// now. It pins the state it sees, holding back compactions of overwritten
// keys, so close it promptly.
func (db *DB) NewSnapshot() *Snapshot {
	return &Snapshot{s: db.pdb.NewSnapshot()}
}

// NewBatch returns an empty write batch. The caller must Close it, committed
// or not.
func (db *DB) NewBatch() *Batch {
	return &Batch{db: db, b: db.pdb.NewBatch()}
}

// SyncWAL makes every commit that returned before the call durable, with one
// WAL sync (shared with concurrent synced commits).
func (db *DB) SyncWAL() error {
	// An empty batch skips the commit pipeline, so write an empty LogData
	// record: it is not applied to the memtable but goes through the WAL and
	// waits for its sync (CockroachDB's SyncWAL does the same).
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("storage: sync WAL: %w", err)
	}
	return nil
}

// get reads key from r and returns a copy of its value.
func get(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", FormatKey(key), err)
	}
	// v is valid only until closer.Close: copy it out. A found empty value
	// is returned as an empty, non-nil slice.
	out := make([]byte, len(v))
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", FormatKey(key), err)
	}
	return out, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
