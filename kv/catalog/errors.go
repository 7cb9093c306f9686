package catalog

import "errors"

// ErrNotServed marks keyspaces whose mode this node cannot serve yet.
var ErrNotServed = errors.New("not served")

// ErrKeyNotFound marks a read of a missing key (NotFound, HTTP 404).
var ErrKeyNotFound = errors.New("key not found")

// ErrSwapForgotten: a compare-and-swap in an eventual keyspace was sent
// again, and the key's swap history no longer reaches back to its earlier
// attempt, so whether that attempt was chosen cannot be told. Sending the
// request again cannot tell it either.
var ErrSwapForgotten = errors.New("whether it was cannot be told from the key's history")

// ErrRemoved marks a request of, or about, a node an operator removed
// from the cluster (CatalogOp.RemoveNode): it may never come back under
// its identity. The API maps it to FailedPrecondition.
var ErrRemoved = errors.New("node removed")

// ErrNodeAlive marks a request to remove a node that gossip sees alive.
// The API maps it to FailedPrecondition.
var ErrNodeAlive = errors.New("node alive")

// ErrUnauthenticated marks a request whose caller is not logged in while
// authentication is on, or whose credentials do not hold (kv/auth). The
// API maps it to Unauthenticated (HTTP 401).
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrPermissionDenied marks a request its caller's roles do not allow
// (kv/auth). The API maps it to PermissionDenied (HTTP 403).
var ErrPermissionDenied = errors.New("permission denied")
