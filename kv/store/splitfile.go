package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/storage"
)

// The split's effect as one ingested sstable (see split.go's top comment
// for why). writeSplit streams it from a view of the database into a
// staged file; writeSplitFiles writes and syncs that file off the store's
// goroutine (splitjob.go), and ingestSplitFiles ingests it on it.

// splitPlan is what one replica's split writes: the split of range old
// (span [span.Lo, span.Hi)) at mid, the right half to range born, at log
// index (Raft) or slot (Multi-Paxos) index.
type splitPlan struct {
	old, born uint64
	index     uint64
	span      catalog.Span
	mid       uint64
	// create: this node holds no state of range born, which the file
	// founds with found's consensus state (its index is index, but for the
	// SplitFoundsLow canary); otherwise the file leaves born alone (its
	// replica here is ahead of the split) and only drops old's right half.
	create bool
	found  consensus.SplitFounding
	// horizon is old's dedup horizon: answers older than it are not
	// copied (no replica uses them).
	horizon int64
	// canary: see Canary.SplitDropsLastKey.
	dropLastKey bool
}

// right is the half that moves.
func (p *splitPlan) right() catalog.Span { return catalog.Span{Lo: p.mid, Hi: p.span.Hi} }

// splitSink takes the file's records: a staged sstable, whose rules it
// has (points in strictly increasing key order; range deletions in order
// and apart; a range deletion does not delete the points of its own file).
type splitSink interface {
	Set(key, value []byte) error
	DeleteRange(span storage.Span) error
}

// splitSizes are the sizes of the two halves, as splitBytes counts them.
type splitSizes struct{ left, right uint64 }

// writeSplit writes the split's whole effect on this node's database to w,
// reading the range as it stands before the split from rd, in key order:
//
//	0x02 born    hard state, truncation (Raft) or snapshot (Multi-Paxos)
//	             point at index                          (create)
//	0x04 lo, hi  applied index = index for old (and born, if create)
//	0x06 lo, hi  old: range deletion of its data, then its left half again;
//	             born: range deletion of its data, then the right half (create)
//	0x07 lo, hi  old: its split state (its dedup state stays as it is);
//	             born: range deletion of its dedup span, old's dedup
//	             horizon, answers and expiry index, its split state (create)
//
// lo and hi are old and born in ID order. The range deletion of old's
// data covers the whole span of its data, since a half of the hash space
// is not a span of keys (keys sort by user key); the left half survives
// it because a range deletion does not delete the points of its own file.
// Memory is an iterator and the writer's blocks, whatever the range's
// size: no key is held past its write.
func writeSplit(rd storage.Reader, w splitSink, p *splitPlan) (splitSizes, error) {
	var sz splitSizes
	ids := []uint64{p.old, p.born}
	slices.Sort(ids)
	if p.create {
		if err := p.found.Write(w, p.born); err != nil {
			return sz, err
		}
	}
	for _, id := range ids {
		var err error
		switch {
		case id == p.old:
			err = w.Set(storage.AppliedStateKey(id), consensus.AppliedState(p.index))
		case p.create:
			err = w.Set(storage.AppliedStateKey(id), consensus.AppliedState(p.found.Index))
		}
		if err != nil {
			return sz, err
		}
	}
	for _, id := range ids {
		var err error
		switch {
		case id == p.old:
			sz.left, err = copyHalf(rd, w, p, p.old, false)
		case p.create:
			sz.right, err = copyHalf(rd, w, p, p.born, true)
		}
		if err != nil {
			return sz, err
		}
	}
	if !p.create {
		// Only for the log: born's own data here is ahead of the split.
		n, err := rangeBytes(rd, p.old, p.right())
		if err != nil {
			return sz, err
		}
		sz.right = n
	}
	for _, id := range ids {
		var err error
		switch {
		case id == p.old:
			left := splitState{known: true, span: catalog.Span{Lo: p.span.Lo, Hi: p.mid}, bytes: sz.left, lastMid: p.mid, lastNew: p.born}
			err = w.Set(storage.SplitStateKey(p.old), left.encode())
		case p.create:
			err = copyDedupTo(rd, w, p)
			if err == nil {
				born := splitState{known: true, span: p.right(), bytes: sz.right}
				err = w.Set(storage.SplitStateKey(p.born), born.encode())
			}
		}
		if err != nil {
			return sz, err
		}
	}
	return sz, nil
}

// copyHalf writes range to's data: a range deletion of all of it, then
// old's keys of one half (right: those whose hash is in the right half;
// else the others) under to's prefix. It returns their size.
func copyHalf(rd storage.Reader, w splitSink, p *splitPlan, to uint64, right bool) (uint64, error) {
	if err := w.DeleteRange(storage.RangeDataSpan(to)); err != nil {
		return 0, err
	}
	half := p.right()
	var size uint64
	var key []byte
	// pending is the last key read and not yet written, so that the
	// SplitDropsLastKey canary can leave out the last one.
	var pending, pendingValue []byte
	flush := func() error {
		if pending == nil {
			return nil
		}
		return w.Set(pending, pendingValue)
	}
	err := command.EachData(rd, p.old, nil, nil, func(userKey, raw []byte) (bool, error) {
		if half.Contains(catalog.HashKey(userKey)) != right {
			return true, nil
		}
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, fmt.Errorf("kv: range %d key %q: %w", p.old, command.Abbreviate(userKey), err)
		}
		size += splitBytes(userKey, &v)
		key = storage.AppendDataKey(key[:0], to, userKey)
		if !(right && p.dropLastKey) {
			return true, w.Set(key, raw)
		}
		if err := flush(); err != nil {
			return false, err
		}
		pending, pendingValue = append(pending[:0], key...), append(pendingValue[:0], raw...)
		return true, nil
	})
	return size, err
}

// rangeBytes is the size of range id's keys whose hash is in half.
func rangeBytes(rd storage.Reader, id uint64, half catalog.Span) (uint64, error) {
	var size uint64
	err := command.EachData(rd, id, nil, nil, func(userKey, raw []byte) (bool, error) {
		if !half.Contains(catalog.HashKey(userKey)) {
			return true, nil
		}
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, fmt.Errorf("kv: range %d key %q: %w", id, command.Abbreviate(userKey), err)
		}
		size += splitBytes(userKey, &v)
		return true, nil
	})
	return size, err
}

// copyDedupTo writes born's dedup state: a range deletion of its dedup
// span, then old's horizon and the answers old keeps from it on, with
// their expiry index, so that a retried write whose key moved is answered
// there as the first attempt was. Answers older than the horizon, which
// no replica uses and which replicas may have collected or not, are left
// out, and so are expiry entries of answers kept again since (an answer
// has one expiry entry, at its time).
func copyDedupTo(rd storage.Reader, w splitSink, p *splitPlan) error {
	if err := w.DeleteRange(storage.RangeDedupSpan(p.born)); err != nil {
		return err
	}
	if p.horizon > 0 {
		if err := w.Set(storage.DedupHorizonKey(p.born), encodeDedupHorizon(p.horizon)); err != nil {
			return err
		}
	}
	entries := storage.RangeDedupEntrySpan(p.old)
	err := eachKey(rd, entries, func(key, raw []byte) error {
		e, err := decodeDedupEntry(raw)
		idem := key[len(entries.Start):]
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", p.old, command.Abbreviate(idem), err)
		}
		if e.at < p.horizon {
			return nil
		}
		return w.Set(storage.DedupKey(p.born, idem), raw)
	})
	if err != nil {
		return err
	}
	return eachKey(rd, storage.DedupExpirySpan(p.old, math.MaxUint64), func(key, _ []byte) error {
		at, idem, err := storage.DecodeDedupExpiryKey(key)
		if err != nil || at < uint64(max(p.horizon, 0)) {
			return err
		}
		raw, err := rd.Get(storage.DedupKey(p.old, idem))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err := decodeDedupEntry(raw)
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", p.old, command.Abbreviate(idem), err)
		}
		if e.at < p.horizon || uint64(max(e.at, 0)) != at {
			return nil
		}
		return w.Set(storage.DedupExpiryKey(p.born, at, idem), nil)
	})
}

// eachKey calls f with every key of span in rd and its value; both alias
// the iterator's buffers.
func eachKey(rd storage.Reader, span storage.Span, f func(key, value []byte) error) error {
	it, err := rd.NewIter(span)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err == nil {
			err = f(it.Key(), v)
		}
		if err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// splitFileName names the staged file of the split of range id at index.
// Start removes every staged file no snapshot install marker names
// (recoverInstalls), so one a crash left behind goes then.
func splitFileName(id, index uint64) string { return fmt.Sprintf("split-r%d-i%d.sst", id, index) }

// writeSplitFiles writes p's file from rd, the database as the entries
// before the split left it (committed and synced), and syncs it: the
// file's name, or, with the SplitStateFirst canary, the two files to
// ingest in order. It runs off the store's goroutine (splitjob.go) and
// touches nothing but its own files, which it removes if it fails; ctx
// stops it between two records.
func writeSplitFiles(ctx context.Context, db *storage.DB, rd storage.Reader, p *splitPlan, stateFirst bool) ([]string, splitSizes, error) {
	if stateFirst {
		return writeSplitInTwo(ctx, db, rd, p)
	}
	w, err := db.CreateStaged(splitFileName(p.old, p.index))
	if err != nil {
		return nil, splitSizes{}, err
	}
	sz, err := writeSplit(rd, &stoppable{ctx: ctx, w: w}, p)
	if err == nil {
		err = w.Finish()
	}
	if err != nil {
		return nil, sz, errors.Join(err, w.Abort())
	}
	return []string{w.Name()}, sz, nil
}

// ingestSplitFiles ingests the files writeSplitFiles wrote, in order, and
// removes them: after a crash, the database holds all of the split or
// none of it (but for the SplitStateFirst canary's two files). Loop
// only: the range's replica must not have moved since they were written.
func (s *Store) ingestSplitFiles(p *splitPlan, files []string) error {
	s.splitStep("staged")
	for i, f := range files {
		if err := s.DB.IngestStaged(context.Background(), f); err != nil {
			return err
		}
		if i < len(files)-1 {
			s.splitStep("state-ingested")
		}
	}
	s.splitStep("ingested")
	s.removeSplitFiles(p, files)
	return nil
}

// removeSplitFiles removes a split's files, ingested or given up on; one
// that cannot be removed is left to the next start (recoverInstalls).
func (s *Store) removeSplitFiles(p *splitPlan, files []string) {
	for _, f := range files {
		if err := s.DB.RemoveStaged(f); err != nil {
			s.Logger.Warn("cannot remove a split file; the next start does", "range", p.old, "file", f, "err", err)
		}
	}
}

// stoppable is a splitSink that gives up once ctx is done, checked at the
// first record and every stopCheckRecords records after.
type stoppable struct {
	ctx context.Context
	w   splitSink
	n   int
}

// stopCheckRecords: a cancelled split writes at most this many records
// more (a few MiB at most of small keys: milliseconds).
const stopCheckRecords = 4096

func (st *stoppable) check() error {
	st.n++
	if st.n%stopCheckRecords == 1 {
		return st.ctx.Err()
	}
	return nil
}

func (st *stoppable) Set(key, value []byte) error {
	if err := st.check(); err != nil {
		return err
	}
	return st.w.Set(key, value)
}

func (st *stoppable) DeleteRange(span storage.Span) error {
	if err := st.check(); err != nil {
		return err
	}
	return st.w.DeleteRange(span)
}

// splitStep calls StoreConfig.SplitHook, the tests' crash point.
func (s *Store) splitStep(step string) {
	if s.Config.SplitHook != nil {
		s.Config.SplitHook(step)
	}
}

// writeSplitInTwo is the SplitStateFirst canary: the state keys
// (consensus state, applied indexes, split states) go in one file,
// ingested before the other, which holds the data and dedup keys.
func writeSplitInTwo(ctx context.Context, db *storage.DB, rd storage.Reader, p *splitPlan) ([]string, splitSizes, error) {
	var ws [2]*storage.SSTWriter
	abort := func(err error) error {
		for _, w := range ws {
			if w != nil {
				err = errors.Join(err, w.Abort())
			}
		}
		return err
	}
	for i := range ws {
		w, err := db.CreateStaged(fmt.Sprintf("split-r%d-i%d-%d.sst", p.old, p.index, i))
		if err != nil {
			return nil, splitSizes{}, abort(err)
		}
		ws[i] = w
	}
	sz, err := writeSplit(rd, &stoppable{ctx: ctx, w: stateFirst{p: p, state: ws[0], data: ws[1]}}, p)
	for _, w := range ws {
		if err == nil {
			err = w.Finish()
		}
	}
	if err != nil {
		return nil, sz, abort(err)
	}
	return []string{ws[0].Name(), ws[1].Name()}, sz, nil
}

// stateFirst routes a split's records to two files: its state keys
// (consensus state, applied indexes, split states) to one, its data and dedup
// keys to the other.
type stateFirst struct {
	p           *splitPlan
	state, data *storage.SSTWriter
}

func (sf stateFirst) Set(key, value []byte) error {
	kind := key[0]
	isState := kind != storage.RangeDataSpan(0).Start[0] && kind != storage.RangeDedupSpan(0).Start[0] ||
		bytes.Equal(key, storage.SplitStateKey(sf.p.old)) || bytes.Equal(key, storage.SplitStateKey(sf.p.born))
	if isState {
		return sf.state.Set(key, value)
	}
	return sf.data.Set(key, value)
}

func (sf stateFirst) DeleteRange(span storage.Span) error { return sf.data.DeleteRange(span) }
