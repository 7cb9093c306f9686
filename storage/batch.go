package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// batchHeaderLen is the size of a Pebble batch's header (sequence number and
// count), present once a batch holds a record.
const batchHeaderLen = 12

// Batch is a set of writes committed atomically: after a crash, either all
// of them survive or none does. This is what lets a range write its applied
// data together with its applied index (DESIGN.md §6).
//
// A Batch is write-only (it cannot read its own writes) and not safe for
// concurrent use. Set, Delete and DeleteRange copy their arguments into the
// batch, so the caller may reuse them at once. A Batch's size is bounded by
// Options.MaxBatchBytes. Always Close a batch, committed or not.
type Batch struct {
	db        *DB
	b         *pebble.Batch // nil once closed
	committed bool
}

// Set writes value under key.
func (b *Batch) Set(key, value []byte) error {
	if err := b.reserve(recordLen(key, value)); err != nil {
		return err
	}
	if err := b.b.Set(key, value, nil); err != nil {
		return fmt.Errorf("storage: batch set %s: %w", FormatKey(key), err)
	}
	return nil
}

// Delete removes key.
func (b *Batch) Delete(key []byte) error {
	if err := b.reserve(recordLen(key, nil)); err != nil {
		return err
	}
	if err := b.b.Delete(key, nil); err != nil {
		return fmt.Errorf("storage: batch delete %s: %w", FormatKey(key), err)
	}
	return nil
}

// DeleteRange removes every key in [start, end) with one range tombstone,
// however many keys that is: dropping a replica's data or truncating its log
// (keys.go: RangeDataSpan, LogSpan) costs one record. An empty span
// (start == end) writes nothing; start after end is ErrInvalidSpan.
func (b *Batch) DeleteRange(start, end []byte) error {
	switch c := bytes.Compare(start, end); {
	case c > 0:
		return fmt.Errorf("storage: batch delete range %s: %w",
			Span{Start: start, End: end}, ErrInvalidSpan)
	case c == 0:
		return b.usable()
	}
	if err := b.reserve(recordLen(start, end)); err != nil {
		return err
	}
	if err := b.b.DeleteRange(start, end, nil); err != nil {
		return fmt.Errorf("storage: batch delete range %s: %w", Span{Start: start, End: end}, err)
	}
	return nil
}

// Append adds every record of other to b, after b's own and in other's
// order, as if they had been written to b. other is unchanged and still
// needs closing; it must not be committed. Writes can thus be built apart
// and kept only once complete: the store applies each range's entries to
// a batch of the range's own and appends it to the round's batch only if
// every entry applied (kv.Store.handleReady). Over MaxBatchBytes it is
// ErrBatchTooLarge and b is unchanged.
func (b *Batch) Append(other *Batch) error {
	if err := other.usable(); err != nil {
		return fmt.Errorf("storage: append a batch: %w", err)
	}
	if other.b.Empty() {
		return b.usable()
	}
	if err := b.reserve(other.b.Len() - batchHeaderLen); err != nil {
		return err
	}
	if err := b.b.Apply(other.b, nil); err != nil {
		return fmt.Errorf("storage: append a batch of %d records: %w", other.b.Count(), err)
	}
	return nil
}

// Count returns the number of records in the batch.
func (b *Batch) Count() uint32 {
	if b.b == nil {
		return 0
	}
	return b.b.Count()
}

// Len returns the encoded size of the batch in bytes, the quantity bounded
// by Options.MaxBatchBytes.
func (b *Batch) Len() int {
	if b.b == nil {
		return 0
	}
	return b.b.Len()
}

// Empty reports whether the batch holds no records.
func (b *Batch) Empty() bool { return b.Count() == 0 }

// Commit applies the batch atomically. Its writes are visible to reads when
// Commit returns.
//
// With sync, Commit returns once the batch, and every batch committed before
// it, is durable in the WAL. Concurrent synced commits share WAL syncs
// (Pebble's commit pipeline groups them), so many small synced commits from
// many goroutines cost far fewer fsyncs than commits. An empty batch
// committed with sync still waits for a WAL sync, so "Commit(true) returned"
// always means "everything committed so far is durable".
//
// Without sync, the batch is written to the WAL but not synced: a crash may
// lose it, together with every batch committed after it. A crash never keeps
// a batch while losing one committed before it (the WAL is replayed as a
// prefix).
//
// A batch commits once; Close it afterwards.
func (b *Batch) Commit(sync bool) error {
	if err := b.usable(); err != nil {
		return err
	}
	b.committed = true
	if b.b.Empty() {
		// Pebble returns at once for an empty batch, without syncing.
		if sync {
			return b.db.SyncWAL()
		}
		return nil
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := b.b.Commit(wo); err != nil {
		return fmt.Errorf("storage: commit batch of %d records: %w", b.b.Count(), err)
	}
	b.db.commits.Add(1)
	if sync {
		b.db.syncedCommits.Add(1)
	}
	return nil
}

// Close releases the batch, discarding it if it was not committed. Closing a
// closed batch does nothing.
func (b *Batch) Close() error {
	if b.b == nil {
		return nil
	}
	err := b.b.Close()
	b.b = nil
	if err != nil {
		return fmt.Errorf("storage: close batch: %w", err)
	}
	return nil
}

// usable returns why the batch cannot take another operation, if it cannot.
func (b *Batch) usable() error {
	switch {
	case b.b == nil:
		return ErrClosed
	case b.committed:
		return ErrBatchCommitted
	}
	return nil
}

// reserve checks that n more bytes of records fit in the batch.
func (b *Batch) reserve(n int) error {
	if err := b.usable(); err != nil {
		return err
	}
	size := b.b.Len()
	if size == 0 {
		size = batchHeaderLen
	}
	if limit := b.db.opts.MaxBatchBytes; n > limit-size {
		return fmt.Errorf("%w: %d bytes + a %d-byte record exceeds MaxBatchBytes (%d)",
			ErrBatchTooLarge, size, n, limit)
	}
	return nil
}

// recordLen is the encoded size of one batch record in Pebble's format: a
// kind byte, then key and value (for DeleteRange: the end key), each behind
// its uvarint length. A Delete has no value (pass nil); its one-byte zero
// length prefix makes this an upper bound by one byte, which is harmless.
func recordLen(key, value []byte) int {
	return 1 + uvarintLen(len(key)) + len(key) + uvarintLen(len(value)) + len(value)
}

func uvarintLen(n int) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(n))
}
