package paxos_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// Basic Paxos as a per-key compare-and-set register (CASPaxos, Cassandra's
// lightweight transactions) in the simulator: acceptors are sim nodes
// keeping one AcceptorState per key on their disk; every client is its own
// proposer, so proposers duel on every key. Each operation is one Paxos
// round whose update function reads the register's current value in
// phase 1 and writes a value derived from it in phase 2; a get re-chooses
// the current value. The register value carries the clients' sessions (the
// last operation each applied and its result), so an operation retried
// after a preemption applies at most once even when a later proposer
// finishes the earlier attempt for it.
//
// Checked: porcupine on the history (get, put, delete, CAS), and after
// every step that at most one register value is chosen per version (the
// register's slot number: writes increment it, so two different values
// chosen with one version are two histories), counted from acceptances.

// casMsg carries a Basic Paxos message for one key.
type casMsg struct {
	Key string
	M   paxos.BasicMessage
}

func (m casMsg) String() string { return m.Key + " " + m.M.String() }

// casValue is the register's value.
type casValue struct {
	Present bool
	Value   string
	Version uint64
	// Sessions: client -> its last applied operation.
	Sessions map[uint64]casSession
}

type casSession struct {
	Seq     uint64
	Swapped bool
}

func decodeCAS(b []byte, exists bool) casValue {
	var v casValue
	if exists {
		if err := json.Unmarshal(b, &v); err != nil {
			panic(err)
		}
	}
	if v.Sessions == nil {
		v.Sessions = map[uint64]casSession{}
	}
	return v
}

// update is the operation in of client's operation seq as an UpdateFunc.
func update(client, seq uint64, in sim.KVInput) paxos.UpdateFunc {
	return func(cur []byte, exists bool) ([]byte, bool) {
		v := decodeCAS(cur, exists)
		if in.Op == sim.OpGet || v.Sessions[client].Seq >= seq {
			return cur, false // a read, or already applied by an earlier attempt
		}
		swapped := false
		switch in.Op {
		case sim.OpPut:
			v.Present, v.Value = true, in.Value
		case sim.OpDelete:
			v.Present, v.Value = false, ""
		case sim.OpCAS:
			if (in.ExpectAbsent && !v.Present) || (!in.ExpectAbsent && v.Present && v.Value == in.Expect) {
				v.Present, v.Value, swapped = true, in.Value, true
			}
		}
		v.Version++
		v.Sessions[client] = casSession{Seq: seq, Swapped: swapped}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b, true
	}
}

type casCluster struct {
	s      *sim.Sim
	sys    quorum.System
	canary paxos.Canary
	h      *sim.History
	ids    []uint64
	// accepts[key][ballot] and their value; chosen[key][version].
	accepts map[string]map[paxos.Ballot]map[uint64]bool
	values  map[string]map[paxos.Ballot]string
	chosen  map[string]map[uint64]string
	err     error
	clients []*casClient
	down    bool // an acceptor is down after maybeCrashAfterPromise
	broken  error
}

func (c *casCluster) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// accepted records that acceptor id durably accepted m.
func (c *casCluster) accepted(id uint64, key string, m paxos.BasicMessage) {
	if c.accepts[key] == nil {
		c.accepts[key] = map[paxos.Ballot]map[uint64]bool{}
		c.values[key] = map[paxos.Ballot]string{}
		c.chosen[key] = map[uint64]string{}
	}
	if v, ok := c.values[key][m.Ballot]; ok && v != string(m.Value) {
		c.fail("key %s: two values accepted at ballot %v: %s and %s", key, m.Ballot, v, m.Value)
	}
	c.values[key][m.Ballot] = string(m.Value)
	set := c.accepts[key][m.Ballot]
	if set == nil {
		set = map[uint64]bool{}
		c.accepts[key][m.Ballot] = set
	}
	set[id] = true
	if !quorum.IsQuorumOf(c.sys, quorum.Phase2, slices.Collect(mapsKeys(set))...) {
		return
	}
	ver := decodeCAS(m.Value, true).Version
	if v, ok := c.chosen[key][ver]; ok && v != string(m.Value) {
		c.fail("key %s: two values chosen for version %d: %s and %s (at %v)", key, ver, v, m.Value, m.Ballot)
	}
	c.chosen[key][ver] = string(m.Value)
}

func mapsKeys(m map[uint64]bool) func(func(uint64) bool) {
	return func(yield func(uint64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// casAcceptor is one acceptor node. It keeps an Acceptor per key in
// memory while it runs and rebuilds them from disk after a restart.
type casAcceptor struct {
	c   *casCluster
	env *sim.Env
	id  uint64
	acc map[string]*paxos.Acceptor
}

func (a *casAcceptor) Receive(from sim.NodeID, msg any) {
	m := msg.(casMsg)
	acc, ok := a.acc[m.Key]
	if !ok {
		var st paxos.AcceptorState
		if b, ok := a.env.Disk().Get("k/" + m.Key); ok {
			if err := st.Unmarshal(b); err != nil {
				// Only a planted bug writes such a state (a forgotten
				// promise lets a promise fall below an accepted ballot):
				// the run stops, and it is not counted as a catch.
				a.c.broken = fmt.Errorf("acceptor %d, key %s: %w", a.id, m.Key, err)
				return
			}
		}
		acc = paxos.NewAcceptorWithCanary(a.id, st, a.c.canary)
		a.acc[m.Key] = acc
	}
	rd := acc.Step(m.M)
	if rd.Persist {
		a.env.Disk().Set("k/"+m.Key, rd.State.Marshal())
		a.env.Disk().Sync() // durable before the reply: the reply is a promise
	}
	if m.M.Type == paxos.BasicAccept && len(rd.Messages) == 1 && !rd.Messages[0].Reject {
		a.c.accepted(a.id, m.Key, m.M)
	}
	for _, r := range rd.Messages {
		a.env.Send(sim.NodeID(r.To), casMsg{Key: m.Key, M: r})
		if r.Type == paxos.BasicPromise && !r.Reject {
			a.c.maybeCrashAfterPromise(a.id)
		}
	}
}

// maybeCrashAfterPromise crashes an acceptor right after it promised, now
// and then, and reboots it within 10ms: in time for the Accepts of the
// ballot it promised to ignore, which are still on their way.
func (c *casCluster) maybeCrashAfterPromise(id uint64) {
	if c.down || c.s.Rand().Float64() >= 0.05 {
		return
	}
	c.down = true
	nid := sim.NodeID(id)
	c.s.After(0, func() { c.s.Crash(nid) })
	c.s.After(500*time.Microsecond+time.Duration(c.s.Rand().Int64N(int64(10*time.Millisecond))), func() {
		c.down = false
		if !c.s.Up(nid) {
			c.s.Restart(nid)
		}
	})
}

// casClient runs one operation at a time as its own proposer.
type casClient struct {
	c         *casCluster
	env       *sim.Env
	id        uint64
	props     map[string]*paxos.Proposer // per key: it remembers ballots seen
	seq       uint64
	stopped   bool
	completed int
	op        *casOp
	writes    int
}

type casOp struct {
	seq      uint64
	in       sim.KVInput
	hist     *sim.Op
	p        *paxos.Proposer
	deadline *sim.Timer
	retry    *sim.Timer
}

func (cl *casClient) rand(n int) int { return cl.env.Rand().IntN(n) }

func (cl *casClient) next() {
	if cl.stopped || cl.op != nil {
		return
	}
	cl.seq++
	key := fmt.Sprintf("k%d", cl.rand(3))
	var in sim.KVInput
	cl.writes++
	val := fmt.Sprintf("c%d-%d", cl.id, cl.writes)
	switch p := cl.rand(100); {
	case p < 35:
		in = sim.KVGet(key)
	case p < 55:
		in = sim.KVPut(key, val)
	case p < 62:
		in = sim.KVDelete(key)
	case p < 75:
		in = sim.KVCASAbsent(key, val)
	default:
		in = sim.KVCAS(key, fmt.Sprintf("c%d-%d", 101+cl.rand(len(cl.c.clients)), 1+cl.rand(cl.writes)), val)
	}
	p := cl.props[key]
	if p == nil {
		p = paxos.NewProposerWithCanary(cl.id, cl.c.sys, cl.c.canary)
		cl.props[key] = p
	}
	op := &casOp{seq: cl.seq, in: in, hist: cl.c.h.Invoke(sim.NodeID(cl.id), in), p: p}
	cl.op = op
	op.deadline = cl.env.After(time.Second, func() {
		op.hist.Unknown()
		cl.finish()
	})
	cl.propose()
}

// propose starts a round; a silent round (lost messages) is restarted.
func (cl *casClient) propose() {
	op := cl.op
	cl.send(op.p.Propose(update(cl.id, op.seq, op.in)))
	op.retry = cl.env.After(60*time.Millisecond, cl.propose)
}

func (cl *casClient) send(ms []paxos.BasicMessage) {
	for _, m := range ms {
		cl.env.Send(sim.NodeID(m.To), casMsg{Key: cl.op.in.Key, M: m})
	}
}

func (cl *casClient) Receive(from sim.NodeID, msg any) {
	m := msg.(casMsg)
	op := cl.op
	if op == nil || m.Key != op.in.Key {
		return
	}
	cl.send(op.p.Step(m.M))
	o, done := op.p.Outcome()
	if !done || o.Ballot != op.p.Ballot() {
		return
	}
	op.retry.Stop()
	if o.Preempted {
		// Dueling proposers: back off a random while, then go again with
		// a higher ballot.
		op.retry = cl.env.After(time.Duration(1+cl.rand(20))*time.Millisecond, cl.propose)
		return
	}
	v := decodeCAS(o.Value, o.Exists)
	var out sim.KVOutput
	if op.in.Op == sim.OpGet {
		out = sim.KVOutput{Found: v.Present, Value: v.Value}
	} else {
		s := v.Sessions[cl.id]
		if s.Seq != op.seq {
			cl.c.fail("client %d: operation %d decided, but the register's session says %d", cl.id, op.seq, s.Seq)
		}
		out.Swapped = s.Swapped
	}
	op.hist.Return(out)
	cl.completed++
	cl.finish()
}

func (cl *casClient) finish() {
	cl.op.deadline.Stop()
	cl.op.retry.Stop()
	cl.op = nil
	cl.env.After(time.Duration(cl.rand(10))*time.Millisecond, cl.next)
}

// runCAS runs one seed; it returns the failure, if any.
func runCAS(tb testing.TB, m replsim.Membership, canary paxos.Canary, seed uint64) error {
	sys, err := m.System()
	if err != nil {
		return err
	}
	cfg := sim.Config{Seed: seed, Link: sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.03, DupRate: 0.03}}
	var s *sim.Sim
	if tb != nil {
		s = sim.NewForTest(tb, cfg)
	} else {
		s = sim.New(cfg)
	}
	c := &casCluster{
		s: s, sys: sys, canary: canary, h: sim.NewHistory(s), ids: sys.Voters(),
		accepts: map[string]map[paxos.Ballot]map[uint64]bool{}, values: map[string]map[paxos.Ballot]string{},
		chosen: map[string]map[uint64]string{},
	}
	var nodes []sim.NodeID
	for _, id := range c.ids {
		nodes = append(nodes, sim.NodeID(id))
		s.AddNode(sim.NodeID(id), func(env *sim.Env) sim.Process {
			return &casAcceptor{c: c, env: env, id: uint64(env.ID()), acc: map[string]*paxos.Acceptor{}}
		})
	}
	for i := range 4 {
		cl := &casClient{c: c, id: uint64(101 + i), props: map[string]*paxos.Proposer{}}
		c.clients = append(c.clients, cl)
		s.AddNode(sim.NodeID(cl.id), func(env *sim.Env) sim.Process {
			cl.env = env
			env.After(0, cl.next)
			return cl
		})
	}
	s.AddInvariant("one value chosen per version", func() error { return c.err })
	s.AddInvariant("harness", func() error { return c.broken })
	s.StartNemesis(sim.NemesisConfig{Nodes: nodes, MinGap: 30 * time.Millisecond, MaxGap: 300 * time.Millisecond,
		MinDuration: 20 * time.Millisecond, MaxDuration: 500 * time.Millisecond})
	if err := s.RunFor(3 * time.Second); err != nil {
		if c.err == nil && c.broken != nil {
			return fmt.Errorf("harness: %w", c.broken)
		}
		return err
	}
	s.Heal()
	base := make([]int, len(c.clients))
	for i, cl := range c.clients {
		base[i] = cl.completed
	}
	progressed := func() bool {
		for i, cl := range c.clients {
			if cl.completed < base[i]+2 {
				return false
			}
		}
		return true
	}
	if err := s.RunUntil(progressed, 3*time.Second); err != nil {
		return fmt.Errorf("liveness after heal: %w", err)
	}
	for _, cl := range c.clients {
		cl.stopped = true
	}
	if err := s.RunUntil(func() bool {
		return !slices.ContainsFunc(c.clients, func(cl *casClient) bool { return cl.op != nil })
	}, 2*time.Second); err != nil {
		return fmt.Errorf("clients still busy: %w", err)
	}
	if c.h.Check(sim.DefaultCheckTimeout) != porcupine.Ok {
		if tb != nil {
			sim.AssertLinearizable(tb, c.h, sim.DefaultCheckTimeout)
		}
		return errNotLinearizable
	}
	return nil
}

var errNotLinearizable = errors.New("history is not linearizable")

func casShapes() map[string]replsim.Membership {
	return map[string]replsim.Membership{
		"majority3": replsim.Majority(1, 2, 3), "majority5": replsim.Majority(1, 2, 3, 4, 5),
		"grid3x3": replsim.Grid3x3(), "zones3x2": replsim.Zones3x2(), "weighted5": replsim.Weighted5(),
	}
}

// TestSimBasicCAS: the register is linearizable under dueling proposers,
// on every geometry, under every fault.
func TestSimBasicCAS(t *testing.T) {
	shapes := casShapes()
	for _, name := range slices.Sorted(mapsKeysStr(shapes)) {
		t.Run(name, func(t *testing.T) {
			sim.RunSeeds(t, replsim.DefaultSeeds(40), func(t *testing.T, seed uint64) {
				if err := runCAS(t, shapes[name], paxos.CanaryNone, seed); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			})
		})
	}
}

// TestSimBasicCASCanaries: each planted bug of Basic Paxos is caught by
// porcupine or the one-value-per-version check.
func TestSimBasicCASCanaries(t *testing.T) {
	for _, c := range paxos.Canaries {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= 100; seed++ {
				err := runCAS(nil, replsim.Majority(1, 2, 3), c, seed)
				if err != nil && (errors.Is(err, errNotLinearizable) || (isInvariant(err) && !strings.HasPrefix(err.Error(), "harness"))) {
					t.Logf("%v caught by seed %d: %v", c, seed, err)
					return
				}
			}
			t.Fatalf("%v not caught in 100 seeds", c)
		})
	}
}

func isInvariant(err error) bool {
	var ie *sim.InvariantError
	return errors.As(err, &ie)
}

func mapsKeysStr(m map[string]replsim.Membership) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
