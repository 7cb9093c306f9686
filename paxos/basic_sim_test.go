package paxos_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// basicSim runs dueling Basic Paxos proposers against acceptors on a
// network that reorders, drops and duplicates, with acceptors that crash and
// restart from their persisted state. Acceptors are nodes 1..n, proposers
// 101, 102, ... Everything comes from one seed.
type basicSim struct {
	rng       *rand.Rand
	sys       quorum.System
	canary    paxos.Canary
	acceptors map[uint64]*paxos.Acceptor
	persisted map[uint64]paxos.AcceptorState
	proposers []*paxos.Proposer
	values    map[uint64][]byte // each proposer's own value
	queue     []paxos.BasicMessage
	// accepts[ballot] is the set of acceptors that took an Accept at that
	// ballot, and acceptValue its value: a phase-2 quorum in one set means
	// the value was chosen.
	accepts     map[paxos.Ballot]map[uint64]bool
	acceptValue map[paxos.Ballot]string
	chosen      map[string]paxos.Ballot
	outcomes    []paxos.Outcome
}

func newBasicSim(seed uint64, sys quorum.System, proposers int, c paxos.Canary) *basicSim {
	s := &basicSim{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), sys: sys, canary: c,
		acceptors: map[uint64]*paxos.Acceptor{}, persisted: map[uint64]paxos.AcceptorState{},
		values: map[uint64][]byte{}, accepts: map[paxos.Ballot]map[uint64]bool{},
		acceptValue: map[paxos.Ballot]string{}, chosen: map[string]paxos.Ballot{},
	}
	for _, id := range sys.Voters() {
		s.acceptors[id] = paxos.NewAcceptorWithCanary(id, paxos.AcceptorState{}, c)
	}
	for i := range proposers {
		id := uint64(101 + i)
		s.proposers = append(s.proposers, paxos.NewProposerWithCanary(id, sys, c))
		s.values[id] = fmt.Appendf(nil, "v%d", id)
	}
	return s
}

func (s *basicSim) deliver(m paxos.BasicMessage) error {
	if a, ok := s.acceptors[m.To]; ok {
		rd := a.Step(m)
		if rd.Persist {
			s.persisted[m.To] = rd.State // persist, then send
		}
		if m.Type == paxos.BasicAccept && !rd.Messages[0].Reject {
			if err := s.recordAccept(m); err != nil {
				return err
			}
		}
		s.queue = append(s.queue, rd.Messages...)
		return nil
	}
	p := s.proposers[m.To-101]
	s.queue = append(s.queue, p.Step(m)...)
	if o, done := p.Outcome(); done && !o.Preempted && m.Ballot == o.Ballot {
		s.outcomes = append(s.outcomes, o)
	}
	return nil
}

// recordAccept checks the Basic Paxos safety property: at most one value is
// ever chosen.
func (s *basicSim) recordAccept(m paxos.BasicMessage) error {
	set := s.accepts[m.Ballot]
	if set == nil {
		set = map[uint64]bool{}
		s.accepts[m.Ballot] = set
	}
	set[m.To] = true
	s.acceptValue[m.Ballot] = string(m.Value)
	if quorum.IsQuorumOf(s.sys, quorum.Phase2, keys(set)...) {
		s.chosen[string(m.Value)] = m.Ballot
		if len(s.chosen) > 1 {
			return fmt.Errorf("two values chosen: %v", s.chosen)
		}
	}
	return nil
}

func keys(m map[uint64]bool) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// step takes one random action: a proposer (re)starts, an acceptor crashes
// and restarts, or a message is delivered (any one: the network reorders),
// dropped or duplicated.
func (s *basicSim) step(faults bool) error {
	r := s.rng.IntN(100)
	switch {
	case r < 5 || len(s.queue) == 0:
		p := s.proposers[s.rng.IntN(len(s.proposers))]
		s.queue = append(s.queue, p.Propose(paxos.SetOnce(s.values[uint64(101+indexOf(s.proposers, p))]))...)
	case r < 10 && faults:
		ids := s.sys.Voters()
		id := ids[s.rng.IntN(len(ids))]
		s.acceptors[id] = paxos.NewAcceptorWithCanary(id, s.persisted[id], s.canary)
	default:
		i := s.rng.IntN(len(s.queue))
		m := s.queue[i]
		fault := s.rng.IntN(100)
		if !faults || fault >= 10 { // 10%: duplicate (deliver, keep a copy)
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
		}
		if faults && fault >= 10 && fault < 20 { // 10%: drop
			return nil
		}
		return s.deliver(m)
	}
	return nil
}

func indexOf(ps []*paxos.Proposer, p *paxos.Proposer) int {
	for i, q := range ps {
		if q == p {
			return i
		}
	}
	return -1
}

// checkOutcomes: every proposer that reports a value reports the same one,
// and it is the chosen one.
func (s *basicSim) checkOutcomes() error {
	for _, o := range s.outcomes {
		if !o.Exists {
			continue
		}
		if _, ok := s.chosen[string(o.Value)]; !ok || len(s.chosen) != 1 {
			return fmt.Errorf("outcome %q at %v but chosen %v", o.Value, o.Ballot, s.chosen)
		}
	}
	return nil
}

func runBasicSim(seed uint64, sys quorum.System, c paxos.Canary, steps int) error {
	s := newBasicSim(seed, sys, 3, c)
	for range steps {
		if err := s.step(true); err != nil {
			return err
		}
	}
	if err := s.checkOutcomes(); err != nil {
		return err
	}
	// Heal: one proposer alone on a clean network decides, on its second
	// attempt at the latest: the refusals of the first name the highest
	// promise, and the second ballot skips past it.
	s.queue = nil
	p := s.proposers[0]
	for attempt := 1; ; attempt++ {
		s.queue = p.Propose(paxos.SetOnce(s.values[101]))
		for len(s.queue) > 0 {
			m := s.queue[0]
			s.queue = s.queue[1:]
			if err := s.deliver(m); err != nil {
				return err
			}
		}
		o, done := p.Outcome()
		if done && !o.Preempted && o.Exists {
			break
		}
		if attempt == 2 {
			return fmt.Errorf("no decision after heal: %+v done=%v", o, done)
		}
	}
	return s.checkOutcomes()
}

func geometries(t testing.TB) map[string]quorum.System {
	out := map[string]quorum.System{}
	for name, spec := range map[string]struct {
		nodes string
		geo   string
	}{
		"majority3": {"3", "majority"},
		"majority5": {"5", "majority"},
		"grid2x3":   {"6", "grid:2x3"},
		"flex5-4,2": {"5", "flexible:4,2"},
	} {
		l, err := quorum.ParseNodeList(spec.nodes)
		if err != nil {
			t.Fatal(err)
		}
		sys, err := quorum.Parse(spec.geo, l.Nodes)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = sys
	}
	return out
}

const basicSeeds = 200

func TestBasicPaxosSim(t *testing.T) {
	for name, sys := range geometries(t) {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(basicSeeds) {
				if err := runBasicSim(seed, sys, paxos.CanaryNone, 400); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		})
	}
}

// TestBasicPaxosCanaries: each planted bug is caught on some seed that the
// correct code passes (TestBasicPaxosSim runs the same seeds).
func TestBasicPaxosCanaries(t *testing.T) {
	sys := geometries(t)["majority3"]
	for _, c := range paxos.Canaries {
		t.Run(c.String(), func(t *testing.T) {
			for seed := range uint64(basicSeeds) {
				if err := runBasicSim(seed, sys, c, 400); err != nil {
					t.Logf("caught at seed %d: %v", seed, err)
					return
				}
			}
			t.Fatalf("canary %v not caught in %d seeds", c, basicSeeds)
		})
	}
}
