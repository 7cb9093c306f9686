package catalog

import "errors"

// ErrNotServed marks keyspaces whose mode this node cannot serve yet.
var ErrNotServed = errors.New("not served")

// ErrKeyNotFound marks a read of a missing key (NotFound, HTTP 404).
var ErrKeyNotFound = errors.New("key not found")
