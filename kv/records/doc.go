// Package records is what a node keeps on disk for the eventual
// keyspaces: each replica's records (one per key: the value or tombstone
// and the version that wrote it), each key's compare-and-swap acceptor
// state, and the hints held for replicas that missed writes.
//
// It imports kv/catalog, kv/command, kv/metrics, kv/internal/codec,
// storage and the cores wrn and paxos. It never calls another node.
//
// Invariants: a record is replaced only by a newer one (wrn.Merge, last
// writer wins), so replicas converge whatever order writes arrive in. An
// acceptor's state is synced before it answers, and is read and written
// under its key's stripe lock, which a tombstone's purge takes too. A hint
// beyond the count or byte bound is not stored, and one past the age
// bound is deleted without being replayed.
package records
