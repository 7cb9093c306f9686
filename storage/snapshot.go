package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a consistent, read-only view of the database at the moment
// NewSnapshot was called: later commits are invisible to it. Get and NewIter
// may be called concurrently (not concurrently with Close); its iterators
// are not safe for concurrent use.
//
// An open snapshot keeps the versions it sees from being compacted away, so
// long-lived snapshots cost disk space: close it as soon as it is not needed.
// It must be closed before the DB.
type Snapshot struct {
	s *pebble.Snapshot
}

var _ Reader = (*Snapshot)(nil)

// Get returns a copy of the value of key in the snapshot, or ErrNotFound.
// key is not retained.
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	if s.s == nil {
		return nil, ErrClosed
	}
	return get(s.s, key)
}

// NewIter returns an iterator over the snapshot's keys in bounds, under the
// same rules as DB.NewIter. Close the iterator before the snapshot.
func (s *Snapshot) NewIter(bounds Span) (*Iterator, error) {
	if s.s == nil {
		return nil, ErrClosed
	}
	return newIter(s.s, bounds)
}

// Close releases the snapshot. Closing a closed snapshot does nothing.
func (s *Snapshot) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Close()
	s.s = nil
	if err != nil {
		return fmt.Errorf("storage: close snapshot: %w", err)
	}
	return nil
}
