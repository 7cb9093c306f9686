package storage

import "time"

// Stats is a point-in-time view of the database's counters and gauges, for
// the node's metrics and status page. Counters count since Open.
type Stats struct {
	// WALSyncs is the number of durable syncs (fsync or fdatasync) of WAL
	// files. With group commit it grows slower than SyncedCommits under
	// concurrent writers.
	WALSyncs uint64
	// WALSyncDuration is the total time spent in those syncs.
	WALSyncDuration time.Duration
	// Commits is the number of non-empty batches committed.
	Commits uint64
	// SyncedCommits is how many of those were committed with sync.
	SyncedCommits uint64
	// WALBytesWritten is the number of bytes written to WAL files,
	// including framing.
	WALBytesWritten uint64

	// MemTableBytes is the memory held by memtables, mutable and flushing.
	MemTableBytes uint64
	// L0Sublevels is the number of L0 sublevels, compared against
	// Options.L0CompactionThreshold and L0StopWritesThreshold.
	L0Sublevels int
	// L0Files is the number of sstables in L0.
	L0Files int64
	// ReadAmp is the number of sorted runs a point read may consult.
	ReadAmp int
	// CompactionDebtBytes estimates the bytes compactions must still
	// rewrite for the LSM to reach its target shape.
	CompactionDebtBytes uint64
	// DiskSpaceUsageBytes is the space the database takes on disk.
	DiskSpaceUsageBytes uint64
	// BlockCacheHits and BlockCacheMisses count block cache lookups.
	BlockCacheHits, BlockCacheMisses int64

	// WriteStalls counts the times writes stopped because memtables or L0
	// were full; WriteStallDuration is their total length.
	WriteStalls        uint64
	WriteStallDuration time.Duration
	// DiskSlowEvents counts disk operations slower than
	// Options.DiskSlowThreshold (OS filesystem only).
	DiskSlowEvents uint64
	// BackgroundErrors counts failed flushes and compactions.
	BackgroundErrors uint64
	// Corruptions counts on-disk corruptions detected.
	Corruptions uint64
}

// Stats returns the database's current statistics.
func (db *DB) Stats() Stats {
	m := db.pdb.Metrics()
	return Stats{
		WALSyncs:        db.walSyncs.syncs.Load(),
		WALSyncDuration: time.Duration(db.walSyncs.nanos.Load()),
		Commits:         db.commits.Load(),
		SyncedCommits:   db.syncedCommits.Load(),
		WALBytesWritten: m.WAL.BytesWritten,

		MemTableBytes:       m.MemTable.Size,
		L0Sublevels:         int(m.Levels[0].Sublevels),
		L0Files:             m.Levels[0].TablesCount,
		ReadAmp:             m.ReadAmp(),
		CompactionDebtBytes: m.Compact.EstimatedDebt,
		DiskSpaceUsageBytes: m.DiskSpaceUsage(),
		BlockCacheHits:      m.BlockCache.Hits,
		BlockCacheMisses:    m.BlockCache.Misses,

		WriteStalls:        db.events.writeStalls.Load(),
		WriteStallDuration: time.Duration(db.events.writeStallNanos.Load()),
		DiskSlowEvents:     db.events.diskSlow.Load(),
		BackgroundErrors:   db.events.backgroundErrors.Load(),
		Corruptions:        db.events.corruptions.Load(),
	}
}
