package storage

import (
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// formatMajorVersion is the on-disk format the store is created with and
// ratcheted to on open.
//
// It is pinned rather than left at pebble.FormatDefault (the oldest format a
// release supports) or FormatNewest (which moves with every Pebble upgrade):
// a ratchet is one-way, a binary with an older Pebble can no longer open the
// store, so it must be a deliberate change made with a release note, never a
// side effect of `go get -u`.
const formatMajorVersion = pebble.FormatValueSeparation

// bloomBitsPerKey sizes the per-table bloom filters: 10 bits per key gives
// about a 1% false-positive rate (CockroachDB's value). Most reads here are
// point lookups (Raft hard state, log entries, user Gets) for which a filter
// skips every sstable not holding the key.
const bloomBitsPerKey = 10

// pebbleOptions translates o (defaults applied) into Pebble's options, with
// every setting that matters to us explicit instead of inherited from
// Pebble's defaults. fs is the filesystem Pebble must use (already wrapped
// for WAL sync accounting); log and events receive Pebble's output.
func pebbleOptions(
	o *Options, fs vfs.FS, log *slog.Logger, events *pebble.EventListener,
) *pebble.Options {
	po := &pebble.Options{
		FS: fs,
		// Pin the format; see formatMajorVersion.
		FormatMajorVersion: formatMajorVersion,
		// Keys (keys.go) are designed for plain bytewise order.
		Comparer: pebble.DefaultComparer,

		// The WAL is what makes a synced commit durable: it is on, in the data
		// directory, and synced only when a commit asks for it
		// (Batch.Commit(sync)). A synced commit also makes every earlier
		// commit durable, since the WAL is one sequential file.
		DisableWAL: false,
		WALDir:     "",
		// No background WAL syncs: durability is decided per commit, and
		// extra syncs would compete with the commit pipeline's group syncs.
		WALBytesPerSync: 0,
		// No artificial delay between WAL syncs: group commit comes from
		// concurrency (commits arriving while a sync is in flight share the
		// next one), and a delay would add latency to every lone commit.
		WALMinSyncInterval: func() time.Duration { return 0 },
		// Smooth out sstable writeback (Pebble's default, 512 KiB) so a flush
		// or compaction does not dump its whole output on the disk at once and
		// stall WAL syncs behind it.
		BytesPerSync: 512 << 10,
		// Sync files on close: an sstable or WAL closed unsynced could be lost
		// after the manifest already references it.
		NoSyncOnClose: false,

		CacheSize:                   o.CacheSizeBytes,
		MemTableSize:                o.MemTableSizeBytes,
		MemTableStopWritesThreshold: o.MemTableStopWritesThreshold,
		L0CompactionThreshold:       o.L0CompactionThreshold,
		L0StopWritesThreshold:       o.L0StopWritesThreshold,
		// Start with one compaction; Pebble adds more, up to the maximum, as
		// compaction debt grows.
		CompactionConcurrencyRange: func() (lower, upper int) {
			return 1, o.MaxConcurrentCompactions
		},
		MaxOpenFiles: o.MaxOpenFiles,

		Logger:        pebbleLogger{l: log},
		EventListener: events,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
		po.Levels[i].FilterType = pebble.TableFilter
	}
	// The fastest compression (MinLZ, or Snappy on arm64) on every level:
	// CPU is shared with consensus and RPC, and much of what we write (Raft
	// log entries) is deleted by truncation before reaching the lower
	// levels, where stronger compression would pay off.
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings {
		return pebble.DBCompressionFastest
	})
	return po
}
