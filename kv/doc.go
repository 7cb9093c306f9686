// Package kv is the quorumkv node: it wires a Store (kv/store) and the
// eventual coordinator (kv/eventual) into a Node, and is where a client's
// request meets the catalog.
//
// It owns:
//   - routing: which range of which keyspace holds a key (Node.Route), and
//     whether this node can serve it (raft and paxos ranges through the
//     store, eventual keyspaces through the coordinator);
//   - the Node's operations: Put, Get, Delete, CompareAndSwap and Scan in
//     every mode, and the keyspace admin (CreateKeyspace places the ranges
//     and proves the geometry's quorums intersect before proposing the
//     keyspace to meta);
//   - joining a cluster and registering nodes in the catalog (peer.go);
//   - the Peer service's handlers (peer.go, recordserve.go): consensus
//     messages in, record and compare-and-swap calls of other nodes'
//     coordinators, the Records stream, scans and the catalog barrier.
//
// It may import the packages below it (docs/architecture.md): kv/catalog,
// kv/command, kv/consensus, kv/store, kv/transport, kv/eventual, and the
// protocol cores. Only kv/server and the commands import it.
// internal/lint's TestDependencyDirection checks the order.
//
// Invariants: every write of a raft or paxos keyspace reaches the log
// through Store.Propose and every linearizable read through
// Store.ReadBarrier; the Node decides nothing about ranges itself. A
// request for a keyspace this node's catalog does not know yet waits for
// the catalog to catch up with meta (AwaitKeyspace) before it is refused.
package kv
