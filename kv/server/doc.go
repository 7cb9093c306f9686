// Package server is the node's client-facing HTTP server: the KV and
// Admin services over Connect, gRPC and gRPC-Web, the REST routes, the
// console (/, console.go) and /status.json, health (/livez, /readyz, gRPC health),
// /metrics, and the Peer service mounted from package kv. A request this
// node cannot serve is forwarded to the node that can (the range's
// leader, else each replica in turn) and never forwarded twice.
//
// It may import kv and everything below it, and the generated API. Only
// the commands import it.
//
// Invariants: every error reaches the client with the code SPEC.md gives
// it (transport.ToConnect). After an attempt whose outcome is unknown, a
// request is sent again only when that is safe (withForwarding): a read,
// or a write with an idempotency key in a keyspace that dedups writes;
// any other write answers that its outcome is unknown.
package server
