package raft

import (
	"fmt"
	"log/slog"
)

// unstable holds what the core has accepted but Storage does not yet hold:
// entries and at most one snapshot, handed out in Ready for the
// application to persist. entries[i] has index offset+i.
type unstable struct {
	snapshot *Snapshot
	entries  []Entry
	offset   uint64
	logger   *slog.Logger
}

// maybeFirstIndex returns the first index after the unstable snapshot.
func (u *unstable) maybeFirstIndex() (uint64, bool) {
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index + 1, true
	}
	return 0, false
}

// maybeLastIndex returns the last index held, entry or snapshot.
func (u *unstable) maybeLastIndex() (uint64, bool) {
	if n := len(u.entries); n != 0 {
		return u.offset + uint64(n) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Metadata.Index, true
	}
	return 0, false
}

// maybeTerm returns the Term of entry i if unstable knows it.
func (u *unstable) maybeTerm(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && u.snapshot.Metadata.Index == i {
			return u.snapshot.Metadata.Term, true
		}
		return 0, false
	}
	last, ok := u.maybeLastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// stableTo records that entries up to i (with Term t at i) are persisted.
// If the entry at i was since replaced (a new leader overwrote it), the
// persisted one is not the one held here and nothing is released.
func (u *unstable) stableTo(i, t uint64) {
	gt, ok := u.maybeTerm(i)
	if !ok || gt != t || i < u.offset {
		return
	}
	n := i + 1 - u.offset
	// Drop the persisted prefix without keeping its array alive forever:
	// copy when the remainder is small compared to the array.
	rest := u.entries[n:]
	if cap(rest) > 2*len(rest)+64 {
		rest = append([]Entry(nil), rest...)
	}
	u.entries = rest
	u.offset = i + 1
}

func (u *unstable) stableSnapTo(i uint64) {
	if u.snapshot != nil && u.snapshot.Metadata.Index == i {
		u.snapshot = nil
	}
}

func (u *unstable) restore(s Snapshot) {
	u.offset = s.Metadata.Index + 1
	u.entries = nil
	u.snapshot = &s
}

// truncateAndAppend appends ents, replacing any held entries from
// ents[0].Index on. It copies ents.
func (u *unstable) truncateAndAppend(ents []Entry) {
	after := ents[0].Index
	switch {
	case after == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case after <= u.offset:
		// Everything held is replaced; Storage's suffix from after on is
		// replaced too when these entries are persisted.
		u.logger.Info(fmt.Sprintf("replace the unstable entries from index %d", after))
		u.offset = after
		u.entries = append([]Entry(nil), ents...)
	default:
		u.logger.Info(fmt.Sprintf("truncate the unstable entries before index %d", after))
		kept := u.entries[:after-u.offset]
		// Copy: a Ready handed out earlier may still reference the old array.
		u.entries = append(append([]Entry(nil), kept...), ents...)
	}
}

// slice returns entries [lo, hi), which must be held.
func (u *unstable) slice(lo, hi uint64) []Entry {
	if lo > hi || lo < u.offset || hi > u.offset+uint64(len(u.entries)) {
		panic(fmt.Sprintf("raft: unstable.slice[%d,%d) out of bounds [%d,%d)", lo, hi, u.offset, u.offset+uint64(len(u.entries))))
	}
	// Cap the result so a caller's append cannot write into u.entries.
	return u.entries[lo-u.offset : hi-u.offset : hi-u.offset]
}
