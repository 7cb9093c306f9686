package quorum

import (
	"fmt"
	"math/bits"
	"slices"
)

// MaxProofVoters bounds the clusters Prove enumerates. The proof visits all
// 2^n subsets of the voters and keeps two bits for each: 2^24 subsets take
// 4 MiB and well under a second, and replica sets are far smaller (a 3x3
// grid is 9, a 5x5 grid 25 would already be refused).
const MaxProofVoters = 24

// maxExamples bounds the minimal quorums a Report lists per phase.
const maxExamples = 8

// Pair is a phase-1 quorum and a phase-2 quorum (or two phase-1 quorums)
// that share no voter: a counterexample to intersection. Both are minimal.
type Pair struct {
	A, B []uint64
}

// PhaseReport describes the quorums of one phase.
type PhaseReport struct {
	// Describe is the geometry's own description of a quorum of the phase.
	Describe string
	// MinSize and MaxSize are the sizes of the smallest and the largest
	// minimal quorums: the fewest voters that can decide, and the most a
	// decision may have to wait for when the smaller quorums are down.
	MinSize, MaxSize int
	// Minimal counts the minimal quorums (no voter can be left out).
	Minimal int
	// Examples lists up to 8 minimal quorums, smallest first.
	Examples [][]uint64
	// Tolerates is the largest f such that any f failed voters leave a
	// quorum of the phase alive.
	Tolerates int
	// Blocking is a smallest set of voters whose failure leaves no quorum of
	// the phase: Tolerates+1 voters.
	Blocking []uint64
}

// Report is the result of Prove.
type Report struct {
	Geometry string
	Voters   []uint64
	// Subsets is the number of subsets of the voters examined: 2^len(Voters).
	Subsets uint64

	Phase1, Phase2 PhaseReport

	// Intersect is the safety condition: every phase-1 quorum shares a voter
	// with every phase-2 quorum. When false, Counterexample holds a
	// phase-1 quorum (A) and a phase-2 quorum (B) that share none.
	Intersect      bool
	Counterexample *Pair

	// Phase1Intersect says whether any two phase-1 quorums share a voter.
	// When they need not (a grid's rows), two Raft candidates could each
	// win an election for the same term, unless terms are unique per
	// candidate; Phase1Disjoint then holds two disjoint phase-1 quorums.
	Phase1Intersect bool
	Phase1Disjoint  *Pair

	// BothBlocking is a smallest set of voters whose failure leaves neither
	// a phase-1 nor a phase-2 quorum: no election, no commit, no read.
	BothBlocking []uint64
}

// Tolerates is the number of failures after which a protocol that needs
// both phases (a new leader must be elected and then commit) is sure to go on.
func (r *Report) Tolerates() int { return min(r.Phase1.Tolerates, r.Phase2.Tolerates) }

// universe numbers the voters of a proof: voter Voters[i] is bit i.
type universe struct {
	ids []uint64
	pos map[uint64]uint
	all uint64
}

func newUniverse(ids []uint64) *universe {
	u := &universe{ids: ids, pos: make(map[uint64]uint, len(ids))}
	for i, id := range ids {
		u.pos[id] = uint(i)
	}
	u.all = 1<<len(ids) - 1
	return u
}

func (u *universe) members(m uint64) []uint64 {
	out := make([]uint64, 0, bits.OnesCount64(m))
	for ; m != 0; m &= m - 1 {
		out = append(out, u.ids[bits.TrailingZeros64(m)])
	}
	return out
}

// bitset holds one bit per subset of the universe.
type bitset []uint64

func newBitset(n uint64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }

// Prove checks the geometry s by enumerating every subset of its voters.
// It returns an error only when the cluster is too large to enumerate.
func Prove(s System) (*Report, error) {
	voters := s.Voters()
	if len(voters) > MaxProofVoters {
		return nil, fmt.Errorf("%w: %s on %d voters: the proof enumerates every subset and handles at most %d voters",
			ErrInvalid, s, len(voters), MaxProofVoters)
	}
	u := newUniverse(voters)
	isQ := s.bits(u)
	n := u.all + 1

	// One pass fills in which subsets are quorums of each phase. Quorums are
	// monotone, so a subset's complement is the largest set disjoint from it:
	// a phase-1 quorum is disjoint from some phase-2 quorum exactly when its
	// complement is a phase-2 quorum. That turns "every pair of quorums
	// meets" into one lookup per subset.
	q1, q2 := newBitset(n), newBitset(n)
	for m := uint64(0); m < n; m++ {
		if isQ(Phase1, m) {
			q1.set(m)
		}
		if isQ(Phase2, m) {
			q2.set(m)
		}
	}
	if !q1.has(u.all) || !q2.has(u.all) {
		// Monotone geometries that pass New always have quorums; this
		// guards the proof's own assumption rather than user input.
		return nil, fmt.Errorf("%w: %s has no quorum at all", ErrInvalid, s)
	}

	r := &Report{
		Geometry: s.String(), Voters: voters, Subsets: n,
		Intersect: true, Phase1Intersect: true,
	}
	r.Phase1 = phaseReport(u, q1, s.Describe(Phase1))
	r.Phase2 = phaseReport(u, q2, s.Describe(Phase2))

	largestNeither := uint64(0)
	for m := uint64(0); m < n; m++ {
		comp := u.all &^ m
		if r.Intersect && q1.has(m) && q2.has(comp) {
			r.Intersect = false
			r.Counterexample = &Pair{u.members(shrink(m, q1)), u.members(shrink(comp, q2))}
		}
		if r.Phase1Intersect && q1.has(m) && q1.has(comp) {
			r.Phase1Intersect = false
			r.Phase1Disjoint = &Pair{u.members(shrink(m, q1)), u.members(shrink(comp, q1))}
		}
		if !q1.has(m) && !q2.has(m) && bits.OnesCount64(m) > bits.OnesCount64(largestNeither) {
			largestNeither = m
		}
	}
	r.BothBlocking = u.members(u.all &^ largestNeither)
	return r, nil
}

// shrink removes voters from the quorum m, lowest first, while it stays a
// quorum, and returns the minimal quorum left.
func shrink(m uint64, q bitset) uint64 {
	for rest := m; rest != 0; rest &= rest - 1 {
		if smaller := m &^ (rest & -rest); q.has(smaller) {
			m = smaller
		}
	}
	return m
}

func phaseReport(u *universe, q bitset, describe string) PhaseReport {
	pr := PhaseReport{Describe: describe, MinSize: len(u.ids) + 1}
	var examples []uint64
	largestNon := uint64(0)
	for m := uint64(0); m <= u.all; m++ {
		if !q.has(m) {
			if bits.OnesCount64(m) > bits.OnesCount64(largestNon) {
				largestNon = m
			}
			continue
		}
		if !isMinimal(m, q) {
			continue
		}
		size := bits.OnesCount64(m)
		pr.Minimal++
		pr.MinSize = min(pr.MinSize, size)
		pr.MaxSize = max(pr.MaxSize, size)
		examples = keepSmallest(examples, m)
	}
	for _, m := range examples {
		pr.Examples = append(pr.Examples, u.members(m))
	}
	// The failures that block a phase are the complement of a set that holds
	// no quorum; the largest such set gives the smallest blocking failure.
	pr.Blocking = u.members(u.all &^ largestNon)
	pr.Tolerates = len(pr.Blocking) - 1
	return pr
}

func isMinimal(m uint64, q bitset) bool {
	for rest := m; rest != 0; rest &= rest - 1 {
		if q.has(m &^ (rest & -rest)) {
			return false
		}
	}
	return true
}

// keepSmallest adds m to the sorted list of at most maxExamples sets,
// ordered by size and then by bits.
func keepSmallest(list []uint64, m uint64) []uint64 {
	less := func(a, b uint64) int {
		if c := bits.OnesCount64(a) - bits.OnesCount64(b); c != 0 {
			return c
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	i, _ := slices.BinarySearchFunc(list, m, less)
	if i >= maxExamples {
		return list
	}
	list = slices.Insert(list, i, m)
	if len(list) > maxExamples {
		list = list[:maxExamples]
	}
	return list
}
