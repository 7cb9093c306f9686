package paxos

import (
	"fmt"
	"slices"
)

// slotLog is a node's view of the slots: what its acceptor accepted in
// each, which are known chosen, and which the application has applied.
//
// Slots are chosen one by one and may be chosen out of order, so the log
// can have holes: slot 7 chosen while 5 is still open. The application
// sees none of that: it gets slots strictly in order, up to commit, the
// end of the prefix in which every slot is known chosen.
type slotLog struct {
	snap Snapshot // slots up to snap.Slot are compacted
	// entries[i] holds slot snap.Slot+1+i; a zero Ballot marks a slot this
	// acceptor has accepted nothing for.
	entries []Entry
	commit  uint64
	applied uint64
	// applyPaused: the application stopped applying after applied
	// (RawNode.AdvancePaused): no chosen entry is handed out until
	// RawNode.ResumeApply or a snapshot from the leader.
	applyPaused bool
	// chosen marks slots above commit known chosen (a leader's view).
	chosen map[uint64]bool
}

func newSlotLog(ps PersistentState, applied uint64) *slotLog {
	l := &slotLog{snap: ps.Snapshot, commit: max(ps.HardState.Commit, ps.Snapshot.Slot), chosen: map[uint64]bool{}}
	for _, e := range ps.Entries {
		if e.Slot > l.snap.Slot {
			l.set(e)
		}
	}
	// A persisted commit above the last persisted entry cannot be: entries
	// and hard state are written in one Ready.
	if l.commit > l.last() {
		panic(fmt.Sprintf("paxos: restart with commit %d past the last entry %d", l.commit, l.last()))
	}
	l.applied = min(max(applied, l.snap.Slot), l.commit)
	return l
}

func (l *slotLog) first() uint64 { return l.snap.Slot + 1 }

// last is the highest slot this log holds anything about.
func (l *slotLog) last() uint64 { return l.snap.Slot + uint64(len(l.entries)) }

// get returns the entry of slot s, if the acceptor accepted one and it is
// not compacted.
func (l *slotLog) get(s uint64) (Entry, bool) {
	if s <= l.snap.Slot || s > l.last() {
		return Entry{}, false
	}
	e := l.entries[s-l.first()]
	return e, !e.Ballot.IsZero()
}

// set stores e in its slot, growing the log with empty slots if needed.
func (l *slotLog) set(e Entry) {
	if e.Slot <= l.snap.Slot {
		panic(fmt.Sprintf("paxos: set slot %d at or below the snapshot %d", e.Slot, l.snap.Slot))
	}
	for l.last() < e.Slot {
		l.entries = append(l.entries, Entry{Slot: l.last() + 1})
	}
	l.entries[e.Slot-l.first()] = e
}

// appliedBytesSince is the size of the applied entries after slot from.
func (l *slotLog) appliedBytesSince(from uint64) uint64 {
	var n uint64
	for s := max(from+1, l.first()); s <= l.applied; s++ {
		if e, ok := l.get(s); ok {
			n += e.size()
		}
	}
	return n
}

// isChosen reports whether slot s is known chosen.
func (l *slotLog) isChosen(s uint64) bool { return s <= l.commit || l.chosen[s] }

// markChosen records slot s as chosen and extends the in-order prefix.
// It returns the slots newly added to the prefix.
func (l *slotLog) markChosen(s uint64) (from, to uint64) {
	if s > l.commit {
		l.chosen[s] = true
	}
	from = l.commit + 1
	for l.chosen[l.commit+1] {
		delete(l.chosen, l.commit+1)
		l.commit++
	}
	return from, l.commit
}

// accepted returns the entries this acceptor accepted in slots >= from,
// in slot order.
func (l *slotLog) accepted(from uint64) []Entry {
	var out []Entry
	for s := max(from, l.first()); s <= l.last(); s++ {
		if e, ok := l.get(s); ok {
			out = append(out, e)
		}
	}
	return out
}

// toApply returns the chosen entries after applied, in order, up to
// maxBytes (at least one).
func (l *slotLog) toApply(maxBytes uint64) []Entry {
	if l.applyPaused {
		return nil
	}
	var out []Entry
	var size uint64
	for s := l.applied + 1; s <= l.commit; s++ {
		e, ok := l.get(s)
		if !ok {
			panic(fmt.Sprintf("paxos: slot %d is chosen but this node holds no entry for it", s))
		}
		if size += e.size(); len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out
}

// compact drops the slots up to snap.Slot, which must be applied.
// Compacting to the snapshot's own slot again replaces its data.
func (l *slotLog) compact(snap Snapshot) {
	if snap.Slot > l.applied {
		panic(fmt.Sprintf("paxos: compact to slot %d past applied %d", snap.Slot, l.applied))
	}
	if snap.Slot < l.snap.Slot {
		return
	}
	l.entries = append([]Entry(nil), l.entries[snap.Slot-l.snap.Slot:]...)
	l.snap = snap
}

// install replaces everything up to snap.Slot with a snapshot from the
// leader: those slots are chosen, and the application must load snap.
func (l *slotLog) install(snap Snapshot) {
	if snap.Slot >= l.last() {
		l.entries = nil
	} else {
		l.entries = append([]Entry(nil), l.entries[snap.Slot-l.snap.Slot:]...)
	}
	l.snap = snap
	l.commit = max(l.commit, snap.Slot)
	l.applied = snap.Slot
	// The snapshot replaces whatever the application paused in.
	l.applyPaused = false
	for s := range l.chosen {
		if s <= l.commit {
			delete(l.chosen, s)
		}
	}
}

func slicesSort(s []uint64) { slices.Sort(s) }
