package cores

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// Design 8: Basic Paxos per key, on the product's core (package paxos)
// driven as an eventual keyspace's compare-and-swap drives it
// (kv/eventual's eventual_cas.go). Five acceptors keep, for the key
// "phone", a paxos.AcceptorState on their disk: each message builds an
// Acceptor from the state on disk, steps it, writes and syncs the state
// it returns when it changed, and only then sends the reply, so a crash
// forgets nothing an acceptor promised and a restart reads it back. Every
// buyer runs its own paxos.Proposer (its ID is the buyer's node ID) with
// SetOnce(its name) over a majority of the five: a compare-and-swap if
// absent. As the coordinator does, it counts an acceptor that does not
// answer a phase in time as a refusal, lets the quorum decide, and after
// a preemption proposes again after a random pause that doubles per
// attempt, its next ballot above every promise a refusal named. It is
// told "sold" if the value chosen is its name, "sold out" if not.
//
// At the end, with the crashed acceptor back, a reader runs one more
// proposal of the same core whose update writes nothing: phase 1 finds
// the value chosen and phase 2 chooses it again at the reader's ballot.
// The reader repeats that Accept until every acceptor has taken it, so
// each acceptor's state on disk names the owner.
const (
	// casKey is the key the buyers swap.
	casKey = "phone"
	// casRush: every buyer starts within it, so their proposers duel.
	casRush = 2 * time.Millisecond
	// casPhaseTimeout is how long a phase waits for an acceptor's answer
	// before counting it as a refusal: a round trip on the slowest link
	// takes 20ms.
	casPhaseTimeout = 40 * time.Millisecond
	// casBackoffMax and casMaxAttempts are kv/eventual's: the pause
	// before the next attempt is drawn from [0, 1ms<<attempt), capped at
	// casBackoffMax, and a buyer preempted casMaxAttempts times gets no
	// answer.
	casBackoffMax  = 64 * time.Millisecond
	casMaxAttempts = 30
	// casCrashBy bounds when the acceptor crashes: during the duel.
	casCrashBy = 60 * time.Millisecond
	// casDownMin and casDownMax bound how long it stays down.
	casDownMin = 100 * time.Millisecond
	casDownMax = 400 * time.Millisecond
	// casRepeat is how often the reader repeats its Accept to the
	// acceptors that have not taken it.
	casRepeat = 50 * time.Millisecond
	// casStopAfter: one acceptor down costs buyers retries, not a stop;
	// only this much time without answers would be one.
	casStopAfter = time.Second
	// casRunLimit bounds the sale's virtual time, casReadLimit the final
	// read's; a run that needs longer is a bug.
	casRunLimit  = 20 * time.Second
	casReadLimit = 5 * time.Second
)

// casLink loses, duplicates and reorders messages.
var casLink = sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.05, DupRate: 0.05}

// casMessage carries a Basic Paxos message about one key: the messages
// name no key, so the caller routes them, as kv/eventual does.
type casMessage struct {
	Key string
	M   paxos.BasicMessage
}

func (m casMessage) String() string { return m.Key + " " + m.M.String() }

// casStateKey is where an acceptor keeps key's state on its disk.
func casStateKey(key string) string { return "paxos/" + key }

// loadAcceptorState reads key's acceptor state from d: the zero state if
// the key never took part in a proposal.
func loadAcceptorState(d *sim.Disk, key string) paxos.AcceptorState {
	var st paxos.AcceptorState
	if b, ok := d.Get(casStateKey(key)); ok {
		if err := st.Unmarshal(b); err != nil {
			panic(fmt.Sprintf("cores: acceptor state of %q: %v", key, err)) // written by Marshal
		}
	}
	return st
}

// acceptorNode serves Basic Paxos for every key: an acceptor per message,
// restored from the key's state on disk, as kv/records' StepAcceptor
// does.
type acceptorNode struct {
	env *sim.Env
	id  uint64
	// accepted, if set, hears of every Accept taken.
	accepted func(acceptor uint64, b paxos.Ballot, value string)
}

func (a *acceptorNode) Receive(_ sim.NodeID, msg any) {
	m, ok := msg.(casMessage)
	if !ok {
		return
	}
	d := a.env.Disk()
	rd := paxos.NewAcceptor(a.id, loadAcceptorState(d, m.Key)).Step(m.M)
	if rd.Persist {
		d.Set(casStateKey(m.Key), rd.State.Marshal())
		d.Sync() // a reply is a promise: durable before it is sent
	}
	for _, r := range rd.Messages {
		if r.Type == paxos.BasicAccepted && !r.Reject && a.accepted != nil {
			a.accepted(a.id, r.Ballot, string(m.M.Value))
		}
		a.env.Send(sim.NodeID(r.To), casMessage{Key: m.Key, M: r})
	}
}

// proposerNode runs proposals of update on casKey with a paxos.Proposer
// until one is decided or casMaxAttempts were preempted.
type proposerNode struct {
	env    *sim.Env
	name   string
	p      *paxos.Proposer
	update paxos.UpdateFunc
	// decided hears of the outcome; gaveUp of the last preemption.
	decided func(o paxos.Outcome)
	gaveUp  func()

	attempt int
	// pending are the current phase's messages whose acceptor has not
	// answered, in the order sent.
	pending []paxos.BasicMessage
	sent    []paxos.BasicMessage // the current phase's messages
	granted []uint64             // acceptors that took the current phase's Accept
	timer   *sim.Timer
	late    bool // the current phase timed out
	// trips counts phases started, across attempts: the sequential round
	// trips the proposer waited for.
	trips             int
	refused, timedOut int // attempts preempted by refusals, by timeouts
	done              bool
	at                time.Duration // when decided
	out               paxos.Outcome
}

func newProposerNode(name string, id uint64, sys quorum.System, update paxos.UpdateFunc) *proposerNode {
	return &proposerNode{name: name, p: paxos.NewProposer(id, sys), update: update}
}

// propose starts an attempt: phase 1 at a ballot above every ballot
// heard of.
func (n *proposerNode) propose() {
	n.attempt++
	n.send(n.p.Propose(n.update))
}

// send starts a phase: msgs to their acceptors, and a timeout.
func (n *proposerNode) send(msgs []paxos.BasicMessage) {
	n.trips++
	n.sent, n.pending, n.granted, n.late = msgs, slices.Clone(msgs), nil, false
	for _, m := range msgs {
		n.env.Send(sim.NodeID(m.To), casMessage{Key: casKey, M: m})
	}
	if n.timer != nil {
		n.timer.Stop()
	}
	n.timer = n.env.After(casPhaseTimeout, n.timeout)
}

// timeout counts every acceptor that has not answered the phase as a
// refusal, as the coordinator counts a failed call: the quorum decides.
func (n *proposerNode) timeout() {
	n.late = true
	for _, m := range n.pending {
		n.p.Step(refusal(m))
	}
	n.pending = nil
	n.settle(nil)
}

// refusal is the refusal of m that an acceptor's silence counts as.
func refusal(m paxos.BasicMessage) paxos.BasicMessage {
	r := paxos.BasicMessage{Type: paxos.BasicPromise, From: m.To, To: m.From, Ballot: m.Ballot, Reject: true}
	if m.Type == paxos.BasicAccept {
		r.Type = paxos.BasicAccepted
	}
	return r
}

// answers returns the answer type of a request type.
func answers(t paxos.BasicType) paxos.BasicType {
	if t == paxos.BasicPrepare {
		return paxos.BasicPromise
	}
	return paxos.BasicAccepted
}

func (n *proposerNode) Receive(_ sim.NodeID, msg any) {
	m, ok := msg.(casMessage)
	if !ok || n.done {
		return
	}
	// Only the first answer to a message of the current phase counts:
	// answers to earlier attempts and duplicates are dropped, as the
	// coordinator drops answers to an earlier attempt.
	i := slices.IndexFunc(n.pending, func(s paxos.BasicMessage) bool {
		return s.To == m.M.From && s.Ballot == m.M.Ballot && answers(s.Type) == m.M.Type
	})
	if i < 0 {
		return
	}
	n.pending = slices.Delete(n.pending, i, i+1)
	if m.M.Type == paxos.BasicAccepted && !m.M.Reject {
		n.granted = append(n.granted, m.M.From)
	}
	n.settle(n.p.Step(m.M))
}

// settle acts on the proposer's state after a step: the next phase's
// messages to send, or the attempt's outcome.
func (n *proposerNode) settle(next []paxos.BasicMessage) {
	out, decided := n.p.Outcome()
	switch {
	case len(next) > 0:
		n.send(next)
	case !decided:
	case out.Preempted:
		n.timer.Stop()
		if n.late {
			n.timedOut++
		} else {
			n.refused++
		}
		if n.attempt >= casMaxAttempts {
			n.done, n.at = true, n.env.Now()
			n.gaveUp()
			return
		}
		// Randomized backoff, growing, so that dueling proposers stop
		// preempting each other (kv/eventual's casOp.decide).
		wait := min(time.Millisecond<<min(n.attempt, 10), casBackoffMax)
		n.timer = n.env.After(time.Duration(n.env.Rand().Int64N(int64(wait))), n.propose)
	default:
		n.timer.Stop()
		n.done, n.at, n.out = true, n.env.Now(), out
		n.decided(out)
	}
}

// readerNode learns the owner at the end: a proposal that writes nothing,
// so phase 2 chooses the current value again, then that Accept repeated
// to every acceptor until each has taken it.
type readerNode struct {
	*proposerNode
	taken  []uint64 // acceptors that took the final Accept
	repeat *sim.Timer
	// finished: every acceptor took the final Accept, or there was
	// nothing to choose; failed: the reader gave up.
	finished, failed bool
}

// read is the update that writes nothing: a compare-and-set whose
// condition never holds, so a proposal that finds a value chooses it again.
func read(cur []byte, _ bool) ([]byte, bool) { return cur, false }

func newReaderNode(id uint64, sys quorum.System) *readerNode {
	r := &readerNode{proposerNode: newProposerNode("reader", id, sys, read)}
	r.decided = func(o paxos.Outcome) {
		if !o.Exists {
			r.finished = true
			return
		}
		r.taken = slices.Clone(r.granted)
		r.finished = len(r.taken) == len(r.sent)
		if !r.finished {
			r.repeat = r.env.After(casRepeat, r.push)
		}
	}
	r.gaveUp = func() { r.failed = true }
	return r
}

// push sends the final Accept again to the acceptors that have not taken
// it, and again every casRepeat until all have.
func (r *readerNode) push() {
	if r.finished {
		return
	}
	for _, m := range r.sent {
		if !slices.Contains(r.taken, m.To) {
			r.env.Send(sim.NodeID(m.To), casMessage{Key: casKey, M: m})
		}
	}
	r.repeat = r.env.After(casRepeat, r.push)
}

func (r *readerNode) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(casMessage)
	if !ok || !r.done || r.finished || !r.out.Exists {
		r.proposerNode.Receive(from, msg)
		return
	}
	if m.M.Type != paxos.BasicAccepted || m.M.Ballot != r.out.Ballot {
		return
	}
	if m.M.Reject {
		// A higher ballot got in after the value was chosen: read again
		// above it (the proposer skips past the promise it names).
		r.p.Step(m.M)
		r.repeat.Stop()
		r.done = false
		r.propose()
		return
	}
	if !slices.Contains(r.taken, m.M.From) {
		r.taken = append(r.taken, m.M.From)
	}
	if r.finished = len(r.taken) == len(r.sent); r.finished {
		r.repeat.Stop()
		r.finished = true
	}
}

// choice is the moment a value was chosen: a majority of acceptors took
// it at one ballot.
type choice struct {
	at     time.Duration
	ballot paxos.Ballot
	value  string
	by     []uint64 // the acceptors, in the order they took it
}

// BasicPaxos is design 8: every buyer proposes at once over links that
// lose, duplicate and reorder messages, while one acceptor crashes and
// restarts. The product's Basic Paxos core sells the phone once.
func BasicPaxos(seed uint64) (*lab.Result, error) {
	sale := lab.NewSale(seed, casLink)
	sale.Matters(casMatters, casLabel)
	s := sale.Sim
	accIDs := []uint64{1, 2, 3, 4, 5}
	sys, err := quorum.Majority(accIDs...)
	if err != nil {
		return nil, err
	}
	// Acceptances per ballot, to find when a value was chosen.
	took := map[paxos.Ballot][]uint64{}
	var first *choice
	accepted := func(acc uint64, b paxos.Ballot, value string) {
		if slices.Contains(took[b], acc) {
			return
		}
		took[b] = append(took[b], acc)
		if first == nil && len(took[b]) == len(accIDs)/2+1 {
			first = &choice{at: s.Now(), ballot: b, value: value, by: slices.Clone(took[b])}
			sale.Mark(lab.Note, node(acc), value+" chosen")
		}
	}
	envs := make([]*sim.Env, len(accIDs))
	for i, id := range accIDs {
		sale.Lane(sim.NodeID(id), node(id))
		s.AddNode(sim.NodeID(id), func(env *sim.Env) sim.Process {
			envs[i] = env
			return &acceptorNode{env: env, id: id, accepted: accepted}
		})
	}
	names := lab.BuyerNames(buyers)
	props := make([]*proposerNode, len(names))
	for i, name := range names {
		id := uint64(firstBuyer + i)
		p := newProposerNode(name, id, sys, paxos.SetOnce([]byte(name)))
		p.decided = func(o paxos.Outcome) { sale.Answer(p.name, string(o.Value) == p.name, p.trips) }
		p.gaveUp = func() { sale.NoAnswer(p.name, fmt.Sprintf("preempted %d times", p.attempt)) }
		at := time.Duration(s.Rand().Int64N(int64(casRush) + 1))
		s.AddNode(sim.NodeID(id), func(env *sim.Env) sim.Process {
			p.env = env
			env.After(at, func() { sale.Begin(p.name); p.propose() })
			return p
		})
		sale.Lane(sim.NodeID(id), name)
		props[i] = p
	}
	readerID := uint64(firstBuyer + len(names))
	reader := newReaderNode(readerID, sys)
	s.AddNode(sim.NodeID(readerID), func(env *sim.Env) sim.Process {
		reader.env = env
		return reader
	})

	// The nemesis: one acceptor crashes during the duel and restarts.
	vi := s.Rand().IntN(len(accIDs))
	victim := accIDs[vi]
	crashAt := time.Duration(s.Rand().Int64N(int64(casCrashBy) + 1))
	downFor := casDownMin + time.Duration(s.Rand().Int64N(int64(casDownMax-casDownMin)+1))
	var held paxos.AcceptorState // what the victim's disk held when it crashed
	back := false
	s.After(crashAt, func() {
		held = loadAcceptorState(envs[vi].Disk(), casKey)
		s.Crash(sim.NodeID(victim))
		s.After(downFor, func() { s.Restart(sim.NodeID(victim)); back = true })
	})
	done := func() bool {
		for _, p := range props {
			if !p.done {
				return false
			}
		}
		return back
	}
	if err := s.RunUntil(done, casRunLimit); err != nil {
		return nil, fmt.Errorf("cores: basic paxos seed %d: %w", seed, err)
	}
	s.Heal()
	readAt := s.Now()
	reader.propose()
	if err := s.RunUntil(func() bool { return reader.finished || reader.failed }, casReadLimit); err != nil {
		return nil, fmt.Errorf("cores: basic paxos seed %d: final read: %w", seed, err)
	}
	if reader.failed {
		return nil, fmt.Errorf("cores: basic paxos seed %d: the final read was preempted %d times", seed, reader.attempt)
	}
	owners := make([]string, len(accIDs))
	for i := range accIDs {
		owners[i] = string(loadAcceptorState(envs[i].Disk(), casKey).Value)
	}
	res := &lab.Result{
		Design: "Basic Paxos per key on the product's core (package paxos), the one eventual keyspaces run for " +
			"compare-and-swap: five acceptors keep the key's promise and accepted value on disk, synced before each reply; " +
			"every buyer's proposer (ballots round.ID, its ID the buyer's node ID) sends compare-and-swap-if-absent with its " +
			"name. Phase 1 (Prepare/Promise, a majority) finds the value accepted at the highest ballot; phase 2 " +
			"(Accept/Accepted, a majority) chooses the buyer's name if there was none, or that value again. The buyer " +
			"is told \"sold\" if the chosen value is its name, \"sold out\" if not. A phase that a majority refuses, or " +
			"that has no majority of grants within 40ms (silence counts as a refusal), sends it back to phase 1 after a " +
			"random pause that doubles per attempt, at a ballot above every promise a refusal named.",
		Fault: fmt.Sprintf("All %d buyers propose within %s (dueling proposers); links lose and duplicate 5%% of messages "+
			"and reorder them; %s crashes at %s and restarts %s later.", len(names), ms(casRush), node(victim), ms(crashAt), ms(downFor)),
		Buyers: len(names),
	}
	sale.Finish(res, lab.Final{Owners: owners, Owner: string(reader.out.Value), StopAfter: casStopAfter})
	res.Story = casStory(res, props, reader, first, victim, held, crashAt, downFor, readAt, owners)
	return res, nil
}

// casStory tells the run: the duel and the crash, the moment a value was
// chosen, what each buyer was told, and what the final read found.
func casStory(res *lab.Result, props []*proposerNode, reader *readerNode, first *choice, victim uint64,
	held paxos.AcceptorState, crashAt, downFor, readAt time.Duration, owners []string) []string {
	refused, timedOut, top := 0, 0, paxos.Ballot{}
	for _, p := range props {
		refused, timedOut = refused+p.refused, timedOut+p.timedOut
		if top.Less(p.p.Ballot()) {
			top = p.p.Ballot()
		}
	}
	kept := "nothing"
	switch {
	case !held.Accepted.IsZero():
		kept = fmt.Sprintf("its promise of %v and %s accepted at %v", held.Promised, held.Value, held.Accepted)
	case !held.Promised.IsZero():
		kept = fmt.Sprintf("its promise of %v, nothing accepted", held.Promised)
	}
	story := []string{fmt.Sprintf("The %d proposers dueled: %d attempts were refused by a majority and %d ran out of time, "+
		"each retried after a random pause at a ballot above every promise heard of, up to %v; %s crashed at %s with %s on disk, "+
		"and restarted at %s with that state, read from its disk.",
		len(props), refused, timedOut, top, node(victim), ms(crashAt), kept, ms(crashAt+downFor))}
	if first != nil {
		owner := "a buyer"
		for _, p := range props {
			if p.p.Ballot().NodeID == first.ballot.NodeID {
				owner = p.name
			}
		}
		by := make([]string, len(first.by))
		for i, id := range first.by {
			by[i] = node(id)
		}
		story = append(story, fmt.Sprintf("At %s %s had accepted %s at ballot %v (round %d, %s's proposer): a majority, so %s was chosen.",
			ms(first.at), strings.Join(by, ", "), first.value, first.ballot, first.ballot.Round, owner, first.value))
	}
	var line strings.Builder
	out, none := 0, 0
	for _, p := range props {
		switch {
		case !p.out.Exists:
			none++
		case string(p.out.Value) == p.name:
			fmt.Fprintf(&line, "%s was told \"sold\" at %s after %s and %d round trips; ", p.name, ms(p.at), attempts(p.attempt), p.trips)
		default:
			out++
		}
	}
	fmt.Fprintf(&line, "%d other buyers found that value in phase 1, chose it again and were told \"sold out\"", out)
	if none > 0 {
		fmt.Fprintf(&line, "; %d got no answer", none)
	}
	story = append(story, line.String()+".")
	if res.Owner == "" {
		story = append(story, fmt.Sprintf("After healing, a read through a proposal at ballot %v found no value.", reader.out.Ballot))
		return story
	}
	story = append(story, fmt.Sprintf("After healing, at %s, a read through a proposal that writes nothing found %s and chose it again "+
		"at ballot %v; repeated until every acceptor took it, that Accept left the acceptors holding %s.",
		ms(readAt), res.Owner, reader.out.Ballot, strings.Join(owners, ", ")))
	return story
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// casMatters draws every Basic Paxos message between buyers and
// acceptors.
func casMatters(msg any) bool {
	_, ok := msg.(casMessage)
	return ok
}

// casLabel names a drawn message: "prepare 1.104", "promise 1.104
// (dan@1.104)", "refused: promised 2.101", "accept 1.104 dan".
func casLabel(msg any) string {
	m := msg.(casMessage).M
	switch {
	case m.Reject:
		return "refused: promised " + m.Promised.String()
	case m.Type == paxos.BasicPrepare:
		return "prepare " + m.Ballot.String()
	case m.Type == paxos.BasicPromise && !m.Accepted.IsZero():
		return fmt.Sprintf("promise %v (%s@%v)", m.Ballot, m.Value, m.Accepted)
	case m.Type == paxos.BasicPromise:
		return "promise " + m.Ballot.String()
	case m.Type == paxos.BasicAccept:
		return fmt.Sprintf("accept %v %s", m.Ballot, m.Value)
	}
	return "accepted " + m.Ballot.String()
}
