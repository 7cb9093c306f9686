package storage

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walSyncFS wraps the database's filesystem to observe every durable sync
// of a WAL file: it counts them, sums their duration and reports each one to
// Options.OnWALSync.
//
// Why at the filesystem and not elsewhere:
//   - Pebble v2.1's EventListener has no WAL sync event (only WAL created and
//     deleted).
//   - Metrics().LogWriter.FsyncLatency is a Prometheus histogram; reading
//     its sample count needs the Prometheus client, which this package does
//     not import (the node owns metrics registration).
//   - A file wrapper is exact: each fsync/fdatasync that reaches the
//     filesystem for a WAL file is counted once, whoever issued it: the
//     commit pipeline's group sync, SyncWAL, or the final sync of a WAL
//     closed at rotation. That is the number the disk pays for, and the one
//     group commit must keep from growing with the number of writers.
//
// SyncTo counts only when it reports a full sync: on Linux it is
// sync_file_range, which makes no durability promise (Pebble uses it for
// sstables' BytesPerSync; WALBytesPerSync is 0, so the WAL never calls it).
type walSyncFS struct {
	vfs.FS
	stats *walSyncStats
}

var _ vfs.FS = (*walSyncFS)(nil)

// walSyncStats accumulates what walSyncFS observes. Safe for concurrent use.
type walSyncStats struct {
	syncs atomic.Uint64
	nanos atomic.Int64
	// onSync is Options.OnWALSync; may be nil. Fixed at construction.
	onSync func(time.Duration)
}

func (s *walSyncStats) record(d time.Duration) {
	s.syncs.Add(1)
	s.nanos.Add(int64(d))
	if s.onSync != nil {
		s.onSync(d)
	}
}

func newWALSyncFS(inner vfs.FS, onSync func(time.Duration)) *walSyncFS {
	return &walSyncFS{FS: inner, stats: &walSyncStats{onSync: onSync}}
}

// isWALFile reports whether base names a Pebble WAL file: "000123.log", or
// "000123-001.log" for a WAL segment written after a failover.
func isWALFile(base string) bool {
	return strings.HasSuffix(base, ".log")
}

func (fs *walSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWALFile(fs.PathBase(name)) {
		return f, err
	}
	return &walSyncFile{File: f, stats: fs.stats}, nil
}

// Create implements vfs.FS. Pebble creates new WALs with it.
func (fs *walSyncFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS. Pebble recycles old WAL files with it,
// because overwriting an allocated file syncs faster than appending to a new
// one.
func (fs *walSyncFS) ReuseForWrite(
	oldname, newname string, category vfs.DiskWriteCategory,
) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

// OpenReadWrite implements vfs.FS.
func (fs *walSyncFS) OpenReadWrite(
	name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption,
) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(name, f, err)
}

// Unwrap implements vfs.FS.
func (fs *walSyncFS) Unwrap() vfs.FS { return fs.FS }

// walSyncFile is a WAL file whose durable syncs are recorded.
type walSyncFile struct {
	vfs.File
	stats *walSyncStats
}

// Sync implements vfs.File.
func (f *walSyncFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.stats.record(time.Since(start))
	return err
}

// SyncData implements vfs.File. Pebble's WAL writer syncs with it
// (fdatasync on Linux).
func (f *walSyncFile) SyncData() error {
	start := time.Now()
	err := f.File.SyncData()
	f.stats.record(time.Since(start))
	return err
}

// SyncTo implements vfs.File.
func (f *walSyncFile) SyncTo(length int64) (fullSync bool, err error) {
	start := time.Now()
	fullSync, err = f.File.SyncTo(length)
	if fullSync {
		f.stats.record(time.Since(start))
	}
	return fullSync, err
}
