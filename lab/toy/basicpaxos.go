package toy

// Design 8 of the article: Basic Paxos for the one value "who owns the
// phone". Five acceptors; every buyer is a proposer. A ballot is (round,
// buyer), unique because buyers' indexes are, and increasing because a
// proposer's next round is above every round it has seen.
//
//	Phase 1: the proposer sends Prepare(b) to every acceptor. An acceptor
//	  that has promised nothing above b promises b, syncs the promise, and
//	  answers with the ballot and value it last accepted.
//	Phase 2: with promises from a majority, the proposer picks the value
//	  accepted at the highest ballot among them, or its own name if none
//	  is, and sends Accept(b, value). An acceptor that has promised
//	  nothing above b accepts, syncs, and answers.
//	Accepted by a majority, the value is chosen: the proposer's buyer is
//	  told "sold" if the value is its name and "sold out" otherwise, and
//	  the proposer tells every acceptor the decision until each confirms.
//
// A refusal, or a phase without a majority within paxosPhaseTimeout,
// sends the proposer back to phase 1 with a higher round after a random,
// growing pause. Any majority of phase 1 meets any majority of phase 2,
// so a proposer that completes phase 1 after a value was chosen learns
// it and proposes it again: one owner, whatever the network does.

import (
	"fmt"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	paxosAcceptors = 5
	paxosBuyers    = 4
	// paxosRush: every buyer starts within it, so proposers duel.
	paxosRush = 2 * time.Millisecond
	// paxosPhaseTimeout is how long a phase waits for a majority: a round
	// trip on the slowest link is 20 ms.
	paxosPhaseTimeout = 40 * time.Millisecond
	// paxosBackoff is the first retry's longest pause; it doubles per
	// retry up to paxosBackoffMax. Too short and duels last; too long and
	// a lost message costs the buyer more time.
	paxosBackoff    = 10 * time.Millisecond
	paxosBackoffMax = 160 * time.Millisecond
	// paxosDecideEvery is how often a proposer repeats the decision to
	// acceptors that have not confirmed it.
	paxosDecideEvery = 50 * time.Millisecond
	// paxosGiveUp bounds a buyer's purchase.
	paxosGiveUp = 5 * time.Second
	// paxosStopAfter: an acceptor's crash costs buyers retries, not a
	// stop; only this much time without answers would be one.
	paxosStopAfter = time.Second
)

// paxosLink loses, duplicates and reorders messages.
func paxosLink() sim.LinkConfig {
	return sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.05, DupRate: 0.05}
}

const paxosDesign = "Basic Paxos on five acceptors; every buyer is a proposer with ballots (round, buyer). Phase 1: " +
	"Prepare to all, and a majority of promises (each synced before it is sent) returns the value accepted at the " +
	"highest ballot, if any. Phase 2: Accept that value, or the buyer's own name if there is none, and a majority of " +
	"acceptances (synced) chooses it. The buyer is told \"sold\" if the chosen value is its name and \"sold out\" " +
	"otherwise; a refusal or a timeout sends it back to phase 1 with a higher round after a random pause."

// paxosBallot orders proposals: by round, then by buyer.
type paxosBallot struct {
	Round uint64
	Buyer int
}

func (a paxosBallot) less(b paxosBallot) bool {
	return a.Round < b.Round || (a.Round == b.Round && a.Buyer < b.Buyer)
}

func (a paxosBallot) String() string { return fmt.Sprintf("%d.%d", a.Round, a.Buyer) }

// Messages between proposers and acceptors.
type (
	paxosPrepare struct{ Ballot paxosBallot }
	paxosPromise struct {
		Ballot   paxosBallot
		Accepted paxosBallot // zero: nothing accepted
		Value    string
	}
	paxosAccept struct {
		Ballot paxosBallot
		Value  string
	}
	paxosAccepted struct{ Ballot paxosBallot }
	// paxosRefuse answers a Prepare or an Accept below the acceptor's
	// promise, carrying the promise so the proposer can climb above it.
	paxosRefuse struct {
		Ballot   paxosBallot
		Promised paxosBallot
	}
	paxosDecide  struct{ Value string }
	paxosDecided struct{}
)

func (m paxosPrepare) drawn() string { return "prepare " + m.Ballot.String() }
func (m paxosPromise) drawn() string {
	if m.Value == "" {
		return "promise " + m.Ballot.String()
	}
	return fmt.Sprintf("promise %s (%s@%s)", m.Ballot, m.Value, m.Accepted)
}
func (m paxosAccept) drawn() string   { return fmt.Sprintf("accept %s %s", m.Ballot, m.Value) }
func (m paxosAccepted) drawn() string { return "accepted " + m.Ballot.String() }
func (m paxosRefuse) drawn() string   { return "refuse, promised " + m.Promised.String() }
func (paxosDecide) drawn() string     { return "" }
func (paxosDecided) drawn() string    { return "" }

// paxosAcceptor keeps its promise, what it accepted and the decision it
// was told, all synced to disk before it answers.
type paxosAcceptor struct {
	env      *sim.Env
	promised paxosBallot
	accepted paxosBallot
	value    string
	decided  string
}

func newPaxosAcceptor(env *sim.Env) *paxosAcceptor {
	a := &paxosAcceptor{env: env}
	d := env.Disk()
	a.promised = paxosLoadBallot(d, "promised")
	a.accepted = paxosLoadBallot(d, "accepted")
	v, _ := d.Get("value")
	a.value = string(v)
	v, _ = d.Get("decided")
	a.decided = string(v)
	return a
}

func paxosBallotBytes(b paxosBallot) []byte { return fmt.Appendf(nil, "%d %d", b.Round, b.Buyer) }

// paxosLoadBallot reads the ballot stored under key (zero if none).
func paxosLoadBallot(d *sim.Disk, key string) paxosBallot {
	var b paxosBallot
	if v, ok := d.Get(key); ok {
		if _, err := fmt.Sscan(string(v), &b.Round, &b.Buyer); err != nil {
			panic(err) // we wrote it
		}
	}
	return b
}

func (a *paxosAcceptor) Receive(from sim.NodeID, msg any) {
	d := a.env.Disk()
	switch m := msg.(type) {
	case paxosPrepare:
		if m.Ballot.less(a.promised) {
			a.env.Send(from, paxosRefuse{Ballot: m.Ballot, Promised: a.promised})
			return
		}
		a.promised = m.Ballot
		d.Set("promised", paxosBallotBytes(a.promised))
		d.Sync()
		a.env.Send(from, paxosPromise{Ballot: m.Ballot, Accepted: a.accepted, Value: a.value})
	case paxosAccept:
		if m.Ballot.less(a.promised) {
			a.env.Send(from, paxosRefuse{Ballot: m.Ballot, Promised: a.promised})
			return
		}
		a.promised, a.accepted, a.value = m.Ballot, m.Ballot, m.Value
		d.Set("promised", paxosBallotBytes(a.promised))
		d.Set("accepted", paxosBallotBytes(a.accepted))
		d.Set("value", []byte(a.value))
		d.Sync()
		a.env.Send(from, paxosAccepted{Ballot: m.Ballot})
	case paxosDecide:
		if a.decided == "" {
			a.decided = m.Value
			d.Set("decided", []byte(a.decided))
			d.Sync()
		}
		a.env.Send(from, paxosDecided{})
	}
}

// paxosProposer is a buyer running Basic Paxos for its own name.
type paxosProposer struct {
	sale      *lab.Sale
	env       *sim.Env
	name      string
	index     int // 1-based: the ballot's tie-breaker
	acceptors []sim.NodeID

	round    uint64 // highest round seen
	ballot   paxosBallot
	phase    int // 0 idle, 1 prepare, 2 accept, 3 decided
	answered map[sim.NodeID]bool
	best     paxosBallot
	value    string
	trips    int // phases run, across every retry: sequential round trips
	retries  int
	timer    *sim.Timer
	giveUp   *sim.Timer

	chosen    string
	confirmed map[sim.NodeID]bool // acceptors that confirmed the decision
	// hooks for the run's story
	onChosen func(p *paxosProposer)
}

func (p *paxosProposer) start() {
	p.sale.Begin(p.name)
	p.giveUp = p.env.After(paxosGiveUp, func() {
		if p.phase != 3 {
			p.phase = 3
			p.timer.Stop()
			p.sale.NoAnswer(p.name, "no decision")
		}
	})
	p.prepare()
}

func (p *paxosProposer) prepare() {
	if p.phase == 3 {
		return
	}
	p.round++
	p.ballot = paxosBallot{Round: p.round, Buyer: p.index}
	p.phase, p.answered, p.best, p.value = 1, map[sim.NodeID]bool{}, paxosBallot{}, ""
	p.trips++
	for _, id := range p.acceptors {
		p.env.Send(id, paxosPrepare{Ballot: p.ballot})
	}
	p.armTimeout()
}

func (p *paxosProposer) armTimeout() {
	if p.timer != nil {
		p.timer.Stop()
	}
	p.timer = p.env.After(paxosPhaseTimeout, p.retry)
}

// retry abandons the current ballot and starts phase 1 again after a
// random pause that grows with each retry.
func (p *paxosProposer) retry() {
	if p.phase == 3 {
		return
	}
	p.timer.Stop()
	p.phase = 0
	p.retries++
	ceiling := min(paxosBackoff<<min(p.retries, 8), paxosBackoffMax)
	p.timer = p.env.After(shopBetween(p.env, 0, ceiling), p.prepare)
}

func (p *paxosProposer) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case paxosPromise:
		if p.phase != 1 || m.Ballot != p.ballot || p.answered[from] {
			return
		}
		p.answered[from] = true
		p.round = max(p.round, m.Accepted.Round)
		if m.Value != "" && p.best.less(m.Accepted) {
			p.best, p.value = m.Accepted, m.Value
		}
		if len(p.answered) == quorumMajority(len(p.acceptors)) {
			p.accept()
		}
	case paxosAccepted:
		if p.phase != 2 || m.Ballot != p.ballot || p.answered[from] {
			return
		}
		p.answered[from] = true
		if len(p.answered) == quorumMajority(len(p.acceptors)) {
			p.decide()
		}
	case paxosRefuse:
		p.round = max(p.round, m.Promised.Round)
		if (p.phase == 1 || p.phase == 2) && m.Ballot == p.ballot {
			p.retry()
		}
	case paxosDecided:
		if p.confirmed != nil {
			p.confirmed[from] = true
		}
	}
}

func (p *paxosProposer) accept() {
	if p.value == "" {
		p.value = p.name
	}
	p.phase, p.answered = 2, map[sim.NodeID]bool{}
	p.trips++
	for _, id := range p.acceptors {
		p.env.Send(id, paxosAccept{Ballot: p.ballot, Value: p.value})
	}
	p.armTimeout()
}

func (p *paxosProposer) decide() {
	p.phase, p.chosen = 3, p.value
	p.timer.Stop()
	p.giveUp.Stop()
	p.sale.Answer(p.name, p.chosen == p.name, p.trips)
	if p.onChosen != nil {
		p.onChosen(p)
	}
	p.confirmed = map[sim.NodeID]bool{}
	p.tellDecision()
}

// tellDecision sends the decision to the acceptors that have not
// confirmed it, and again after paxosDecideEvery until all have.
func (p *paxosProposer) tellDecision() {
	pending := false
	for _, id := range p.acceptors {
		if !p.confirmed[id] {
			pending = true
			p.env.Send(id, paxosDecide{Value: p.chosen})
		}
	}
	if pending {
		p.env.After(paxosDecideEvery, p.tellDecision)
	}
}

// BasicPaxos runs design 8 with every buyer proposing at once, over links
// that lose, duplicate and reorder messages, while one acceptor crashes
// and restarts. It is correct: exactly one buyer is told "sold", and the
// acceptors agree on it.
func BasicPaxos(seed uint64) (*lab.Result, error) {
	sale := lab.NewSale(seed, paxosLink())
	shopDraw(sale)
	s := sale.Sim
	ids := shopServers(sale, paxosAcceptors)
	acceptors := map[sim.NodeID]*paxosAcceptor{}
	for _, id := range ids {
		s.AddNode(id, func(env *sim.Env) sim.Process {
			a := newPaxosAcceptor(env)
			acceptors[id] = a
			return a
		})
	}
	type choice struct {
		at     time.Duration
		by     string
		value  string
		ballot paxosBallot
		trips  int
	}
	var first *choice
	var proposers []*paxosProposer
	for i, name := range lab.BuyerNames(paxosBuyers) {
		p := &paxosProposer{sale: sale, name: name, index: i + 1, acceptors: ids}
		p.onChosen = func(p *paxosProposer) {
			if first == nil {
				first = &choice{s.Now(), p.name, p.chosen, p.ballot, p.trips}
			}
		}
		at := shopBetween(s, 0, paxosRush)
		id := sim.NodeID(101 + i)
		s.AddNode(id, func(env *sim.Env) sim.Process {
			p.env = env
			env.After(at, p.start)
			return p
		})
		sale.Lane(id, name)
		proposers = append(proposers, p)
	}
	// The nemesis: one acceptor crashes early in the duel and restarts.
	victim := ids[s.Rand().IntN(len(ids))]
	crashAt := shopBetween(s, 0, 60*time.Millisecond)
	downFor := shopBetween(s, 100*time.Millisecond, 400*time.Millisecond)
	back := false
	s.After(crashAt, func() {
		s.Crash(victim)
		s.After(downFor, func() { s.Restart(victim); back = true })
	})
	done := func() bool {
		for _, p := range proposers {
			if p.phase != 3 {
				return false
			}
		}
		return back
	}
	if err := s.RunUntil(done, shopRunLimit); err != nil {
		return nil, fmt.Errorf("toy: seed %d: %w", seed, err)
	}
	s.Heal()
	allDecided := func() bool {
		for _, id := range ids {
			if acceptors[id].decided == "" {
				return false
			}
		}
		return true
	}
	if err := s.RunUntil(allDecided, 2*time.Second); err != nil {
		return nil, fmt.Errorf("toy: seed %d: acceptors not told the decision: %w", seed, err)
	}
	var owners []string
	count := map[string]int{}
	owner := ""
	for _, id := range ids {
		o := acceptors[id].decided
		owners = append(owners, o)
		count[o]++
		if count[o] == quorumMajority(len(ids)) {
			owner = o
		}
	}
	retries := 0
	for _, p := range proposers {
		retries += p.retries
	}
	res := &lab.Result{
		Design: paxosDesign,
		Fault: fmt.Sprintf("All %d buyers propose within %v (dueling proposers); links lose and duplicate 5%% of messages and reorder them; %s crashes at %s and restarts %s later.",
			paxosBuyers, paxosRush, shopNode(victim), shopAt(crashAt), shopAt(downFor)),
		Buyers: paxosBuyers,
	}
	sale.Finish(res, lab.Final{Owners: owners, Owner: owner, StopAfter: paxosStopAfter})
	var story []string
	story = append(story, fmt.Sprintf("The %d proposers dueled: %d times in all a ballot was refused or timed out and its proposer retried higher; %s was down from %s to %s.",
		paxosBuyers, retries, shopNode(victim), shopAt(crashAt), shopAt(crashAt+downFor)))
	if first != nil {
		story = append(story, fmt.Sprintf("At %s a majority accepted %s at ballot %s (round %d, buyer %d), proposed by %s after %d round trips: %s was chosen.",
			shopAt(first.at), first.value, first.ballot, first.ballot.Round, first.ballot.Buyer, first.by, first.trips, first.value))
	}
	others := 0
	for _, p := range proposers {
		if p.chosen != "" && p.chosen != p.name {
			others++
		}
	}
	if len(res.ToldSold) > 0 {
		story = append(story, quorumToldLine(res)+fmt.Sprintf("; %d other buyers found %s in phase 1, proposed it again, and were told \"sold out\".", others, res.ToldSold[0]))
	}
	story = append(story, fmt.Sprintf("Every acceptor was told the decision: %s.", strings.Join(owners, ", ")))
	res.Story = story
	return res, nil
}
