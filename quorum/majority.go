package quorum

import (
	"fmt"
	"math/bits"
)

// majority: more than half of the voters, for both phases. Any two
// majorities of the same voters share a node, so it is safe for every
// protocol and phase-1 quorums meet each other too.
type majority struct{ voterSet }

func newMajority(vs voterSet) System { return majority{vs} }

func (m majority) size() int { return len(m.ids)/2 + 1 }

func (m majority) String() string { return "majority" }

func (m majority) Describe(Phase) string {
	return fmt.Sprintf("any %d of %d voters", m.size(), len(m.ids))
}

func (m majority) IsQuorum(_ Phase, in func(uint64) bool) bool {
	return m.count(in) >= m.size()
}

func (m majority) QuorumIndex(_ Phase, acked func(uint64) uint64) uint64 {
	return m.kth(m.size(), acked)
}

func (m majority) bits(u *universe) bitQuorum {
	all, need := u.mask(m.ids), m.size()
	return func(_ Phase, s uint64) bool { return bits.OnesCount64(s&all) >= need }
}

// flexible: any Q1 voters for phase 1 and any Q2 voters for phase 2. The two
// kinds meet exactly when Q1+Q2 exceeds the number of voters; New accepts
// sizes that do not, so that Prove can show why they are unsafe.
type flexible struct {
	voterSet
	q1, q2 int
}

func newFlexible(vs voterSet, q1, q2 int) (System, error) {
	n := len(vs.ids)
	for _, q := range []int{q1, q2} {
		if q > n {
			return nil, fmt.Errorf("%w: flexible:%d,%d needs quorums of %d but the cluster has %d voters", ErrInvalid, q1, q2, q, n)
		}
	}
	return flexible{vs, q1, q2}, nil
}

func (f flexible) size(p Phase) int {
	if p == Phase1 {
		return f.q1
	}
	return f.q2
}

func (f flexible) String() string { return fmt.Sprintf("flexible:%d,%d", f.q1, f.q2) }

func (f flexible) Describe(p Phase) string {
	return fmt.Sprintf("any %d of %d voters", f.size(p), len(f.ids))
}

func (f flexible) IsQuorum(p Phase, in func(uint64) bool) bool {
	return f.count(in) >= f.size(p)
}

func (f flexible) QuorumIndex(p Phase, acked func(uint64) uint64) uint64 {
	return f.kth(f.size(p), acked)
}

func (f flexible) bits(u *universe) bitQuorum {
	all := u.mask(f.ids)
	return func(p Phase, s uint64) bool { return bits.OnesCount64(s&all) >= f.size(p) }
}
