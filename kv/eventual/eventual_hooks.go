package eventual

import (
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
)

// Hooks are the eventual coordinator's test-only switches: the
// canaries, planted bugs that the simulator must catch (a test that
// cannot fail proves nothing), and a callback the simulator's nemesis
// acts on. Production code never sets them: NodeConfig.evHooks is
// unexported.
type Hooks struct {
	// UnavailableAfterPartialWrite answers Unavailable for a write that
	// missed W after some replica stored it (the lie of issue 10's
	// scenario 3): a client's retry then writes it again.
	UnavailableAfterPartialWrite bool
	// IgnoreAccepted decides a compare-and-swap on the records alone,
	// without the value Paxos' phase 1 found accepted.
	IgnoreAccepted bool
	// ForgetSwaps ignores the register's swap history: a retry of a swap
	// is evaluated as a new request (issue 10's scenario 4).
	ForgetSwaps bool
	// PurgeKeepsAccepted leaves the acceptor's accepted value alone when
	// its tombstone is purged (issue 10's scenario 5).
	PurgeKeepsAccepted bool
	// FillingCounts counts the answers of a replica still filling in
	// reads, scans and a swap's phase 1, as if it held the range already
	// (fill.go).
	FillingCounts bool
	// Move plants bugs in the moves of a split's records
	// (records.MoveCanaries; split.go).
	Move records.MoveCanaries
	// SplitNoPull serves a range born of a split from its own prefix
	// alone while an ancestor is not swept yet, without pulling the key
	// from there first (split.go).
	SplitNoPull bool
	// SweepStop, if set, is called after each key a sweep moved
	// (split.go); true stops the sweep there, as a crash would (the
	// tests then crash the node).
	SweepStop func(rangeID uint64, moved int) bool
	// ScanRanges, if set and not nil for a keyspace, are the ranges a
	// scan of it starts from, as on a node whose catalog lags (split.go).
	ScanRanges func(keyspace string) []*catalog.RangeDescriptor
	// LazyCountsTowardW counts the answers of replicas written lazily
	// (without waiting for their WAL sync) toward W, as if they were
	// durable (writeOp).
	LazyCountsTowardW bool
	// StaleUnsynced answers a synced write of a version the replica held
	// already without syncing its WAL (records.Store.StaleUnsynced),
	// though that version may have been written lazily.
	StaleUnsynced bool
	// Chosen, if set, is called when a compare-and-swap's new record is
	// chosen, before it is written to the replicas.
	Chosen func(key []byte)
}
