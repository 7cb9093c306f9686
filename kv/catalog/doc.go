// Package catalog is the data model every other package of the node
// agrees on (DESIGN.md §2, §3): keyspace, range, node and replica
// descriptors; how keys hash into a keyspace's ranges (HashKey, Spans);
// the limits on what a request may carry; placement of a keyspace's
// replicas on nodes (Place), with the proof that its quorums intersect;
// the catalog's state and the operations meta's log applies to it; and
// the vocabulary of requests (KeyValue, Expect, WriteOptions,
// QuorumOverride) with the errors that say why one was refused.
//
// It imports only kv/internal/codec, the quorum package and the standard
// library: it holds no IO, no goroutine and no clock.
//
// Invariants: the catalog changes only by a CatalogOp applied from meta's
// log, in log order, so every replica of meta holds the same catalog at
// the same index; topology is never decided by gossip. A keyspace's
// descriptor is checked (Normalize) before it is proposed, and a node is
// known by its UUID, never by its name.
package catalog
