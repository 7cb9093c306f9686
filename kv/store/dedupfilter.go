package store

import (
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/storage"
)

// The dedup filter: nearly every write with an idempotency key is a new
// one, with no answer kept for it, and learning that from Pebble costs a
// point read that misses (in the memtable, which holds the Raft log too,
// and in every level whose bloom filter cannot rule the key out): about a
// tenth of a node's CPU under a load of puts. So each replica remembers in
// memory a fingerprint of every idempotency key it kept an answer for
// within its horizon, and reads Pebble only for a key whose fingerprint it
// holds: a retry, or one collision in 2^64.
//
// What it promises, and all that keptAnswer relies on: every answer kept
// on disk for the range, proposed at or after the horizon, has its
// fingerprint in the filter. It may hold more (answers deleted since,
// answers older than the horizon): those only cost a read. So:
//   - it is built from the disk, lazily, by the first apply that asks
//     after the replica's dedup state was loaded or replaced: on start, and
//     after a snapshot install or a merge, which bring answers from other
//     replicas or ranges (dedupState is replaced then, and its filter with
//     it);
//   - every answer the apply keeps is added at once, before its batch
//     commits;
//   - fingerprints are grouped in generations by the time the answer's
//     command was proposed, and a generation is dropped once all of its
//     times are before the horizon, as keptAnswer forgets those answers.
//
// Memory: a fingerprint is 8 bytes in a Go map, which spends 25 to 40
// bytes on each (measured with 0.1 to 1.5 million, load factor and growth
// included). A node that applies 5,000 keyed writes a second (every
// replica applies every write of its range) holds 1.5 million of them at
// the default 5-minute window: 40 to 60 MB. A shorter window costs less
// memory, and less disk for the answers (about 100 bytes each).

// dedupGenerations is how many generations a window is cut into: more
// frees memory closer to when answers expire, fewer makes a lookup (one
// map each) cheaper.
const dedupGenerations = 4

// dedupFilter holds the fingerprints of a range's kept answers.
type dedupFilter struct {
	// width is the span of proposal times, in nanoseconds, of one
	// generation.
	width int64
	// gens are the generations by number: a command proposed at time at
	// belongs to generation floor(at / width).
	gens map[int64]map[uint64]struct{}
}

func newDedupFilter(window time.Duration) *dedupFilter {
	return &dedupFilter{width: max(int64(window)/dedupGenerations, 1), gens: map[int64]map[uint64]struct{}{}}
}

func dedupFingerprint(idem []byte) uint64 { return xxhash.Sum64(idem) }

// generation returns the generation of proposal time at, rounding down
// also for times before the epoch.
func (f *dedupFilter) generation(at int64) int64 {
	g := at / f.width
	if at%f.width < 0 {
		g--
	}
	return g
}

// add remembers the answer kept for idem, proposed at at.
func (f *dedupFilter) add(idem []byte, at int64) {
	g := f.generation(at)
	set := f.gens[g]
	if set == nil {
		set = map[uint64]struct{}{}
		f.gens[g] = set
	}
	set[dedupFingerprint(idem)] = struct{}{}
}

// mayHold reports whether an answer may be kept for idem: false means
// none is, within the horizon.
func (f *dedupFilter) mayHold(idem []byte) bool {
	fp := dedupFingerprint(idem)
	for _, set := range f.gens {
		if _, ok := set[fp]; ok {
			return true
		}
	}
	return false
}

// expire drops the generations whose every proposal time is before
// horizon.
func (f *dedupFilter) expire(horizon int64) {
	for g := range f.gens {
		if (g+1)*f.width <= horizon {
			delete(f.gens, g)
		}
	}
}

// fingerprints returns how many fingerprints the filter holds.
func (f *dedupFilter) fingerprints() int {
	n := 0
	for _, set := range f.gens {
		n += len(set)
	}
	return n
}

// loadDedupFilter builds the filter of the range's answers kept on disk
// within horizon, and of those its apply batch kept so far (ab).
func loadDedupFilter(rd storage.Reader, rangeID uint64, horizon int64, window time.Duration, ab *applyBatch) (*dedupFilter, error) {
	f := newDedupFilter(window)
	entries := storage.RangeDedupEntrySpan(rangeID)
	err := eachKey(rd, entries, func(key, raw []byte) error {
		e, err := decodeDedupEntry(raw)
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", rangeID, command.Abbreviate(key[len(entries.Start):]), err)
		}
		if e.at >= horizon {
			f.add(key[len(entries.Start):], e.at)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for idem, e := range ab.dedup {
		f.add([]byte(idem), e.at)
	}
	return f, nil
}
