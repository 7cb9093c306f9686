package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/storage"
)

// The merge's effect as one ingested sstable, as a split's (splitfile.go):
// any size, all or nothing after a crash.

// mergePlan is what one replica's merge writes: range left takes range
// right at left's log index index.
type mergePlan struct {
	left, right uint64
	index       uint64
	// leftHorizon is left's dedup horizon; the merged range keeps the
	// higher of it and right's.
	leftHorizon int64
	// state is left's split state after the merge, bytes not counting
	// right's yet; tombstone is right's split state, kept.
	state, tombstone splitState
}

// writeMerge writes the merge's whole effect on this node's database to
// w, reading both ranges as they stand before it from rd. Points and
// range deletions each in key order:
//
//	0x02, 0x03 right  range deletions of its Raft state and log
//	0x04 left         applied index = index;  right: range deletion
//	0x06 left         right's data under left's prefix;  right: range deletion
//	0x07              in ID order: left's horizon (if it rose), right's live
//	                  answers and their expiry entries, left's split state;
//	                  right: range deletion of its dedup span, and its split
//	                  state again, as a tombstone (mergedAway)
//
// It returns the size of the data moved and the merged range's horizon.
func writeMerge(rd storage.Reader, w splitSink, p *mergePlan) (uint64, int64, error) {
	for _, span := range []storage.Span{storage.RangeStateSpan(p.right), storage.RangeLogSpan(p.right)} {
		if err := w.DeleteRange(span); err != nil {
			return 0, 0, err
		}
	}
	if err := w.Set(storage.AppliedStateKey(p.left), consensus.AppliedState(p.index)); err != nil {
		return 0, 0, err
	}
	if err := w.DeleteRange(storage.RangeAppliedStateSpan(p.right)); err != nil {
		return 0, 0, err
	}
	var moved uint64
	var key []byte
	err := command.EachData(rd, p.right, nil, nil, func(userKey, raw []byte) (bool, error) {
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, fmt.Errorf("kv: range %d key %q: %w", p.right, command.Abbreviate(userKey), err)
		}
		moved += splitBytes(userKey, &v)
		key = storage.AppendDataKey(key[:0], p.left, userKey)
		return true, w.Set(key, raw)
	})
	if err != nil {
		return 0, 0, err
	}
	if err := w.DeleteRange(storage.RangeDataSpan(p.right)); err != nil {
		return 0, 0, err
	}
	rightHorizon, err := loadDedupHorizon(rd, p.right)
	if err != nil {
		return 0, 0, err
	}
	horizon := max(p.leftHorizon, rightHorizon)
	writeLeft := func() error {
		if horizon > p.leftHorizon {
			if err := w.Set(storage.DedupHorizonKey(p.left), encodeDedupHorizon(horizon)); err != nil {
				return err
			}
		}
		if err := copyAnswers(rd, w, p.right, p.left, horizon); err != nil {
			return err
		}
		st := p.state
		st.bytes += moved
		return w.Set(storage.SplitStateKey(p.left), st.encode())
	}
	writeRight := func() error {
		if err := w.DeleteRange(storage.RangeDedupSpan(p.right)); err != nil {
			return err
		}
		return w.Set(storage.SplitStateKey(p.right), p.tombstone.encode())
	}
	first, second := writeLeft, writeRight
	if p.right < p.left {
		first, second = writeRight, writeLeft
	}
	if err := first(); err != nil {
		return 0, 0, err
	}
	return moved, horizon, second()
}

// copyAnswers writes range from's dedup answers kept from horizon on, and
// their expiry entries, under range to's prefix: a retried write whose
// key moved is answered there as the first attempt was. Answers older
// than the horizon, which replicas may have collected or not, are left
// out, so every replica writes the same.
func copyAnswers(rd storage.Reader, w splitSink, from, to uint64, horizon int64) error {
	entries := storage.RangeDedupEntrySpan(from)
	err := eachKey(rd, entries, func(key, raw []byte) error {
		e, err := decodeDedupEntry(raw)
		idem := key[len(entries.Start):]
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", from, command.Abbreviate(idem), err)
		}
		if e.at < horizon {
			return nil
		}
		return w.Set(storage.DedupKey(to, idem), raw)
	})
	if err != nil {
		return err
	}
	return eachKey(rd, storage.DedupExpirySpan(from, math.MaxUint64), func(key, _ []byte) error {
		at, idem, err := storage.DecodeDedupExpiryKey(key)
		if err != nil || at < uint64(max(horizon, 0)) {
			return err
		}
		raw, err := rd.Get(storage.DedupKey(from, idem))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err := decodeDedupEntry(raw)
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", from, command.Abbreviate(idem), err)
		}
		if e.at < horizon || uint64(max(e.at, 0)) != at {
			return nil
		}
		return w.Set(storage.DedupExpiryKey(to, at, idem), nil)
	})
}

// mergeFileName names the staged file of the merge into range id at
// index; start removes one a crash left behind (recoverInstalls).
func mergeFileName(id, index uint64) string { return fmt.Sprintf("merge-r%d-i%d.sst", id, index) }

// ingestMerge writes p's file from the database as it stands (the entries
// before the merge are committed and synced) and ingests it. It returns
// the size of the data moved and the merged range's dedup horizon.
func (s *Store) ingestMerge(p *mergePlan) (uint64, int64, error) {
	snap := s.DB.NewSnapshot()
	defer snap.Close()
	w, err := s.DB.CreateStaged(mergeFileName(p.left, p.index))
	if err != nil {
		return 0, 0, err
	}
	moved, horizon, err := writeMerge(snap, w, p)
	if err == nil {
		err = w.Finish()
	}
	if err != nil {
		return 0, 0, errors.Join(err, w.Abort())
	}
	s.splitStep("merge-staged")
	err = s.DB.IngestStaged(context.Background(), w.Name())
	if err == nil {
		s.splitStep("merge-ingested")
	}
	if rerr := s.DB.RemoveStaged(w.Name()); rerr != nil {
		s.Logger.Warn("cannot remove an ingested merge file; the next start does", "range", p.left, "err", rerr)
	}
	return moved, horizon, err
}
