package raft

import (
	"errors"
	"fmt"
	"log/slog"
)

// raftLog is a node's view of the log: the persisted part in Storage,
// followed by the unstable part not yet persisted.
//
//	snapshot | storage entries | unstable entries
//	         ^ firstIndex                        ^ lastIndex
//
// Invariants: applied <= committed <= lastIndex.
type raftLog struct {
	storage  Storage
	unstable unstable
	// committed is the highest index known to be held by a phase-2 quorum.
	committed uint64
	// applied is the highest index the application has applied (Advance).
	applied uint64
	// applying is the highest index handed out in a Ready, not yet
	// acknowledged by Advance. applied <= applying <= committed.
	applying uint64
	// maxApplyingSize bounds the committed entries handed out at once.
	maxApplyingSize uint64
	// applyPaused: the application stopped applying at applied
	// (RawNode.AdvancePaused); no committed entry is handed out until it
	// resumes or a snapshot replaces the log.
	applyPaused bool
	logger      *slog.Logger
}

func newLog(storage Storage, logger *slog.Logger, maxApplyingSize uint64) (*raftLog, error) {
	first, err := storage.FirstIndex()
	if err != nil {
		return nil, err
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, err
	}
	return &raftLog{
		storage:         storage,
		unstable:        unstable{offset: last + 1, logger: logger},
		committed:       first - 1,
		applied:         first - 1,
		applying:        first - 1,
		maxApplyingSize: maxApplyingSize,
		logger:          logger,
	}, nil
}

func (l *raftLog) String() string {
	return fmt.Sprintf("committed=%d applied=%d applying=%d unstable.offset=%d len(unstable)=%d",
		l.committed, l.applied, l.applying, l.unstable.offset, len(l.unstable.entries))
}

// maybeAppend appends ents after the entry (index, logTerm) if the log
// holds that entry, as a follower does with a MsgApp, and commits up to
// min(committed, the last new index). It returns the last new index.
func (l *raftLog) maybeAppend(index, logTerm, committed uint64, ents []Entry) (uint64, bool) {
	if !l.matchTerm(index, logTerm) {
		return 0, false
	}
	lastNew := index + uint64(len(ents))
	ci := l.findConflict(ents)
	switch {
	case ci == 0:
		// Every entry is already held: nothing to write.
	case ci <= l.committed:
		panic(fmt.Sprintf("raft: entry %d conflicts with a committed entry (committed %d)", ci, l.committed))
	default:
		l.append(ents[ci-(index+1):]...)
	}
	l.commitTo(min(committed, lastNew))
	return lastNew, true
}

// append appends ents (which may overwrite an uncommitted suffix) and
// returns the new last index.
func (l *raftLog) append(ents ...Entry) uint64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	if after := ents[0].Index - 1; after < l.committed {
		panic(fmt.Sprintf("raft: append after %d is before the commit index %d", after, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	return l.lastIndex()
}

// findConflict returns the index of the first entry of ents that the log
// does not hold (a missing index or a different Term), or 0 if it holds
// them all. ents must be contiguous.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for _, e := range ents {
		if !l.matchTerm(e.Index, e.Term) {
			if e.Index <= l.lastIndex() {
				l.logger.Info(fmt.Sprintf("found conflict at index %d [existing term: %d, conflicting term: %d]",
					e.Index, l.zeroTermOnOutOfBounds(l.term(e.Index)), e.Term))
			}
			return e.Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose Term is <=
// term, and that Term. A leader and a follower use it to skip, in one
// round trip, every entry of a Term the other side does not have (the
// "fast back-off" of the Raft paper's §5.3 note).
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	for ; index > 0; index-- {
		t, err := l.term(index)
		if err != nil {
			// Compacted or unavailable: this is as far as the log can say.
			return index, 0
		}
		if t <= term {
			return index, t
		}
	}
	return 0, 0
}

// unstableEntries returns the entries to persist.
func (l *raftLog) unstableEntries() []Entry {
	if len(l.unstable.entries) == 0 {
		return nil
	}
	return l.unstable.entries[:len(l.unstable.entries):len(l.unstable.entries)]
}

// nextCommittedEnts returns the committed entries not yet handed out,
// bounded by maxApplyingSize.
func (l *raftLog) nextCommittedEnts() []Entry {
	lo, hi := l.applying+1, l.committed+1
	if lo >= hi || l.applyPaused {
		return nil
	}
	if lo < l.firstIndex() {
		// The entries are covered by a snapshot not yet applied; the
		// snapshot comes first.
		return nil
	}
	ents, err := l.slice(lo, hi, l.maxApplyingSize)
	if err != nil {
		panic(fmt.Sprintf("raft: reading committed entries [%d,%d): %v", lo, hi, err))
	}
	return ents
}

func (l *raftLog) hasNextCommittedEnts() bool {
	return !l.applyPaused && l.applying < l.committed && l.applying+1 >= l.firstIndex()
}

func (l *raftLog) snapshot() (Snapshot, error) {
	if l.unstable.snapshot != nil {
		return *l.unstable.snapshot, nil
	}
	return l.storage.Snapshot()
}

func (l *raftLog) firstIndex() uint64 {
	if i, ok := l.unstable.maybeFirstIndex(); ok {
		return i
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		panic(fmt.Sprintf("raft: storage.FirstIndex: %v", err))
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.maybeLastIndex(); ok {
		return i
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		panic(fmt.Sprintf("raft: storage.LastIndex: %v", err))
	}
	return i
}

func (l *raftLog) lastTerm() uint64 {
	t, err := l.term(l.lastIndex())
	if err != nil {
		panic(fmt.Sprintf("raft: term of the last entry: %v", err))
	}
	return t
}

// term returns the Term of entry i. The entry before the first one (the
// snapshot's) still has a Term.
func (l *raftLog) term(i uint64) (uint64, error) {
	if t, ok := l.unstable.maybeTerm(i); ok {
		return t, nil
	}
	if i+1 < l.firstIndex() {
		return 0, ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	t, err := l.storage.Term(i)
	if err == nil || errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) {
		return t, err
	}
	panic(fmt.Sprintf("raft: storage.Term(%d): %v", i, err))
}

func (l *raftLog) zeroTermOnOutOfBounds(t uint64, err error) uint64 {
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	gt, err := l.term(i)
	return err == nil && gt == t
}

// isUpToDate is the election restriction (Raft §5.4.1): a voter grants
// its vote only to a candidate whose last entry (lastIndex, lastTerm) is
// at least as up to date as its own, so that the winner holds every entry
// a phase-2 quorum stored (the election quorum meets it).
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	ourTerm := l.lastTerm()
	return lastTerm > ourTerm || (lastTerm == ourTerm && lastIndex >= l.lastIndex())
}

// commitTo raises the commit index to i; a lower i is a no-op (commit
// indexes never go back).
func (l *raftLog) commitTo(i uint64) {
	if i <= l.committed {
		return
	}
	if i > l.lastIndex() {
		panic(fmt.Sprintf("raft: commit index %d is out of range [last index %d]", i, l.lastIndex()))
	}
	l.committed = i
}

// acceptApplying records that committed entries up to i were handed out.
func (l *raftLog) acceptApplying(i uint64) {
	if i > l.committed || i < l.applying {
		panic(fmt.Sprintf("raft: handing out %d outside [applying %d, committed %d]", i, l.applying, l.committed))
	}
	l.applying = i
}

// appliedTo records that the application applied entries up to i.
func (l *raftLog) appliedTo(i uint64) {
	if i == 0 {
		return
	}
	if i > l.committed || i < l.applied {
		panic(fmt.Sprintf("raft: applied %d is out of range [prev applied %d, committed %d]", i, l.applied, l.committed))
	}
	l.applied = i
	l.applying = max(l.applying, i)
}

// pauseApplyAt records that the application applied entries up to i and
// stops there: the entries after i that were handed out count as not
// handed out, and none is until resumeApply.
func (l *raftLog) pauseApplyAt(i uint64) {
	l.appliedTo(i)
	l.applying = max(i, l.applied)
	l.applyPaused = true
}

func (l *raftLog) resumeApply() { l.applyPaused = false }

func (l *raftLog) stableTo(i, t uint64) { l.unstable.stableTo(i, t) }

func (l *raftLog) stableSnapTo(i uint64) { l.unstable.stableSnapTo(i) }

// restore replaces the log with snapshot s: everything up to its index is
// committed (a snapshot only holds committed state).
func (l *raftLog) restore(s Snapshot) {
	l.logger.Info(fmt.Sprintf("log [%s] starts to restore snapshot [index: %d, term: %d]",
		l, s.Metadata.Index, s.Metadata.Term))
	l.committed = s.Metadata.Index
	l.unstable.restore(s)
	// The snapshot replaces whatever the application paused in.
	l.applyPaused = false
}

// entries returns entries from i on, at most maxBytes (at least one).
func (l *raftLog) entries(i, maxBytes uint64) ([]Entry, error) {
	if i > l.lastIndex() {
		return nil, nil
	}
	return l.slice(i, l.lastIndex()+1, maxBytes)
}

// allEntries returns the whole log after the snapshot (tests).
func (l *raftLog) allEntries() []Entry {
	ents, err := l.entries(l.firstIndex(), noLimit)
	if err != nil {
		panic(err)
	}
	return ents
}

const noLimit = ^uint64(0)

// slice returns entries [lo, hi), their Size limited to maxBytes (at
// least one entry). It returns ErrCompacted if lo is before firstIndex.
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 || lo > hi {
		panic(fmt.Sprintf("raft: slice[%d,%d) out of bound [%d,%d]", lo, hi, l.firstIndex(), l.lastIndex()))
	}
	if lo == hi {
		return nil, nil
	}
	var ents []Entry
	if lo < l.unstable.offset {
		stored, err := l.storage.Entries(lo, min(hi, l.unstable.offset), maxBytes)
		if errors.Is(err, ErrCompacted) {
			return nil, err
		} else if err != nil {
			panic(fmt.Sprintf("raft: storage.Entries[%d,%d): %v", lo, min(hi, l.unstable.offset), err))
		}
		if uint64(len(stored)) < min(hi, l.unstable.offset)-lo {
			return stored, nil // the byte limit cut it short
		}
		ents = stored
	}
	if hi > l.unstable.offset {
		unst := l.unstable.slice(max(lo, l.unstable.offset), hi)
		if len(ents) > 0 {
			ents = append(ents[:len(ents):len(ents)], unst...)
		} else {
			ents = unst
		}
	}
	return limitSize(ents, maxBytes), nil
}
