package kv

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// raftLog is a range's Raft log and HardState in the node's Pebble
// database: raft.Storage for the core, plus the writes the store makes
// while handling a Ready.
//
// Only the store's goroutine uses it. The cached fields describe what is
// in Pebble once the batch being built commits; the core reads them only
// after that (the store persists a Ready before it touches the core again).
type raftLog struct {
	db      *storage.DB
	rangeID uint64

	hs raft.HardState
	// The log holds entries (trunc.index, last]; trunc is the snapshot
	// or compaction point, with the configuration in force there.
	trunc     truncatedState
	lastIndex uint64

	// snapshot builds a snapshot of the range's applied state on demand,
	// for a follower the log can no longer catch up.
	snapshot func() (raft.Snapshot, error)
}

// truncatedState is the point the log starts after.
type truncatedState struct {
	index, term uint64
	cs          raft.ConfState
}

func loadRaftLog(db *storage.DB, rangeID uint64) (*raftLog, error) {
	l := &raftLog{db: db, rangeID: rangeID}
	if b, err := db.Get(storage.HardStateKey(rangeID)); err == nil {
		if l.hs, err = decodeHardState(b); err != nil {
			return nil, fmt.Errorf("kv: range %d hard state: %w", rangeID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if b, err := db.Get(storage.TruncatedStateKey(rangeID)); err == nil {
		if l.trunc, err = decodeTruncatedState(b); err != nil {
			return nil, fmt.Errorf("kv: range %d truncated state: %w", rangeID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	l.lastIndex = l.trunc.index
	it, err := db.NewIter(storage.RangeLogSpan(rangeID))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if it.Last() {
		_, idx, err := storage.DecodeLogKey(it.Key())
		if err != nil {
			return nil, err
		}
		l.lastIndex = idx
	}
	return l, it.Error()
}

// InitialState implements raft.Storage.
func (l *raftLog) InitialState() (raft.HardState, raft.ConfState, error) {
	return l.hs, l.trunc.cs.Clone(), nil
}

// Entries implements raft.Storage.
func (l *raftLog) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if lo <= l.trunc.index {
		return nil, raft.ErrCompacted
	}
	if hi > l.lastIndex+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) of range %d, last index %d", raft.ErrUnavailable, lo, hi, l.rangeID, l.lastIndex)
	}
	it, err := l.db.NewIter(storage.LogSpan(l.rangeID, lo, hi))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ents []raft.Entry
	var size uint64
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		// The iterator owns v until it moves: the entry keeps a copy.
		e, err := decodeEntry(next, bytes.Clone(v))
		if err != nil {
			return nil, err
		}
		_, idx, _ := storage.DecodeLogKey(it.Key())
		if idx != next {
			return nil, fmt.Errorf("%w: range %d log has a gap at %d (found %d)", ErrCorrupt, l.rangeID, next, idx)
		}
		size += e.Size()
		if len(ents) > 0 && size > maxBytes {
			break
		}
		ents = append(ents, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 && lo < hi {
		return nil, fmt.Errorf("%w: range %d log is missing entry %d", ErrCorrupt, l.rangeID, lo)
	}
	return ents, nil
}

// Term implements raft.Storage.
func (l *raftLog) Term(i uint64) (uint64, error) {
	switch {
	case i == l.trunc.index:
		return l.trunc.term, nil
	case i < l.trunc.index:
		return 0, raft.ErrCompacted
	case i > l.lastIndex:
		return 0, raft.ErrUnavailable
	}
	b, err := l.db.Get(storage.LogKey(l.rangeID, i))
	if err != nil {
		return 0, fmt.Errorf("kv: range %d entry %d: %w", l.rangeID, i, err)
	}
	e, err := decodeEntry(i, b)
	return e.Term, err
}

// LastIndex implements raft.Storage.
func (l *raftLog) LastIndex() (uint64, error) { return l.lastIndex, nil }

// FirstIndex implements raft.Storage.
func (l *raftLog) FirstIndex() (uint64, error) { return l.trunc.index + 1, nil }

// Snapshot implements raft.Storage.
func (l *raftLog) Snapshot() (raft.Snapshot, error) {
	if l.snapshot == nil {
		return raft.Snapshot{}, raft.ErrSnapshotTemporarilyUnavailable
	}
	return l.snapshot()
}

// setHardState adds hs to b.
func (l *raftLog) setHardState(b *storage.Batch, hs raft.HardState) error {
	l.hs = hs
	return b.Set(storage.HardStateKey(l.rangeID), encodeHardState(hs))
}

// append adds ents to b. They may replace a suffix of the log: entries
// after the new last one are deleted, so the log never holds a stale tail.
func (l *raftLog) append(b *storage.Batch, ents []raft.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	if first <= l.trunc.index || first > l.lastIndex+1 {
		return fmt.Errorf("kv: range %d: append [%d, %d] to a log (%d, %d]", l.rangeID, first, last, l.trunc.index, l.lastIndex)
	}
	for _, e := range ents {
		if err := b.Set(storage.LogKey(l.rangeID, e.Index), encodeEntry(e)); err != nil {
			return err
		}
	}
	if last < l.lastIndex {
		s := storage.LogSpan(l.rangeID, last+1, l.lastIndex+1)
		if err := b.DeleteRange(s.Start, s.End); err != nil {
			return err
		}
	}
	l.lastIndex = last
	return nil
}

// truncate drops entries up to index (which must be applied), keeping the
// configuration cs in force there for restarts.
func (l *raftLog) truncate(b *storage.Batch, index uint64, cs raft.ConfState) error {
	if index <= l.trunc.index {
		return nil
	}
	term, err := l.Term(index)
	if err != nil {
		return err
	}
	s := storage.LogSpan(l.rangeID, l.trunc.index+1, index+1)
	if err := b.DeleteRange(s.Start, s.End); err != nil {
		return err
	}
	return l.setTruncated(b, truncatedState{index: index, term: term, cs: cs.Clone()})
}

// installSnapshot replaces the whole log with the snapshot's point: the
// entries are superseded by the state the snapshot carries.
func (l *raftLog) installSnapshot(b *storage.Batch, meta raft.SnapshotMetadata) error {
	s := storage.RangeLogSpan(l.rangeID)
	if err := b.DeleteRange(s.Start, s.End); err != nil {
		return err
	}
	l.lastIndex = meta.Index
	return l.setTruncated(b, truncatedState{index: meta.Index, term: meta.Term, cs: meta.ConfState.Clone()})
}

func (l *raftLog) setTruncated(b *storage.Batch, t truncatedState) error {
	l.trunc = t
	return b.Set(storage.TruncatedStateKey(l.rangeID), encodeTruncatedState(t))
}

// Encodings. Each starts with a version byte.

const codecV1 = 1

func encodeHardState(hs raft.HardState) []byte {
	e := enc{b: []byte{codecV1}}
	e.uint(hs.Term)
	e.uint(hs.Vote)
	e.uint(hs.Commit)
	return e.b
}

func decodeHardState(b []byte) (raft.HardState, error) {
	d := dec{b: b}
	if d.byte() != codecV1 {
		d.fail("hard state version")
	}
	hs := raft.HardState{Term: d.uint(), Vote: d.uint(), Commit: d.uint()}
	return hs, d.done()
}

// encodeEntry encodes all but the index, which is in the key.
func encodeEntry(e raft.Entry) []byte {
	w := enc{b: make([]byte, 0, len(e.Data)+16)}
	w.byte(codecV1)
	w.uint(e.Term)
	w.byte(byte(e.Type))
	w.bytes(e.Data)
	return w.b
}

func decodeEntry(index uint64, b []byte) (raft.Entry, error) {
	d := dec{b: b}
	if d.byte() != codecV1 {
		d.fail("entry version")
	}
	e := raft.Entry{Index: index, Term: d.uint(), Type: raft.EntryType(d.byte())}
	e.Data = d.bytes()
	return e, d.done()
}

func encodeConfState(e *enc, cs raft.ConfState) {
	members := func(ms []raft.Member) {
		e.int(len(ms))
		for _, m := range ms {
			e.uint(m.ID)
			e.string(m.Zone)
			e.int(m.Weight)
		}
	}
	ids := func(ids []uint64) {
		e.int(len(ids))
		for _, id := range ids {
			e.uint(id)
		}
	}
	e.string(cs.Geometry)
	members(cs.Voters)
	ids(cs.Learners)
	e.string(cs.OutgoingGeometry)
	members(cs.VotersOutgoing)
	ids(cs.LearnersNext)
}

// maxConfMembers bounds decoded member lists, so a corrupt count cannot
// make the decoder allocate without bound.
const maxConfMembers = 1 << 10

func decodeConfState(d *dec) raft.ConfState {
	count := func() int {
		n := d.int()
		if n > maxConfMembers {
			d.fail("member count")
			return 0
		}
		return n
	}
	members := func() []raft.Member {
		var ms []raft.Member
		for range count() {
			ms = append(ms, raft.Member{ID: d.uint(), Zone: d.string(), Weight: d.int()})
		}
		return ms
	}
	ids := func() []uint64 {
		var out []uint64
		for range count() {
			out = append(out, d.uint())
		}
		return out
	}
	var cs raft.ConfState
	cs.Geometry = d.string()
	cs.Voters = members()
	cs.Learners = ids()
	cs.OutgoingGeometry = d.string()
	cs.VotersOutgoing = members()
	cs.LearnersNext = ids()
	return cs
}

func encodeTruncatedState(t truncatedState) []byte {
	e := enc{b: []byte{codecV1}}
	e.uint(t.index)
	e.uint(t.term)
	encodeConfState(&e, t.cs)
	return e.b
}

func decodeTruncatedState(b []byte) (truncatedState, error) {
	d := dec{b: b}
	if d.byte() != codecV1 {
		d.fail("truncated state version")
	}
	t := truncatedState{index: d.uint(), term: d.uint()}
	t.cs = decodeConfState(&d)
	return t, d.done()
}
