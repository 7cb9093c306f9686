// Package eventual coordinates the eventual keyspaces (DESIGN.md §5): any
// node coordinates any key. A write goes to all N replicas of the key's
// range and is acknowledged after W durable answers; a read asks the
// replicas and answers the newest record among R, repairing stale ones; a
// compare-and-swap runs Basic Paxos per key over the replicas. It also
// owns the clock guard that keeps a clock beyond the allowed offset from
// writing, hinted handoff's replay, and anti-entropy between replicas.
//
// It may import kv/catalog, kv/command, kv/records, kv/store (for the
// catalog and node ID), kv/transport, storage and the cores wrn, paxos and
// quorum.
//
// Invariants: every request to a replica, this node's own included, goes
// through a ReplicaNet, and each operation is a state machine fed by the
// answers, so the simulator can drive it. A write answers success only
// after W durable answers (in a keyspace with sloppy_quorum, a hint stored
// for a replica that missed it counts as one). A write that may have been
// stored on some replica is never answered as a plain failure: its error
// says the outcome is unknown. A tombstone is purged only once every
// replica holds it and it is older than the tombstone grace.
package eventual
