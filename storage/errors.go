package storage

import "errors"

var (
	// ErrNotFound is returned by Get when the key has no value.
	ErrNotFound = errors.New("storage: not found")

	// ErrClosed is returned by operations on a closed DB, Batch, Snapshot or
	// Iterator that can report it. (Committing or reading through a closed
	// DB is a programming error, and Pebble panics on it.)
	ErrClosed = errors.New("storage: closed")

	// ErrBatchTooLarge is returned by a Batch operation that would grow the
	// batch past Options.MaxBatchBytes. The batch is left as it was.
	ErrBatchTooLarge = errors.New("storage: batch too large")

	// ErrInvalidSpan is returned for a span with no upper bound where one is
	// required, or with its start after its end.
	ErrInvalidSpan = errors.New("storage: invalid span")

	// ErrBatchCommitted is returned by an operation on a Batch that was
	// already committed.
	ErrBatchCommitted = errors.New("storage: batch already committed")

	// ErrMalformedKey is returned when decoding a key that was not made by
	// the matching encoding function of keys.go.
	ErrMalformedKey = errors.New("storage: malformed key")

	// ErrInvalidOptions is wrapped by every error of Options.Validate.
	ErrInvalidOptions = errors.New("storage: invalid options")

	// ErrUnsupportedVersion is returned by Open for a store written by a
	// newer version of quorumkv, whose layout this binary cannot read.
	ErrUnsupportedVersion = errors.New("storage: unsupported store version")

	// ErrCorruption is wrapped by errors that found stored data in a state
	// this package never writes.
	ErrCorruption = errors.New("storage: corruption")
)
