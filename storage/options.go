package storage

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults, each with the reason for its value. EnsureDefaults applies them
// to zero fields.
const (
	// 128 MiB holds the index and filter blocks of a few tens of GiB of
	// sstables plus the hot data blocks of a development or small
	// production node. Larger nodes should give the cache a sizeable share
	// of RAM (CockroachDB defaults to 25%).
	defaultCacheSizeBytes = 128 << 20

	// 64 MiB is CockroachDB's value. A bigger memtable absorbs more Raft
	// log churn before flushing: entries that are appended, applied and
	// truncated within one memtable's lifetime never reach an sstable.
	// Pebble grows memtables from 256 KiB up to this size, so idle nodes
	// (and the many in-process nodes of simulation tests) do not pay for it.
	defaultMemTableSizeBytes = 64 << 20

	// Four memtables (one mutable, three flushing) ride out a flush that is
	// slow for a moment without stalling every range's writes; memory is
	// bounded by MemTableSizeBytes * MemTableStopWritesThreshold.
	defaultMemTableStopWritesThreshold = 4

	// Compact L0 as soon as it has two sublevels (CockroachDB's value):
	// every point read (Raft hard state, log entries, user Gets) checks every
	// L0 sublevel, so L0 is kept shallow.
	defaultL0CompactionThreshold = 2

	// Pebble's own default (12) stalls all writes, and with them every
	// range's heartbeats and elections, on short bursts. We have no admission
	// control to throttle earlier, so stall late but bounded: 20 sublevels is
	// ten times the compaction trigger and still a bounded read cost.
	defaultL0StopWritesThreshold = 20

	// Two compactions keep up with a node's write rate on small machines
	// while leaving cores to consensus, RPC and apply.
	defaultMaxConcurrentCompactions = 2

	// Pebble's default; each open sstable holds a file descriptor.
	defaultMaxOpenFiles = 1000

	// 64 MiB allows a Raft append of many ranges' entries (values are at
	// most 1 MiB, SPEC "Limits") in one batch, while keeping one batch from
	// occupying a whole memtable and the commit pipeline for long.
	defaultMaxBatchBytes = 64 << 20

	// Pebble's default: a disk write or sync taking longer is logged.
	defaultDiskSlowThreshold = 5 * time.Second
)

// Hard limits that Validate enforces.
const (
	minMemTableSizeBytes = 1 << 20
	// Pebble's memtable arena and batch offsets are 32-bit.
	maxMemTableSizeBytes = 4<<30 - 1
	maxBatchBytesLimit   = 4<<30 - 1
	minMaxBatchBytes     = 4 << 10
	minMaxOpenFiles      = 16
)

// Options configures the node's Pebble database. The zero value is ready to
// use: Open applies EnsureDefaults and then Validate.
type Options struct {
	// FS is the filesystem to store the database in. Nil means the
	// operating system's, with disk-health checks (DiskSlowThreshold). Tests
	// pass vfs.NewCrashableMem() to run in memory and simulate crashes (see
	// OpenMem and DB.CrashClone).
	FS vfs.FS

	// Faults, if set, fails or delays the database's writes and syncs
	// (DiskFaults): for tests and kvd's test-only failpoints, never in
	// production.
	Faults *DiskFaults

	// Logger receives the database's log lines, tagged component=pebble.
	// Pebble's informational chatter goes to Debug. Nil discards them.
	Logger *slog.Logger

	// CacheSizeBytes is the size of the block cache, in bytes. Too small
	// and reads go to disk for index and filter blocks; too large and it
	// competes with memtables and the Go heap for RAM. Default 128 MiB.
	CacheSizeBytes int64

	// MemTableSizeBytes is the size at which a memtable is frozen and
	// flushed, in bytes. Too small: many small L0 files and compactions, and
	// short-lived Raft entries reach disk before truncation removes them. Too
	// large: slower flushes and more to replay from the WAL after a crash.
	// Default 64 MiB.
	MemTableSizeBytes uint64

	// MemTableStopWritesThreshold is the number of memtables (mutable plus
	// waiting to flush) at which writes stop until a flush completes. Memory
	// for memtables is bounded by MemTableSizeBytes times this. Default 4.
	MemTableStopWritesThreshold int

	// L0CompactionThreshold is the number of L0 sublevels at which L0 is
	// compacted into Lbase. Lower keeps reads cheap at the price of more
	// compaction work. Default 2.
	L0CompactionThreshold int

	// L0StopWritesThreshold is the number of L0 sublevels at which writes
	// stop until compaction catches up. Too low stalls every range's writes
	// (and heartbeats) on bursts; too high lets read cost grow without bound.
	// Must exceed L0CompactionThreshold. Default 20.
	L0StopWritesThreshold int

	// MaxConcurrentCompactions bounds the compactions run at once. Too low
	// and L0 builds up under heavy writes until writes stall; too high and
	// compactions take CPU and disk bandwidth from consensus. Default 2.
	MaxConcurrentCompactions int

	// MaxOpenFiles bounds the sstables kept open (one file descriptor each).
	// Default 1000.
	MaxOpenFiles int

	// MaxBatchBytes bounds the encoded size of one Batch, in bytes; an
	// operation that would exceed it fails with ErrBatchTooLarge. Too low and
	// large appends must be split into several commits (and syncs); too high
	// and one batch can hold the commit pipeline and a memtable for long.
	// Default 64 MiB; at most 4 GiB - 1 (Pebble's batch format).
	MaxBatchBytes int

	// DiskSlowThreshold is how long a disk write or sync on the operating
	// system's filesystem may take before it is logged as slow. Used only
	// when FS is nil. Default 5s.
	DiskSlowThreshold time.Duration

	// OnWALSync, if set, is called after every durable sync of a WAL file
	// with the time the sync took, for the node's
	// quorumkv_pebble_wal_sync_duration_seconds histogram. It runs on Pebble's
	// WAL flush goroutine, and every synced commit waits for it: it must be
	// fast and must not block or call back into the DB.
	OnWALSync func(time.Duration)
}

// EnsureDefaults sets every zero field of o to its default. It leaves
// non-zero fields alone, so Validate still catches negative values.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSizeBytes == 0 {
		o.CacheSizeBytes = defaultCacheSizeBytes
	}
	if o.MemTableSizeBytes == 0 {
		o.MemTableSizeBytes = defaultMemTableSizeBytes
	}
	if o.MemTableStopWritesThreshold == 0 {
		o.MemTableStopWritesThreshold = defaultMemTableStopWritesThreshold
	}
	if o.L0CompactionThreshold == 0 {
		o.L0CompactionThreshold = defaultL0CompactionThreshold
	}
	if o.L0StopWritesThreshold == 0 {
		o.L0StopWritesThreshold = defaultL0StopWritesThreshold
	}
	if o.MaxConcurrentCompactions == 0 {
		o.MaxConcurrentCompactions = defaultMaxConcurrentCompactions
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = defaultMaxOpenFiles
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = defaultMaxBatchBytes
	}
	if o.DiskSlowThreshold == 0 {
		o.DiskSlowThreshold = defaultDiskSlowThreshold
	}
}

// Validate reports the first field, or combination of fields, that Pebble
// cannot run with or that defeats its purpose. Call it after EnsureDefaults:
// zero values are invalid. Every error wraps ErrInvalidOptions.
func (o *Options) Validate() error {
	switch {
	case o.Logger == nil:
		return invalid("Logger is nil")
	case o.CacheSizeBytes <= 0:
		return invalid("CacheSizeBytes is %d, want > 0", o.CacheSizeBytes)
	case o.MemTableSizeBytes < minMemTableSizeBytes || o.MemTableSizeBytes > maxMemTableSizeBytes:
		return invalid("MemTableSizeBytes is %d, want in [%d, %d]",
			o.MemTableSizeBytes, minMemTableSizeBytes, uint64(maxMemTableSizeBytes))
	case o.MemTableStopWritesThreshold < 2:
		// With one memtable every flush stops all writes.
		return invalid("MemTableStopWritesThreshold is %d, want >= 2", o.MemTableStopWritesThreshold)
	case o.L0CompactionThreshold < 1:
		return invalid("L0CompactionThreshold is %d, want >= 1", o.L0CompactionThreshold)
	case o.L0StopWritesThreshold <= o.L0CompactionThreshold:
		// Otherwise writes stop before L0 is even due for compaction.
		return invalid("L0StopWritesThreshold (%d) must be greater than L0CompactionThreshold (%d)",
			o.L0StopWritesThreshold, o.L0CompactionThreshold)
	case o.MaxConcurrentCompactions < 1:
		return invalid("MaxConcurrentCompactions is %d, want >= 1", o.MaxConcurrentCompactions)
	case o.MaxOpenFiles < minMaxOpenFiles:
		return invalid("MaxOpenFiles is %d, want >= %d", o.MaxOpenFiles, minMaxOpenFiles)
	case o.MaxBatchBytes < minMaxBatchBytes || int64(o.MaxBatchBytes) > maxBatchBytesLimit:
		return invalid("MaxBatchBytes is %d, want in [%d, %d]",
			o.MaxBatchBytes, minMaxBatchBytes, maxBatchBytesLimit)
	case o.DiskSlowThreshold <= 0:
		return invalid("DiskSlowThreshold is %s, want > 0", o.DiskSlowThreshold)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
}
