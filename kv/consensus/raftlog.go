package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// RaftLog is a range's Raft log and HardState in the node's Pebble
// database: raft.Storage for the core, plus the writes the store makes
// while handling a Ready.
//
// Only the store's goroutine uses it. The cached fields describe what is
// in Pebble once the batch being built commits; the core reads them only
// after that (the store persists a Ready before it touches the core again).
type RaftLog struct {
	db      *storage.DB
	rangeID uint64

	HardState raft.HardState
	// The log holds entries (trunc.index, last]; trunc is the snapshot
	// or compaction point, with the configuration in force there.
	Trunc truncatedState
	Last  uint64

	// snapshot builds a snapshot of the range's applied state on demand,
	// for a follower the log can no longer catch up.
	BuildSnapshot func() (raft.Snapshot, error)

	// sizes are the encoded sizes of the entries (Trunc.Index, Last], in
	// order, once sized says they are known: a restarted log learns them
	// by reading itself once, when RaftCore.Compact first needs them. They
	// let the log be truncated by bytes as well as by entries.
	sizes []uint32
	sized bool
	// weight is the sum of sizes, kept so that the decision to truncate,
	// taken every round, does not add them up again.
	weight uint64

	// tail holds the log's last entries as they were appended, ending at
	// Last, at most tailMaxEntries of them and about tailMaxBytes: Raft
	// reads back what it has just written (to send it to followers, to
	// apply it once committed, to check a term), and gets it from memory
	// instead of Pebble. A round whose batch is not committed stops the
	// store, so the tail never holds what the disk does not.
	tail      []raft.Entry
	tailBytes uint64
}

// Bounds of RaftLog.tail: a few rounds of a busy range, and little memory
// for a node of thousands of ranges.
const (
	tailMaxEntries = 256
	tailMaxBytes   = 64 << 10
)

// fromTail returns the entries [lo, hi) from the tail, if it holds them
// all.
func (l *RaftLog) fromTail(lo, hi uint64) ([]raft.Entry, bool) {
	if len(l.tail) == 0 || lo < l.tail[0].Index || hi > l.Last+1 || lo >= hi {
		return nil, false
	}
	first := l.tail[0].Index
	return l.tail[lo-first : hi-first], true
}

// appendTail adds ents, which follow Last or replace a suffix of the log,
// to the tail.
func (l *RaftLog) appendTail(ents []raft.Entry) {
	first := ents[0].Index
	if n := len(l.tail); n > 0 && (first < l.tail[0].Index || first > l.tail[n-1].Index+1) {
		l.dropTail() // the tail would not be contiguous
	}
	if n := len(l.tail); n > 0 {
		keep := int(first - l.tail[0].Index) // a replaced suffix goes
		for _, e := range l.tail[keep:] {
			l.tailBytes -= e.Size()
		}
		clear(l.tail[keep:])
		l.tail = l.tail[:keep]
	}
	for _, e := range ents {
		l.tail = append(l.tail, e)
		l.tailBytes += e.Size()
	}
	l.trimTail(0)
}

// trimTail drops the tail's entries up to index, and the oldest ones past
// its bounds.
func (l *RaftLog) trimTail(index uint64) {
	n := 0
	for n < len(l.tail) && (l.tail[n].Index <= index || len(l.tail)-n > tailMaxEntries || l.tailBytes > tailMaxBytes) {
		l.tailBytes -= l.tail[n].Size()
		n++
	}
	if n > 0 {
		l.tail = slices.Delete(l.tail, 0, n)
	}
}

func (l *RaftLog) dropTail() {
	clear(l.tail)
	l.tail, l.tailBytes = l.tail[:0], 0
}

// truncatedState is the point the log starts after.
type truncatedState struct {
	Index, term uint64
	cs          raft.ConfState
}

func LoadRaftLog(db *storage.DB, rangeID uint64) (*RaftLog, error) {
	l := &RaftLog{db: db, rangeID: rangeID}
	if b, err := db.Get(storage.HardStateKey(rangeID)); err == nil {
		if l.HardState, err = decodeHardState(b); err != nil {
			return nil, fmt.Errorf("kv: range %d hard state: %w", rangeID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if b, err := db.Get(storage.TruncatedStateKey(rangeID)); err == nil {
		if l.Trunc, err = decodeTruncatedState(b); err != nil {
			return nil, fmt.Errorf("kv: range %d truncated state: %w", rangeID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	l.Last = l.Trunc.Index
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
		l.Last = idx
	}
	return l, it.Error()
}

// InitialState implements raft.Storage.
func (l *RaftLog) InitialState() (raft.HardState, raft.ConfState, error) {
	return l.HardState, l.Trunc.cs.Clone(), nil
}

// Entries implements raft.Storage.
func (l *RaftLog) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if lo <= l.Trunc.Index {
		return nil, raft.ErrCompacted
	}
	if hi > l.Last+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) of range %d, last index %d", raft.ErrUnavailable, lo, hi, l.rangeID, l.Last)
	}
	if ents, ok := l.fromTail(lo, hi); ok {
		var size uint64
		for i, e := range ents {
			if size += e.Size(); i > 0 && size > maxBytes {
				ents = ents[:i]
				break
			}
		}
		return slices.Clone(ents), nil // raft may append to what it gets
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
			return nil, fmt.Errorf("%w: range %d log has a gap at %d (found %d)", codec.ErrCorrupt, l.rangeID, next, idx)
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
		return nil, fmt.Errorf("%w: range %d log is missing entry %d", codec.ErrCorrupt, l.rangeID, lo)
	}
	return ents, nil
}

// Term implements raft.Storage.
func (l *RaftLog) Term(i uint64) (uint64, error) {
	switch {
	case i == l.Trunc.Index:
		return l.Trunc.term, nil
	case i < l.Trunc.Index:
		return 0, raft.ErrCompacted
	case i > l.Last:
		return 0, raft.ErrUnavailable
	}
	if ents, ok := l.fromTail(i, i+1); ok {
		return ents[0].Term, nil
	}
	b, err := l.db.Get(storage.LogKey(l.rangeID, i))
	if err != nil {
		return 0, fmt.Errorf("kv: range %d entry %d: %w", l.rangeID, i, err)
	}
	e, err := decodeEntry(i, b)
	return e.Term, err
}

// LastIndex implements raft.Storage.
func (l *RaftLog) LastIndex() (uint64, error) { return l.Last, nil }

// FirstIndex implements raft.Storage.
func (l *RaftLog) FirstIndex() (uint64, error) { return l.Trunc.Index + 1, nil }

// Snapshot implements raft.Storage.
func (l *RaftLog) Snapshot() (raft.Snapshot, error) {
	if l.BuildSnapshot == nil {
		return raft.Snapshot{}, raft.ErrSnapshotTemporarilyUnavailable
	}
	return l.BuildSnapshot()
}

// SetHardState adds hs to b.
func (l *RaftLog) SetHardState(b *storage.Batch, hs raft.HardState) error {
	l.HardState = hs
	return b.Set(storage.HardStateKey(l.rangeID), EncodeHardState(hs))
}

// Append adds ents to b. They may replace a suffix of the log: entries
// after the new last one are deleted, so the log never holds a stale tail.
func (l *RaftLog) Append(b *storage.Batch, ents []raft.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	if first <= l.Trunc.Index || first > l.Last+1 {
		return fmt.Errorf("kv: range %d: append [%d, %d] to a log (%d, %d]", l.rangeID, first, last, l.Trunc.Index, l.Last)
	}
	if l.sized {
		keep := first - l.Trunc.Index - 1 // a replaced suffix goes
		for _, sz := range l.sizes[keep:] {
			l.weight -= uint64(sz)
		}
		l.sizes = l.sizes[:keep]
	}
	for _, e := range ents {
		enc := encodeEntry(e)
		if err := b.Set(storage.LogKey(l.rangeID, e.Index), enc); err != nil {
			return err
		}
		if l.sized {
			l.sizes = append(l.sizes, uint32(len(enc)))
			l.weight += uint64(len(enc))
		}
	}
	if last < l.Last {
		s := storage.LogSpan(l.rangeID, last+1, l.Last+1)
		if err := b.DeleteRange(s.Start, s.End); err != nil {
			return err
		}
	}
	l.Last = last
	l.appendTail(ents)
	return nil
}

// Truncate drops entries up to index (which must be applied), keeping the
// configuration cs in force there for restarts.
func (l *RaftLog) Truncate(b *storage.Batch, index uint64, cs raft.ConfState) error {
	if index <= l.Trunc.Index {
		return nil
	}
	term, err := l.Term(index)
	if err != nil {
		return err
	}
	s := storage.LogSpan(l.rangeID, l.Trunc.Index+1, index+1)
	if err := b.DeleteRange(s.Start, s.End); err != nil {
		return err
	}
	if l.sized {
		gone := int(index - l.Trunc.Index)
		for _, sz := range l.sizes[:gone] {
			l.weight -= uint64(sz)
		}
		l.sizes = slices.Delete(l.sizes, 0, gone)
	}
	l.trimTail(index)
	return l.setTruncated(b, truncatedState{Index: index, term: term, cs: cs.Clone()})
}

// Sizes returns the encoded sizes of the entries (Trunc.Index, Last], in
// order, and their sum, reading the log once after a restart.
func (l *RaftLog) Sizes() ([]uint32, uint64, error) {
	if l.sized {
		return l.sizes, l.weight, nil
	}
	it, err := l.db.NewIter(storage.RangeLogSpan(l.rangeID))
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	sizes := make([]uint32, 0, l.Last-l.Trunc.Index)
	var weight uint64
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, 0, err
		}
		sizes = append(sizes, uint32(len(v)))
		weight += uint64(len(v))
	}
	if err := it.Error(); err != nil {
		return nil, 0, err
	}
	if uint64(len(sizes)) != l.Last-l.Trunc.Index {
		return nil, 0, fmt.Errorf("%w: range %d log holds %d entries, want (%d, %d]", codec.ErrCorrupt, l.rangeID, len(sizes), l.Trunc.Index, l.Last)
	}
	l.sizes, l.sized, l.weight = sizes, true, weight
	return sizes, weight, nil
}

// InstallSnapshot replaces the whole log with the snapshot's point: the
// entries are superseded by the state the snapshot carries.
func (l *RaftLog) InstallSnapshot(b *storage.Batch, meta raft.SnapshotMetadata) error {
	s := storage.RangeLogSpan(l.rangeID)
	if err := b.DeleteRange(s.Start, s.End); err != nil {
		return err
	}
	l.Last = meta.Index
	l.sizes, l.sized, l.weight = l.sizes[:0], true, 0
	l.dropTail()
	return l.setTruncated(b, truncatedState{Index: meta.Index, term: meta.Term, cs: meta.ConfState.Clone()})
}

func (l *RaftLog) setTruncated(b *storage.Batch, t truncatedState) error {
	l.Trunc = t
	return b.Set(storage.TruncatedStateKey(l.rangeID), encodeTruncatedState(t))
}

// Encodings. Each starts with a version byte.

const CodecV1 = 1

func EncodeHardState(hs raft.HardState) []byte {
	e := codec.Enc{Buf: []byte{CodecV1}}
	e.Uint(hs.Term)
	e.Uint(hs.Vote)
	e.Uint(hs.Commit)
	return e.Buf
}

func decodeHardState(b []byte) (raft.HardState, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != CodecV1 {
		d.Fail("hard state version")
	}
	hs := raft.HardState{Term: d.Uint(), Vote: d.Uint(), Commit: d.Uint()}
	return hs, d.Done()
}

// encodeEntry encodes all but the index, which is in the key.
func encodeEntry(e raft.Entry) []byte {
	w := codec.Enc{Buf: make([]byte, 0, len(e.Data)+16)}
	w.Byte(CodecV1)
	w.Uint(e.Term)
	w.Byte(byte(e.Type))
	w.Bytes(e.Data)
	return w.Buf
}

func decodeEntry(index uint64, b []byte) (raft.Entry, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != CodecV1 {
		d.Fail("entry version")
	}
	e := raft.Entry{Index: index, Term: d.Uint(), Type: raft.EntryType(d.Byte())}
	e.Data = d.Bytes()
	return e, d.Done()
}

func encodeConfState(e *codec.Enc, cs raft.ConfState) {
	members := func(ms []raft.Member) {
		e.Int(len(ms))
		for _, m := range ms {
			e.Uint(m.ID)
			e.String(m.Zone)
			e.Int(m.Weight)
		}
	}
	ids := func(ids []uint64) {
		e.Int(len(ids))
		for _, id := range ids {
			e.Uint(id)
		}
	}
	e.String(cs.Geometry)
	members(cs.Voters)
	ids(cs.Learners)
	e.String(cs.OutgoingGeometry)
	members(cs.VotersOutgoing)
	ids(cs.LearnersNext)
}

// maxConfMembers bounds decoded member lists, so a corrupt count cannot
// make the decoder allocate without bound.
const maxConfMembers = 1 << 10

func decodeConfState(d *codec.Dec) raft.ConfState {
	members := func() []raft.Member {
		var ms []raft.Member
		// A member takes at least 3 bytes: ID, zone length, weight.
		for range d.Count("member count", maxConfMembers, 3) {
			ms = append(ms, raft.Member{ID: d.Uint(), Zone: d.String(), Weight: d.Int()})
		}
		return ms
	}
	ids := func() []uint64 {
		var out []uint64
		for range d.Count("learner count", maxConfMembers, 1) {
			out = append(out, d.Uint())
		}
		return out
	}
	var cs raft.ConfState
	cs.Geometry = d.String()
	cs.Voters = members()
	cs.Learners = ids()
	cs.OutgoingGeometry = d.String()
	cs.VotersOutgoing = members()
	cs.LearnersNext = ids()
	return cs
}

func encodeTruncatedState(t truncatedState) []byte {
	e := codec.Enc{Buf: []byte{CodecV1}}
	e.Uint(t.Index)
	e.Uint(t.term)
	encodeConfState(&e, t.cs)
	return e.Buf
}

func decodeTruncatedState(b []byte) (truncatedState, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != CodecV1 {
		d.Fail("truncated state version")
	}
	t := truncatedState{Index: d.Uint(), term: d.Uint()}
	t.cs = decodeConfState(&d)
	return t, d.Done()
}
