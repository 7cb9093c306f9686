package cores

import (
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/quorum"
)

// Design 10: the quorums. Each geometry runs on the Raft core (which
// takes all three: a term is owned by one candidate, so election quorums
// that can be disjoint, a grid's rows or the zones' picks, are safe), with
// lossy links and no other fault than a crash of a failure set the
// geometry survives: a set, chosen by the seed among the largest ones,
// whose loss leaves a phase-1 and a phase-2 quorum alive, so a leader can
// still be elected and commit. Package quorum's proof says which sets
// those are; the story also names one it does not survive, that set and
// one more node, without running it. The rule for the verdict is then the
// lab's usual one: the run's own fault is survivable, so anything but
// Correct is a failure of the design.
const (
	// geoFaults is how long the faults last; the crashed set stays down
	// until they heal.
	geoFaults = 2500 * time.Millisecond
	// geoCrashBy bounds when the set crashes: before, during or after
	// the first election.
	geoCrashBy = 500 * time.Millisecond
	// geoArrive spreads the buyers over the first 2s.
	geoArrive = 2 * time.Second
	// geoStopAfter is the unavailability that counts as a stop. Losing
	// a survivable set costs at most an election (0.1-0.3s), but a try
	// that a crashed or lost message leaves unanswered lasts its 1s
	// timeout; 1.5s is more than any seed of 1,000 shows.
	geoStopAfter = 1500 * time.Millisecond
)

// Weighted is design 10a: five voters with 3, 2, 1, 1 and 1 votes.
func Weighted(seed uint64) (*lab.Result, error) {
	res := &lab.Result{
		Design: "Five replicas on the product's Raft core with weighted votes: n1 has 3, n2 has 2, n3-n5 one each, and " +
			"a quorum of either phase is more than half of the 8 votes. A heavy node counts for several, so the " +
			"cluster survives losing n1 alone, n2 with one light node, or the three light nodes, but not n1 with any other.",
	}
	return runGeometry(seed, replsim.Weighted5(), res)
}

// Zones is design 10b: three datacenters of two replicas each.
func Zones(seed uint64) (*lab.Result, error) {
	res := &lab.Result{
		Design: "Six replicas on the product's Raft core in three datacenters of two (n1,n2 in a; n3,n4 in b; n5,n6 in " +
			"c): a phase-2 quorum is both nodes of one datacenter, so a leader commits inside one zone, and a " +
			"phase-1 quorum is a node in every datacenter, so every election hears from every zone.",
	}
	return runGeometry(seed, replsim.Zones3x2(), res)
}

// Grid is design 10c: nine replicas in a 3x3 grid.
func Grid(seed uint64) (*lab.Result, error) {
	res := &lab.Result{
		Design: "Nine replicas on the product's Raft core laid out in a 3x3 grid (n1-n3 the first row): a phase-1 quorum " +
			"is a full row and a phase-2 quorum a full column, and every row crosses every column, so each phase " +
			"waits for 3 nodes where a majority of 9 waits for 5.",
	}
	return runGeometry(seed, replsim.Grid3x3(), res)
}

// leaderAfter returns the first leadership seen after t.
func leaderAfter(ls []replsim.Leadership, t time.Duration) (replsim.Leadership, bool) {
	for _, l := range ls {
		if l.At > t {
			return l, true
		}
	}
	return replsim.Leadership{}, false
}

// survival is what a geometry survives, from package quorum.
type survival struct {
	m      replsim.Membership
	sys    quorum.System
	rep    *quorum.Report
	voters []uint64
	// largest are the failure sets it survives to which no node can be
	// added: losing any one more node too stops it.
	largest [][]uint64
}

// survive enumerates the failure sets of m: a set is survived when the
// voters left hold a phase-1 quorum and a phase-2 quorum.
func survive(m replsim.Membership) (*survival, error) {
	sys, err := m.System()
	if err != nil {
		return nil, err
	}
	rep, err := quorum.Prove(sys)
	if err != nil {
		return nil, err
	}
	sv := &survival{m: m, sys: sys, rep: rep, voters: sys.Voters()}
	n := len(sv.voters)
	all := uint64(1)<<n - 1
	ok := make([]bool, all+1)
	for f := uint64(0); f <= all; f++ {
		ok[f] = sv.survives(sv.members(f))
	}
	for f := uint64(0); f <= all; f++ {
		if !ok[f] {
			continue
		}
		largest := true
		for i := range n {
			if g := f | 1<<i; g != f && ok[g] {
				largest = false
				break
			}
		}
		if largest {
			sv.largest = append(sv.largest, sv.members(f))
		}
	}
	return sv, nil
}

// members returns the voters of bit set f.
func (sv *survival) members(f uint64) []uint64 {
	var out []uint64
	for ; f != 0; f &= f - 1 {
		out = append(out, sv.voters[bits.TrailingZeros64(f)])
	}
	return out
}

// survives reports whether losing failed leaves both phases a quorum.
func (sv *survival) survives(failed []uint64) bool {
	p1, p2 := sv.left(failed)
	return p1 && p2
}

// left reports which phases still have a quorum without failed.
func (sv *survival) left(failed []uint64) (p1, p2 bool) {
	alive := func(id uint64) bool {
		for _, f := range failed {
			if f == id {
				return false
			}
		}
		return true
	}
	return sv.sys.IsQuorum(quorum.Phase1, alive), sv.sys.IsQuorum(quorum.Phase2, alive)
}

// fatal returns failed and the first voter not in it: a set the geometry
// does not survive when failed is one of the largest it does.
func (sv *survival) fatal(failed []uint64) []uint64 {
	for _, v := range sv.voters {
		if !contains(failed, v) {
			out := append(append([]uint64(nil), failed...), v)
			sortIDs(out)
			return out
		}
	}
	return failed
}

func contains(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func sortIDs(ids []uint64) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// proofLine tells what the proof says the geometry survives.
func (sv *survival) proofLine() string {
	sets := make([]string, len(sv.largest))
	for i, f := range sv.largest {
		sets[i] = nodes(f)
	}
	list := strings.Join(sets, ", ")
	if len(sets) > 6 {
		list = strings.Join(sets[:6], ", ") + fmt.Sprintf(" and %d more", len(sets)-6)
	}
	return fmt.Sprintf("Package quorum's proof of %s: a phase-1 quorum is %s, a phase-2 quorum %s, and every phase-1 "+
		"quorum meets every phase-2 quorum; it survives any %d failed node(s), and the largest failure sets it survives "+
		"are %s.", sv.m, sv.sys.Describe(quorum.Phase1), sv.sys.Describe(quorum.Phase2), sv.rep.Tolerates(), list)
}

// fatalLine names a failure set the geometry does not survive, and why.
func (sv *survival) fatalLine(failed []uint64) string {
	bad := sv.fatal(failed)
	p1, p2 := sv.left(bad)
	var why []string
	if !p1 {
		why = append(why, "no phase-1 quorum ("+sv.sys.Describe(quorum.Phase1)+"), so no leader can be elected")
	}
	if !p2 {
		why = append(why, "no phase-2 quorum ("+sv.sys.Describe(quorum.Phase2)+"), so nothing can commit")
	}
	return fmt.Sprintf("One node more, %s, it would not survive: the nodes left hold %s.", nodes(bad), strings.Join(why, ", and "))
}

// runGeometry runs design 10 on m.
func runGeometry(seed uint64, m replsim.Membership, res *lab.Result) (*lab.Result, error) {
	sv, err := survive(m)
	if err != nil {
		return nil, err
	}
	var (
		failed  []uint64
		crashAt time.Duration
	)
	d := design{
		proto: raftProtocol(),
		sc: replsim.Scenario{
			Name: m.Geometry, Init: m, NoNemesis: true, Duration: geoFaults,
		},
		arrive:    geoArrive,
		stopAfter: geoStopAfter,
		faults: func(r *run) {
			s := r.sale.Sim
			failed = sv.largest[s.Rand().IntN(len(sv.largest))]
			crashAt = time.Duration(s.Rand().Int64N(int64(geoCrashBy)))
			s.After(crashAt, func() {
				for _, id := range failed {
					s.Crash(sim.NodeID(id))
				}
			})
		},
	}
	r, err := d.run(seed, res)
	if err != nil {
		return nil, err
	}
	res.Fault = fmt.Sprintf("A failure set the geometry survives, chosen by the seed among the largest (this run: %s), "+
		"crashes early and stays down for the rest of %s, on links that reorder, lose 2%% and duplicate 2%% of messages.",
		nodes(failed), ms(geoFaults))
	crash := fmt.Sprintf("This run crashed %s at %s, until the faults healed at %s", nodes(failed), ms(crashAt), ms(geoFaults))
	if l, ok := leaderAfter(r.c.Leaders(), crashAt); ok {
		crash += fmt.Sprintf("; %s led from %s", node(l.ID), ms(l.At))
	}
	answered := 0
	for _, a := range r.c.Answers() {
		if a.At >= crashAt && a.At < geoFaults {
			answered++
		}
	}
	crash += fmt.Sprintf(", and %d buyers got their answer while the set was down", answered)
	res.Story = append(res.Story, sv.proofLine(), crash+".", r.saleLine(res), sv.fatalLine(failed), r.endLine(res))
	return res, nil
}
