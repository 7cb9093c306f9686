package raft

import (
	"fmt"
	"sync"
)

// Storage is the stable log of a node: what has been persisted from Ready
// (entries, HardState, snapshots). The core reads it and never writes it;
// the application writes it while handling a Ready. The node layer
// implements it on Pebble; MemoryStorage is the in-memory version.
//
// Entries in Storage are durable: the core treats everything it reads
// from Storage as surviving a crash.
type Storage interface {
	// InitialState returns the persisted HardState and the ConfState of
	// the latest snapshot (the empty ConfState without one).
	InitialState() (HardState, ConfState, error)
	// Entries returns entries [lo, hi), their total Size limited to
	// maxBytes but at least one entry if any is in range. It returns
	// ErrCompacted if lo <= the snapshot index and ErrUnavailable if hi
	// is beyond LastIndex()+1. The caller must not modify the result.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
	// Term returns the Term of entry i, which must be in
	// [FirstIndex()-1, LastIndex()]: the snapshot's term is kept for
	// matching even though its entry is gone.
	Term(i uint64) (uint64, error)
	// LastIndex is the index of the last entry (the snapshot index if
	// there is none).
	LastIndex() (uint64, error)
	// FirstIndex is the index of the first entry that may still be read
	// with Entries (the snapshot index + 1).
	FirstIndex() (uint64, error)
	// Snapshot returns the latest snapshot. ErrSnapshotTemporarilyUnavailable
	// tells the leader to retry later; any other error is a broken
	// Storage, and the core panics (as etcd's does): a Storage that may
	// fail to build a snapshot returns ErrSnapshotTemporarilyUnavailable.
	Snapshot() (Snapshot, error)
}

// MemoryStorage is a Storage held in memory, for tests and the simulator.
// It is safe for concurrent use.
type MemoryStorage struct {
	mu struct {
		sync.Mutex
		hardState HardState
		snapshot  Snapshot
		// ents[0] is a dummy entry at the snapshot's index and term; the
		// log proper starts at ents[1].
		ents []Entry
	}
}

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	ms := &MemoryStorage{}
	ms.mu.ents = make([]Entry, 1)
	return ms
}

// BootstrapState returns what a node of a new cluster persists before its
// first start: one configuration entry at index 1 in Term 1, committed. All
// founding nodes must bootstrap with the same cs, so that their logs agree;
// nodes added later start empty and learn the configuration from the log
// or a snapshot.
func BootstrapState(cs ConfState) (HardState, []Entry, error) {
	if err := validateConfState(cs); err != nil {
		return HardState{}, nil, err
	}
	if cs.Joint() {
		return HardState{}, nil, fmt.Errorf("%w: cannot bootstrap a joint configuration", ErrInvalidConfig)
	}
	ent := Entry{Term: 1, Index: 1, Type: EntryConfChange, Data: encodeConfState(cs)}
	return HardState{Term: 1, Commit: 1}, []Entry{ent}, nil
}

// Bootstrap writes BootstrapState(cs) into an empty storage.
func (ms *MemoryStorage) Bootstrap(cs ConfState) error {
	hs, ents, err := BootstrapState(cs)
	if err != nil {
		return err
	}
	if li, _ := ms.LastIndex(); li != 0 {
		return fmt.Errorf("%w: storage is not empty (last index %d)", ErrInvalidConfig, li)
	}
	if err := ms.Append(ents); err != nil {
		return err
	}
	return ms.SetHardState(hs)
}

func (ms *MemoryStorage) InitialState() (HardState, ConfState, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.hardState, ms.mu.snapshot.Metadata.ConfState.Clone(), nil
}

// SetHardState persists hs.
func (ms *MemoryStorage) SetHardState(hs HardState) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.mu.hardState = hs
	return nil
}

func (ms *MemoryStorage) offset() uint64 { return ms.mu.ents[0].Index }

func (ms *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	off := ms.offset()
	if lo <= off {
		return nil, ErrCompacted
	}
	if hi > ms.lastIndex()+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) beyond last index %d", ErrUnavailable, lo, hi, ms.lastIndex())
	}
	ents := ms.mu.ents[lo-off : hi-off]
	// The result aliases ms.mu.ents; cap it so that a caller's append
	// cannot write into the storage's array.
	return limitSize(ents[:len(ents):len(ents)], maxBytes), nil
}

func (ms *MemoryStorage) Term(i uint64) (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	off := ms.offset()
	if i < off {
		return 0, ErrCompacted
	}
	if i-off >= uint64(len(ms.mu.ents)) {
		return 0, fmt.Errorf("%w: term of %d beyond last index %d", ErrUnavailable, i, ms.lastIndex())
	}
	return ms.mu.ents[i-off].Term, nil
}

func (ms *MemoryStorage) lastIndex() uint64 {
	return ms.mu.ents[0].Index + uint64(len(ms.mu.ents)) - 1
}

func (ms *MemoryStorage) LastIndex() (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.lastIndex(), nil
}

func (ms *MemoryStorage) FirstIndex() (uint64, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.offset() + 1, nil
}

func (ms *MemoryStorage) Snapshot() (Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mu.snapshot, nil
}

// ApplySnapshot replaces the storage's contents with snap (a snapshot
// received from the leader and handed out in Ready.Snapshot).
func (ms *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if snap.Metadata.Index <= ms.mu.snapshot.Metadata.Index {
		return ErrSnapOutOfDate
	}
	ms.mu.snapshot = snap
	ms.mu.ents = []Entry{{Term: snap.Metadata.Term, Index: snap.Metadata.Index}}
	return nil
}

// CreateSnapshot records a snapshot of the application's state at index i
// (which must be applied, hence in the log), with the configuration cs
// applied at i. It does not compact the log; call Compact for that.
func (ms *MemoryStorage) CreateSnapshot(i uint64, cs ConfState, data []byte) (Snapshot, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if i <= ms.mu.snapshot.Metadata.Index {
		return Snapshot{}, ErrSnapOutOfDate
	}
	if i > ms.lastIndex() {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d beyond last index %d", ErrUnavailable, i, ms.lastIndex())
	}
	ms.mu.snapshot = Snapshot{
		Metadata: SnapshotMetadata{Index: i, Term: ms.mu.ents[i-ms.offset()].Term, ConfState: cs.Clone()},
		Data:     data,
	}
	return ms.mu.snapshot, nil
}

// Compact discards the entries up to and including i, which must be at
// most the last index. The application compacts only what a snapshot
// covers, so that a follower left behind can still be sent one.
func (ms *MemoryStorage) Compact(i uint64) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	off := ms.offset()
	if i <= off {
		return ErrCompacted
	}
	if i > ms.lastIndex() {
		return fmt.Errorf("%w: compact %d beyond last index %d", ErrUnavailable, i, ms.lastIndex())
	}
	ents := make([]Entry, 1, uint64(len(ms.mu.ents))-(i-off))
	ents[0] = Entry{Index: i, Term: ms.mu.ents[i-off].Term}
	ms.mu.ents = append(ents, ms.mu.ents[i-off+1:]...)
	return nil
}

// Append persists ents, which must be contiguous. Entries from
// ents[0].Index on are replaced: a new leader may overwrite an
// uncommitted suffix. Entries already compacted are skipped.
func (ms *MemoryStorage) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	first := ms.offset() + 1
	last := ents[0].Index + uint64(len(ents)) - 1
	if last < first {
		return nil
	}
	if first > ents[0].Index {
		ents = ents[first-ents[0].Index:]
	}
	at := ents[0].Index - ms.offset()
	if at > uint64(len(ms.mu.ents)) {
		return fmt.Errorf("%w: append at %d leaves a gap after last index %d", ErrUnavailable, ents[0].Index, ms.lastIndex())
	}
	if at == uint64(len(ms.mu.ents)) {
		// A pure append: slices handed out by Entries are capped at their
		// length, so growing the array in place cannot change them.
		ms.mu.ents = append(ms.mu.ents, ents...)
		return nil
	}
	// Overwriting a suffix: copy, so that entries handed out earlier (and
	// perhaps still in flight in messages) keep their contents.
	ms.mu.ents = append(ms.mu.ents[:at:at], ents...)
	return nil
}

// limitSize returns the longest prefix of ents whose total Size is at most
// maxBytes, and at least one entry.
func limitSize(ents []Entry, maxBytes uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := ents[0].Size()
	for i := 1; i < len(ents); i++ {
		size += ents[i].Size()
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}
