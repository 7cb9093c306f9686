package records

import (
	"slices"
	"sync"

	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Moving a key between two ranges of one replica, when an eventual range
// split (kv/eventual/split.go): the key's record and compare-and-swap
// acceptor state leave the old range's prefix for the new one's.

// MoveCanaries are planted bugs of MoveKey that the split tests must
// catch (kv/eventual.Hooks); zero in production.
type MoveCanaries struct {
	// DropAcceptor deletes the old range's acceptor state without moving
	// it.
	DropAcceptor bool
}

// MoveKey moves key's record and acceptor state from range from to range
// to of this replica, and reports whether there was anything to move. The
// record merges with the one range to may hold already, last writer wins
// (a write that reached the new range before the move is never
// overwritten by an older moved record), and the acceptor state as
// MergeAcceptor merges a filling replica's. Both leave range from in the
// same batch, so a crash keeps the key in one range or the other, never
// neither, and moving it again changes nothing. The batch is not synced:
// a move lost in a crash is lost whole, and done again (the caller syncs
// before it counts a range as swept).
//
// It holds the key's compare-and-swap and record stripes of both ranges,
// in index order, compare-and-swap stripes first, as Purge takes them.
func (s *Store) MoveKey(from, to uint64, key []byte, canary MoveCanaries) (bool, error) {
	casLocks := (*[recordLockStripes]sync.Mutex)(&s.casLocks)
	defer lockStripes(casLocks, stripeIndex(from, key), stripeIndex(to, key))()
	defer lockStripes(&s.locks, stripeIndex(from, key), stripeIndex(to, key))()

	moved, err := s.Read(from, key)
	if err != nil {
		return false, err
	}
	theirs, err := s.AcceptorState(from, key)
	if err != nil {
		return false, err
	}
	hasAcceptor := !theirs.Promised.IsZero() || !theirs.Accepted.IsZero()
	if moved.Version.IsZero() && !hasAcceptor {
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if !moved.Version.IsZero() {
		cur, err := s.Read(to, key)
		if err != nil {
			return false, err
		}
		merged := wrn.Merge(cur, moved)
		if merged.Version != cur.Version {
			if err := b.Set(storage.DataKey(to, key), EncodeRecord(merged)); err != nil {
				return false, err
			}
			s.sizeChanged(to, recordBytes(key, merged)-recordBytes(key, cur))
		}
		if err := b.Delete(storage.DataKey(from, key)); err != nil {
			return false, err
		}
		s.sizeChanged(from, -recordBytes(key, moved))
	}
	if hasAcceptor {
		st, err := s.AcceptorState(to, key)
		if err != nil {
			return false, err
		}
		if merged := mergeAcceptor(st, theirs); !canary.DropAcceptor && merged != nil {
			if err := b.Set(storage.CASStateKey(to, key), merged.Marshal()); err != nil {
				return false, err
			}
		}
		if err := b.Delete(storage.CASStateKey(from, key)); err != nil {
			return false, err
		}
	}
	return true, b.Commit(false)
}

// mergeAcceptor returns st with theirs merged in (see MergeAcceptor), or
// nil if that changes nothing.
func mergeAcceptor(st, theirs paxos.AcceptorState) *paxos.AcceptorState {
	merged := st
	if merged.Promised.Less(theirs.Promised) {
		merged.Promised = theirs.Promised
	}
	if merged.Accepted.Less(theirs.Accepted) {
		merged.Accepted, merged.Value = theirs.Accepted, theirs.Value
	}
	if merged.Promised.Less(merged.Accepted) {
		merged.Promised = merged.Accepted
	}
	if merged.Promised == st.Promised && merged.Accepted == st.Accepted {
		return nil
	}
	return &merged
}

// lockStripes locks stripes i and j of mus (once if they are one) in
// index order, and returns the unlock.
func lockStripes(mus *[recordLockStripes]sync.Mutex, i, j uint64) func() {
	if i > j {
		i, j = j, i
	}
	mus[i].Lock()
	if i == j {
		return mus[i].Unlock
	}
	mus[j].Lock()
	return func() { mus[j].Unlock(); mus[i].Unlock() }
}

// KeysOutside returns up to limit keys of range rangeID after after (all,
// if after is empty), in key order, for which inSpan is false (the keys a
// split moved away): of its records, or of its acceptor states if
// acceptors. next is the last key it looked at, to pass as after to go
// on, or nil once there is nothing after.
func (s *Store) KeysOutside(rangeID uint64, acceptors bool, inSpan func(key []byte) bool, after []byte, limit int) (keys [][]byte, next []byte, err error) {
	span, decode := storage.RangeDataSpan(rangeID), storage.DecodeDataKey
	seek := func(k []byte) []byte { return storage.DataKey(rangeID, k) }
	if acceptors {
		span, decode = storage.CASStateSpan(rangeID), storage.DecodeCASStateKey
		seek = func(k []byte) []byte { return storage.CASStateKey(rangeID, k) }
	}
	it, err := s.db.NewIter(span)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	ok := it.First()
	if len(after) > 0 {
		ok = it.SeekGE(seek(append(slices.Clone(after), 0)))
	}
	for ; ok; ok = it.Next() {
		_, key, err := decode(it.Key())
		if err != nil {
			return nil, nil, err
		}
		if !inSpan(key) {
			keys = append(keys, slices.Clone(key))
		}
		if len(keys) == limit {
			return keys, slices.Clone(key), it.Error()
		}
	}
	return keys, nil, it.Error()
}

// Sizes of ranges: what a range's records take, as recordBytes counts
// them, for eventual splits. Counted once by a scan, then kept up to date
// by this store's writes, moves and purges.

// recordBytes is what key's record counts toward its range's size: its
// key and value and a few bytes of overhead (none for no record).
func recordBytes(key []byte, rec wrn.Record) int64 {
	if rec.Version.IsZero() {
		return 0
	}
	return int64(len(key) + len(rec.Value) + 8)
}

// sizes are the counted sizes of ranges.
type sizes struct {
	mu    sync.Mutex
	bytes map[uint64]int64
}

func (s *Store) sizeChanged(rangeID uint64, delta int64) {
	s.sizes.mu.Lock()
	defer s.sizes.mu.Unlock()
	if n, ok := s.sizes.bytes[rangeID]; ok {
		s.sizes.bytes[rangeID] = n + delta
	}
}

// Size returns the size of range rangeID's records here, in bytes,
// counting them if they were not counted since this store opened.
func (s *Store) Size(rangeID uint64) (int64, error) {
	s.sizes.mu.Lock()
	n, ok := s.sizes.bytes[rangeID]
	s.sizes.mu.Unlock()
	if ok {
		return n, nil
	}
	// Counted without the lock: writes meanwhile are lost from the count,
	// which is an estimate; it is counted again after every split.
	var total int64
	err := command.EachData(s.db, rangeID, nil, nil, func(key, raw []byte) (bool, error) {
		rec, err := DecodeRecord(raw)
		if err != nil {
			return false, err
		}
		total += recordBytes(key, rec)
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	s.sizes.mu.Lock()
	defer s.sizes.mu.Unlock()
	if s.sizes.bytes == nil {
		s.sizes.bytes = map[uint64]int64{}
	}
	s.sizes.bytes[rangeID] = total
	return total, nil
}

// ForgetSize drops range rangeID's counted size: the next Size counts it
// again.
func (s *Store) ForgetSize(rangeID uint64) {
	s.sizes.mu.Lock()
	defer s.sizes.mu.Unlock()
	delete(s.sizes.bytes, rangeID)
}

// Holds reports whether this replica holds any record or acceptor state
// under range rangeID's prefix.
func (s *Store) Holds(rangeID uint64) (bool, error) {
	for _, span := range []storage.Span{storage.RangeDataSpan(rangeID), storage.CASStateSpan(rangeID)} {
		it, err := s.db.NewIter(span)
		if err != nil {
			return false, err
		}
		ok := it.First()
		err = it.Error()
		it.Close()
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
