package storage

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Iterator walks the keys of a bounded span in order, forward or backward.
// It is not safe for concurrent use.
//
// Key and Value return slices owned by the iterator, valid until the next
// positioning call (First, Last, SeekGE, SeekLT, Next, Prev) or Close; copy
// what must outlive that.
//
// A positioning call returns false when the iterator runs off its bounds or
// hits an error; Error tells the two apart.
type Iterator struct {
	it *pebble.Iterator
	// bounds holds the iterator's own copy of its bounds: Pebble keeps the
	// slices it is given, and the caller may reuse theirs.
	bounds Span
}

// newIter opens an iterator on r over bounds.
func newIter(r pebble.Reader, bounds Span) (*Iterator, error) {
	if bounds.End == nil {
		return nil, fmt.Errorf("storage: iterator over %s needs an upper bound: %w", bounds, ErrInvalidSpan)
	}
	if bytes.Compare(bounds.Start, bounds.End) > 0 {
		return nil, fmt.Errorf("storage: iterator over %s: start after end: %w", bounds, ErrInvalidSpan)
	}
	own := copySpan(bounds)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: own.Start, UpperBound: own.End})
	if err != nil {
		return nil, fmt.Errorf("storage: new iterator over %s: %w", bounds, err)
	}
	return &Iterator{it: it, bounds: own}, nil
}

// copySpan copies s's bounds into one allocation.
func copySpan(s Span) Span {
	buf := make([]byte, 0, len(s.Start)+len(s.End))
	buf = append(buf, s.Start...)
	start := buf[:len(s.Start):len(s.Start)]
	if s.Start == nil {
		start = nil // no lower bound
	}
	return Span{Start: start, End: append(buf, s.End...)[len(s.Start):]}
}

// First moves to the first key in bounds.
func (i *Iterator) First() bool { return i.it.First() }

// Last moves to the last key in bounds.
func (i *Iterator) Last() bool { return i.it.Last() }

// SeekGE moves to the first key >= key (clamped to the bounds). key is not
// retained.
func (i *Iterator) SeekGE(key []byte) bool { return i.it.SeekGE(key) }

// SeekLT moves to the last key < key (clamped to the bounds). key is not
// retained.
func (i *Iterator) SeekLT(key []byte) bool { return i.it.SeekLT(key) }

// Next moves to the next key.
func (i *Iterator) Next() bool { return i.it.Next() }

// Prev moves to the previous key.
func (i *Iterator) Prev() bool { return i.it.Prev() }

// Valid reports whether the iterator is at a key.
func (i *Iterator) Valid() bool { return i.it.Valid() }

// Key returns the current key. The slice belongs to the iterator (see
// Iterator).
func (i *Iterator) Key() []byte { return i.it.Key() }

// Value returns the current value. The slice belongs to the iterator (see
// Iterator). An error (reading a value stored out of line) also ends the
// iteration.
func (i *Iterator) Value() ([]byte, error) {
	v, err := i.it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("storage: value of %s: %w", FormatKey(i.it.Key()), err)
	}
	return v, nil
}

// Error returns the error that stopped the iteration, if any.
func (i *Iterator) Error() error {
	if err := i.it.Error(); err != nil {
		return fmt.Errorf("storage: iterating %s: %w", i.bounds, err)
	}
	return nil
}

// Close releases the iterator and returns the iteration's error, if any.
// Closing a closed iterator does nothing.
func (i *Iterator) Close() error {
	if i.it == nil {
		return nil
	}
	err := i.it.Close()
	i.it = nil
	if err != nil {
		return fmt.Errorf("storage: iterating %s: %w", i.bounds, err)
	}
	return nil
}
