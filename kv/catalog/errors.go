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
