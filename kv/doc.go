// Package kv is the quorumkv node: the catalog of keyspaces and ranges,
// placement, routing, the replicas that run each range's Raft or
// Multi-Paxos group, the API handlers and the peer transport.
//
// This file set starts with the data model every other part agrees on
// (DESIGN.md §2): a keyspace's descriptor, how its keys hash into ranges,
// and the limits on what a request may carry.
package kv
