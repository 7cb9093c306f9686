package wrn

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/quorum"
)

// ErrInvalid marks bad quorum settings: a W or R out of range, an empty
// replica set.
var ErrInvalid = errors.New("wrn: invalid quorum")

// Quorums are a key's replicas with the sets a write must reach (phase 2)
// and a read must hear from (phase 1).
type Quorums struct {
	sys      quorum.System
	replicas []uint64
	// w and r are the sizes, when the quorums are sizes (0 otherwise).
	w, r int
}

// SizeQuorums are sizes: any W replicas acknowledge a write, any R answer
// a read. W+R <= N is allowed (a request may trade consistency for
// latency); Intersect says whether it was traded.
func SizeQuorums(replicas []uint64, w, r int) (Quorums, error) {
	n := len(replicas)
	if n == 0 {
		return Quorums{}, fmt.Errorf("%w: no replicas", ErrInvalid)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"W", w}, {"R", r}} {
		if c.v < 1 || c.v > n {
			return Quorums{}, fmt.Errorf("%w: %s=%d with %d replicas: want 1 to %d", ErrInvalid, c.name, c.v, n, n)
		}
	}
	nodes := make([]quorum.Node, n)
	for i, id := range replicas {
		nodes[i] = quorum.Node{ID: id}
	}
	sys, err := quorum.New(quorum.Spec{Kind: quorum.KindFlexible, Q1: r, Q2: w}, nodes)
	if err != nil {
		return Quorums{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return Quorums{sys: sys, replicas: slices.Clone(replicas), w: w, r: r}, nil
}

// GeometryQuorums take write sets from sys's phase-2 quorums and read sets
// from its phase-1 quorums (a grid's columns and rows, a zone and one node
// per zone).
func GeometryQuorums(sys quorum.System) Quorums {
	return Quorums{sys: sys, replicas: sys.Voters()}
}

// W is the size of the write quorums when they are sizes (SizeQuorums),
// 0 when they are a geometry's.
func (q Quorums) W() int { return q.w }

// Replicas returns the replicas, in a new slice.
func (q Quorums) Replicas() []uint64 { return slices.Clone(q.replicas) }

// Intersect reports whether every read set meets every write set, so that
// reads see every acknowledged write. For sizes that is W+R > N; for a
// geometry, see quorum.Prove.
func (q Quorums) Intersect() bool {
	if q.w > 0 {
		return q.w+q.r > len(q.replicas)
	}
	r, err := quorum.Prove(q.sys)
	return err == nil && r.Intersect
}

func (q Quorums) describe(p quorum.Phase) string {
	if q.w > 0 {
		if p == quorum.Phase2 {
			return fmt.Sprintf("W=%d of N=%d", q.w, len(q.replicas))
		}
		return fmt.Sprintf("R=%d of N=%d", q.r, len(q.replicas))
	}
	return q.sys.Describe(p)
}

// WriteSets describes the write sets, as "W=2 of N=3" or a geometry's
// phase-2 quorums.
func (q Quorums) WriteSets() string { return q.describe(quorum.Phase2) }

// ReadSets describes the read sets, as "R=2 of N=3" or a geometry's
// phase-1 quorums.
func (q Quorums) ReadSets() string { return q.describe(quorum.Phase1) }

// ResolveSize turns a named level into a size for n replicas: "one" is 1,
// "quorum" n/2+1, "all" n.
func ResolveSize(level string, n int) (int, error) {
	switch level {
	case "one":
		return 1, nil
	case "quorum":
		return n/2 + 1, nil
	case "all":
		return n, nil
	}
	return 0, fmt.Errorf("%w: level %q: want one, quorum or all", ErrInvalid, level)
}

// State is the state of a write or a read.
type State uint8

const (
	// Pending: the outcome depends on replicas yet to answer.
	Pending State = iota + 1
	// Done: a quorum answered as needed.
	Done
	// Failed: too many replicas failed for a quorum to be reached.
	Failed
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Done:
		return "done"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ErrUnavailable marks a write or read that cannot reach its quorum; the
// message says which quorum, how many answered and how many were needed.
var ErrUnavailable = errors.New("wrn: quorum unavailable")

// tally is what trackers share: a vote per replica, true for success.
type tally struct {
	q     Quorums
	phase quorum.Phase
	votes map[uint64]bool
	why   map[uint64]string
}

func newTally(q Quorums, p quorum.Phase) tally {
	return tally{q: q, phase: p, votes: map[uint64]bool{}, why: map[uint64]string{}}
}

func (t *tally) record(node uint64, ok bool, why string) {
	if !slices.Contains(t.q.replicas, node) {
		return // not a replica of this key: its answer counts for nothing
	}
	if prev, seen := t.votes[node]; seen && prev {
		return // a success stands; a later failure report changes nothing
	}
	t.votes[node] = ok
	if !ok {
		t.why[node] = why
	}
}

func (t *tally) state() State {
	switch quorum.Vote(t.q.sys, t.phase, t.votes) {
	case quorum.VoteWon:
		return Done
	case quorum.VoteLost:
		return Failed
	}
	return Pending
}

func (t *tally) count(ok bool) int {
	n := 0
	for _, v := range t.votes {
		if v == ok {
			n++
		}
	}
	return n
}

// err explains a failed (or unfinished) tally.
func (t *tally) err(verb string) error {
	var failed []string
	for _, id := range t.q.replicas {
		if ok, seen := t.votes[id]; seen && !ok {
			failed = append(failed, fmt.Sprintf("node %d: %s", id, t.why[id]))
		}
	}
	did := map[string]string{"write": "acknowledged", "read": "answered"}[verb]
	detail := ""
	if len(failed) > 0 {
		detail = "; failed: " + strings.Join(failed, "; ")
	}
	return fmt.Errorf("%w: %s needs %s; %d of %d replicas %s%s", ErrUnavailable, verb, t.q.describe(t.phase),
		t.count(true), len(t.q.replicas), did, detail)
}
