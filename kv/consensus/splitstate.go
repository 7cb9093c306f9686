package consensus

import (
	"errors"

	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// KeyWriter takes keys one by one: a storage.Batch, or a staged sstable
// (storage.SSTWriter), which must be given its keys in increasing order.
type KeyWriter interface {
	Set(key, value []byte) error
}

// FoundSplitRange writes to w the Raft state of a range born of a split at
// index (kv/store/split.go): as if it had installed a snapshot at index,
// of term term, with configuration cs. Every replica of the old range
// applies the split at the same index with the same term and
// configuration, so every replica of the new range starts identical: a
// log that begins after index, its term, and no vote. It writes the
// range's hard state and truncation point, in key order, and not its
// applied state (AppliedState(index) under storage.AppliedStateKey),
// which sorts after other ranges' state keys: the caller writes it where
// its order puts it.
func FoundSplitRange(w KeyWriter, rangeID, index, term uint64, cs raft.ConfState) error {
	hs := raft.HardState{Term: term, Commit: index}
	if err := w.Set(storage.HardStateKey(rangeID), EncodeHardState(hs)); err != nil {
		return err
	}
	return w.Set(storage.TruncatedStateKey(rangeID), encodeTruncatedState(truncatedState{Index: index, term: term, cs: cs.Clone()}))
}

// HasRangeState reports whether this node holds any consensus state of
// range rangeID: a hard state, a truncation point or a log entry.
func HasRangeState(db *storage.DB, rangeID uint64) (bool, error) {
	for _, key := range [][]byte{storage.HardStateKey(rangeID), storage.TruncatedStateKey(rangeID)} {
		if _, err := db.Get(key); err == nil {
			return true, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return false, err
		}
	}
	it, err := db.NewIter(storage.RangeLogSpan(rangeID))
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, errors.Join(it.Error(), it.Close())
}
