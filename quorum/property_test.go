package quorum

import (
	"fmt"
	"math/bits"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// genSystem draws a geometry over 1 to 7 voters with IDs from idBase up.
func genSystem(t *rapid.T, label string, idBase uint64) System {
	kind := rapid.SampledFrom([]Kind{KindMajority, KindWeighted, KindGrid, KindZones, KindFlexible}).Draw(t, label+"kind")
	spec := Spec{Kind: kind}
	n := rapid.IntRange(1, 7).Draw(t, label+"n")
	switch kind {
	case KindGrid:
		spec.Rows = rapid.IntRange(1, 3).Draw(t, label+"rows")
		spec.Cols = rapid.IntRange(1, 3).Draw(t, label+"cols")
		n = spec.Rows * spec.Cols
	case KindFlexible:
		spec.Q1 = rapid.IntRange(1, n).Draw(t, label+"q1")
		spec.Q2 = rapid.IntRange(1, n).Draw(t, label+"q2")
	}
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{
			ID:     idBase + uint64(i),
			Zone:   rapid.SampledFrom([]string{"x", "y", "z"}).Draw(t, label+"zone"),
			Weight: rapid.IntRange(1, 4).Draw(t, label+"weight"),
		}
	}
	s, err := New(spec, nodes)
	if err != nil {
		t.Fatalf("New(%s): %v", spec, err)
	}
	return s
}

// genAny is a plain system or, one time in four, a joint of two systems
// whose voters overlap.
func genAny(t *rapid.T) System {
	s := genSystem(t, "a.", 1)
	if rapid.IntRange(0, 3).Draw(t, "joint") == 0 {
		s = NewJoint(s, genSystem(t, "b.", rapid.Uint64Range(1, 5).Draw(t, "b.base")))
	}
	return s
}

// subsets calls f with every subset of voters, as a membership test and as
// a bit set over the voters' positions.
func subsets(voters []uint64, f func(in func(uint64) bool, m uint64)) {
	for m := uint64(0); m < 1<<len(voters); m++ {
		f(func(id uint64) bool {
			i := slices.Index(voters, id)
			return i >= 0 && m&(1<<i) != 0
		}, m)
	}
}

func quorumMasks(s System, p Phase) []bool {
	voters := s.Voters()
	q := make([]bool, 1<<len(voters))
	subsets(voters, func(in func(uint64) bool, m uint64) { q[m] = s.IsQuorum(p, in) })
	return q
}

// Adding a voter to a quorum leaves a quorum; the proof and the quorum
// index both rely on it.
func TestPropertyMonotone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genAny(t)
		n := len(s.Voters())
		for _, p := range []Phase{Phase1, Phase2} {
			q := quorumMasks(s, p)
			for m := range q {
				for v := 0; v < n; v++ {
					if q[m] && !q[m|1<<v] {
						t.Fatalf("%s %s: %b is a quorum but %b is not", s, p, m, m|1<<v)
					}
				}
			}
			if !q[len(q)-1] {
				t.Fatalf("%s %s: all voters are no quorum", s, p)
			}
		}
	})
}

// The bit-set form the proof uses agrees with IsQuorum on every subset.
func TestPropertyBitsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genAny(t)
		u := newUniverse(s.Voters())
		b := s.bits(u)
		for _, p := range []Phase{Phase1, Phase2} {
			for m, want := range quorumMasks(s, p) {
				if got := b(p, uint64(m)); got != want {
					t.Fatalf("%s %s subset %b: bits say %v, IsQuorum %v", s, p, m, got, want)
				}
			}
		}
	})
}

// QuorumIndex agrees with its definition: the largest i such that the
// voters that acked at least i form a quorum.
func TestPropertyQuorumIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genAny(t)
		acked := map[uint64]uint64{}
		for _, id := range s.Voters() {
			acked[id] = rapid.Uint64Range(0, 6).Draw(t, fmt.Sprint("acked", id))
		}
		get := func(id uint64) uint64 { return acked[id] }
		for _, p := range []Phase{Phase1, Phase2} {
			var want uint64
			for _, i := range acked {
				if i > want && s.IsQuorum(p, func(id uint64) bool { return acked[id] >= i }) {
					want = i
				}
			}
			if got := s.QuorumIndex(p, get); got != want {
				t.Fatalf("%s %s acked %v: QuorumIndex %d, want %d", s, p, acked, got, want)
			}
		}
	})
}

// Vote is won exactly when the grants form a quorum and lost exactly when
// the voters that did not refuse do not.
func TestPropertyVote(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genAny(t)
		votes := map[uint64]bool{}
		for _, id := range s.Voters() {
			switch rapid.IntRange(0, 2).Draw(t, fmt.Sprint("vote", id)) {
			case 1:
				votes[id] = true
			case 2:
				votes[id] = false
			}
		}
		for _, p := range []Phase{Phase1, Phase2} {
			granted := s.IsQuorum(p, func(id uint64) bool { return votes[id] })
			open := s.IsQuorum(p, func(id uint64) bool { v, ok := votes[id]; return v || !ok })
			want := VotePending
			if granted {
				want = VoteWon
			} else if !open {
				want = VoteLost
			}
			if got := Vote(s, p, votes); got != want {
				t.Fatalf("%s %s votes %v: %s, want %s", s, p, votes, got, want)
			}
		}
	})
}

// The proof agrees with brute force over every pair of subsets, and its
// counterexamples and failure counts are what they claim to be.
func TestPropertyProveBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genAny(t)
		r, err := Prove(s)
		if err != nil {
			t.Fatal(err)
		}
		voters := s.Voters()
		q1, q2 := quorumMasks(s, Phase1), quorumMasks(s, Phase2)
		meets := func(qa, qb []bool) bool {
			for a := range qa {
				for b := range qb {
					if qa[a] && qb[b] && a&b == 0 {
						return false
					}
				}
			}
			return true
		}
		if got, want := r.Intersect, meets(q1, q2); got != want {
			t.Fatalf("%s: Intersect %v, brute force %v", s, got, want)
		}
		if got, want := r.Phase1Intersect, meets(q1, q1); got != want {
			t.Fatalf("%s: Phase1Intersect %v, brute force %v", s, got, want)
		}
		u := newUniverse(voters)
		checkPair := func(name string, pair *Pair, qa, qb []bool) {
			a, b := u.mask(pair.A), u.mask(pair.B)
			if !qa[a] || !qb[b] || a&b != 0 {
				t.Fatalf("%s: %s %v is not two disjoint quorums", s, name, *pair)
			}
			for _, m := range []uint64{a, b} {
				for rest := m; rest != 0; rest &= rest - 1 {
					if smaller := m &^ (rest & -rest); qa[smaller] && m == a || qb[smaller] && m == b {
						t.Fatalf("%s: %s %v is not minimal", s, name, *pair)
					}
				}
			}
		}
		if !r.Intersect {
			checkPair("counterexample", r.Counterexample, q1, q2)
		}
		if !r.Phase1Intersect {
			checkPair("phase-1 pair", r.Phase1Disjoint, q1, q1)
		}
		// Tolerates: the fewest failures that leave no quorum, minus one.
		all := uint64(1)<<len(voters) - 1
		fewest := func(blocked func(alive uint64) bool) int {
			best := len(voters)
			for f := uint64(0); f <= all; f++ {
				if blocked(all &^ f) {
					best = min(best, bits.OnesCount64(f))
				}
			}
			return best
		}
		for _, c := range []struct {
			pr *PhaseReport
			q  []bool
		}{{&r.Phase1, q1}, {&r.Phase2, q2}} {
			want := fewest(func(alive uint64) bool { return !c.q[alive] })
			if c.pr.Tolerates != want-1 || len(c.pr.Blocking) != want || c.q[all&^u.mask(c.pr.Blocking)] {
				t.Fatalf("%s: tolerates %d blocked by %v, brute force %d", s, c.pr.Tolerates, c.pr.Blocking, want-1)
			}
		}
		both := fewest(func(alive uint64) bool { return !q1[alive] && !q2[alive] })
		if len(r.BothBlocking) != both {
			t.Fatalf("%s: both phases blocked by %v, brute force needs %d", s, r.BothBlocking, both)
		}
	})
}
