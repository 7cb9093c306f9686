package bench

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The client-side staleness check. It needs nothing from the server but
// the versions its answers carry, so it can be trusted to judge the
// server: a read "missed an acknowledged write" if it returned a version
// older than a write to the same key that was acknowledged before the
// read was sent, or no record at all after such a write. Writes still in
// flight when the read was sent do not count: the read may order before
// them. A linearizable keyspace (raft, paxos) never misses one; an
// eventual keyspace promises none only when W+R > N.

// Ack is a write acknowledged to the client: its key (an index into the
// workload's keys), the time the acknowledgement arrived, measured after
// the call returned so that it is never earlier than the real one, and the
// version the write was given.
type Ack struct {
	Key     int
	At      time.Duration
	Version string
}

// Read is an answered read: its key, the time it was sent, measured before
// the call so that it is never later than the real one, and the version it
// returned ("" for not found).
type Read struct {
	Key     int
	Sent    time.Duration
	Version string
}

// StaleCheck is what MissedAcks found.
type StaleCheck struct {
	// Reads is the number of reads checked.
	Reads int `json:"reads"`
	// Missed is the number of reads that missed an acknowledged write.
	Missed int `json:"missed"`
	// NotFound is the number of reads that found no record (missed or not).
	NotFound int `json:"not_found"`
	// Examples describes the first few missed reads.
	Examples []string `json:"examples,omitempty"`
}

// maxStaleExamples is how many missed reads a StaleCheck describes.
const maxStaleExamples = 5

// MissedAcks checks reads against acks (both timed from one origin). It
// sorts acks in place; it keeps neither slice. A version that cannot be
// parsed, or two versions of one key that cannot be ordered (different
// shapes or ranges), is an error: the check would otherwise be guessing.
func MissedAcks(acks []Ack, reads []Read) (StaleCheck, error) {
	slices.SortFunc(acks, func(a, b Ack) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.At, b.At)) })
	// Per key, the ack times in order and the newest version acknowledged
	// up to each of them: acknowledgements may arrive out of version order
	// (two concurrent writes), so the newest is not always the last.
	type acked struct {
		at     time.Duration
		newest Version
		raw    string
	}
	byKey := make(map[int][]acked)
	for _, a := range acks {
		v, err := ParseVersion(a.Version)
		if err != nil {
			return StaleCheck{}, fmt.Errorf("acknowledged write to key %d: %w", a.Key, err)
		}
		prev := byKey[a.Key]
		next := acked{at: a.At, newest: v, raw: a.Version}
		if len(prev) > 0 {
			last := prev[len(prev)-1]
			c, err := v.Compare(last.newest)
			if err != nil {
				return StaleCheck{}, fmt.Errorf("acknowledged writes to key %d: %w", a.Key, err)
			}
			if c < 0 {
				next.newest, next.raw = last.newest, last.raw
			}
		}
		byKey[a.Key] = append(prev, next)
	}
	check := StaleCheck{Reads: len(reads)}
	for _, r := range reads {
		if r.Version == "" {
			check.NotFound++
		}
		history := byKey[r.Key]
		// The acks strictly before the read was sent: one that arrived at
		// the very moment may be the same instant seen by two clocks.
		i, _ := slices.BinarySearchFunc(history, r.Sent, func(a acked, t time.Duration) int { return cmp.Compare(a.at, t) })
		if i == 0 {
			continue // nothing acknowledged before the read was sent
		}
		newest := history[i-1]
		if r.Version != "" {
			v, err := ParseVersion(r.Version)
			if err != nil {
				return StaleCheck{}, fmt.Errorf("read of key %d: %w", r.Key, err)
			}
			c, err := v.Compare(newest.newest)
			if err != nil {
				return StaleCheck{}, fmt.Errorf("read of key %d: %w", r.Key, err)
			}
			if c >= 0 {
				continue
			}
		}
		check.Missed++
		if len(check.Examples) < maxStaleExamples {
			check.Examples = append(check.Examples, fmt.Sprintf("key %d read at %v returned %q; %q was acknowledged at %v",
				r.Key, r.Sent, r.Version, newest.raw, newest.at))
		}
	}
	return check, nil
}

// Version is a record version as the API shows it, parsed so that two
// versions of one key can be ordered. It has one of two shapes:
//
//   - RANGE.INDEX in raft and paxos keyspaces: the range and the log
//     index (Raft) or slot (Multi-Paxos) of the write. The versions of one
//     key all come from its range, where a later write has a higher index.
//   - WALL.LOGICAL.NODE in eventual keyspaces: the write's hybrid logical
//     clock reading and its coordinator, ordered by those in turn, as last
//     writer wins orders them on the replicas.
type Version struct {
	hlc bool // WALL.LOGICAL.NODE; otherwise RANGE.INDEX
	// RANGE.INDEX
	rangeID, index uint64
	// WALL.LOGICAL.NODE
	wall          int64
	logical, node uint64
}

// ErrIncomparable marks two versions that cannot be ordered: one of each
// shape, or of two ranges.
var ErrIncomparable = errors.New("bench: versions cannot be ordered")

// ParseVersion reads RANGE.INDEX or WALL.LOGICAL.NODE.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	switch len(parts) {
	case 2:
		rangeID, err1 := strconv.ParseUint(parts[0], 10, 64)
		index, err2 := strconv.ParseUint(parts[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return Version{}, fmt.Errorf("bench: version %q: want RANGE.INDEX: %w", s, err)
		}
		return Version{rangeID: rangeID, index: index}, nil
	case 3:
		wall, err1 := strconv.ParseInt(parts[0], 10, 64)
		logical, err2 := strconv.ParseUint(parts[1], 10, 32)
		node, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return Version{}, fmt.Errorf("bench: version %q: want WALL.LOGICAL.NODE: %w", s, err)
		}
		return Version{hlc: true, wall: wall, logical: logical, node: node}, nil
	}
	return Version{}, fmt.Errorf("bench: version %q: want RANGE.INDEX (raft, paxos) or WALL.LOGICAL.NODE (eventual)", s)
}

// Compare orders v and o: -1, 0 or +1. Versions of different shapes or
// of different ranges are ErrIncomparable.
func (v Version) Compare(o Version) (int, error) {
	switch {
	case v.hlc != o.hlc:
		return 0, fmt.Errorf("%w: %v and %v have different shapes", ErrIncomparable, v, o)
	case v.hlc:
		return cmp.Or(cmp.Compare(v.wall, o.wall), cmp.Compare(v.logical, o.logical), cmp.Compare(v.node, o.node)), nil
	case v.rangeID != o.rangeID:
		return 0, fmt.Errorf("%w: %v and %v come from different ranges", ErrIncomparable, v, o)
	}
	return cmp.Compare(v.index, o.index), nil
}

// String shows the version as the API does.
func (v Version) String() string {
	if v.hlc {
		return fmt.Sprintf("%d.%d.%d", v.wall, v.logical, v.node)
	}
	return fmt.Sprintf("%d.%d", v.rangeID, v.index)
}
