package replsim

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/quorum"
)

// Scenario is one cluster shape and fault schedule. Zero fields take the
// defaults of withDefaults.
type Scenario struct {
	Name string
	// Init is the founding configuration.
	Init Membership
	// Nodes are every replica, Init's voters first; spares (not in Init)
	// start empty and join through Reconfig. Default: Init's voters.
	Nodes []uint64
	// Clients and Keys size the workload. Default 4 clients on 4 keys.
	Clients, Keys int

	// Tick is the period of Core.Tick (default 10ms); Fsync the time a
	// Sync takes (default Fsync).
	Tick, Fsync time.Duration
	// Link is every link's configuration, for the sim Run builds (New
	// takes a sim built already). Default: 1-10ms delay (so messages
	// reorder), 2% loss, 2% duplication.
	Link *sim.LinkConfig
	// Faults are what the nemesis injects (default sim.AllFaults()); the
	// nemesis partitions and crashes replicas only. NoNemesis turns it off.
	Faults    []sim.Fault
	NoNemesis bool
	// MaxCrashed bounds the nodes the nemesis keeps down at once (default
	// a minority).
	MaxCrashed int
	// CrashAfterVote and CrashAfterAck are the probabilities that a node
	// crashes right after sending a vote (or Paxos promise) or an
	// acknowledgement of entries, before it can sync anything more; it
	// reboots 0.5-10ms later, in time for a rival candidate's request. A
	// core that persists before sending loses nothing.
	CrashAfterVote, CrashAfterAck float64
	// CrashAfterConfig is the probability that a leader crashes right
	// after it applies a committed configuration change, before anything
	// else it sends can tell the others (it reboots 20-300ms later): a
	// leader that the change removed dies before it hands over, the
	// moment the Raft reconfiguration wedge needed.
	CrashAfterConfig float64
	// KillLeader crashes the leader every 300-1000ms (restarting it
	// 20-300ms later): many elections, and leaders dying with work in
	// flight.
	KillLeader bool
	// Pause freezes a node (the leader, more often than not) every
	// 200-800ms for 50-400ms, as a long GC pause or a stopped VM would: its
	// clock stops and messages wait in its inbox. A leader that wakes up
	// still thinks it leads.
	Pause bool
	// PauseKeepsTicks makes a paused node's clock run on, as a monotonic
	// clock does through a GC pause or SIGSTOP: the ticks that fall while
	// it is paused are all given to it when it resumes, before anything
	// in its inbox (kv/store's keepTime does the same). Read leases count
	// on it: a leader whose clock stopped would wake with a lease long
	// gone.
	PauseKeepsTicks bool
	// TickDrift makes each node's clock run at its own rate: every
	// incarnation of a node ticks every Tick*(1+x), x drawn uniformly from
	// [-TickDrift, TickDrift]. Read leases tolerate rates up to
	// (ElectionTicks-1)/(ElectionTicks-2) apart (12.5% with 10): 0.05
	// keeps any two within 10.5%. 0: every node ticks every Tick.
	TickDrift float64
	// Transfer asks the leader every 200-800ms to hand leadership to a
	// random replica (Core.TransferLeader), as a draining node does; a
	// refusal (not a voter, itself) is fine.
	Transfer bool

	// Duration is the virtual time under faults (default 4s); Liveness
	// bounds, after the faults heal, the time for a leader to emerge and
	// every client to complete two operations (default 3s).
	Duration, Liveness time.Duration
	// OpTimeout is when a client gives up on an operation (outcome
	// unknown; default 1s); AttemptTimeout when it tries another node
	// (default 150ms).
	OpTimeout, AttemptTimeout time.Duration

	// Reconfig, if set, are configurations the leader is asked to move to,
	// in turn, every ReconfigEvery (default 300ms) while the faults run.
	Reconfig      []Membership
	ReconfigEvery time.Duration
	// Sale, if set, replaces the random workload of Clients by a flash
	// sale (sale.go).
	Sale *Sale
	// KeepGoing lets a run go on after an invariant fails, to the end of
	// its schedule; Run then reports the first violation, whatever the
	// other checks found. For runs that show what a broken system does
	// next.
	KeepGoing bool
	// SnapshotEvery: each node snapshots its state machine and compacts
	// its log after this many applied slots (0: never).
	SnapshotEvery int

	// AsyncPersist drives the cores as a store that does not wait for its
	// syncs (the protocol must give an AsyncCore): a node writes a Ready,
	// sends its Eager messages, applies its committed entries, answers its
	// clients and goes on to the next; the other messages of every Ready
	// written so far go out when the disk's next sync returns, Fsync after
	// the first Ready that needed one.
	AsyncPersist bool
	// CrashBeforeSync is the probability, with AsyncPersist, that a node
	// crashes instead of completing a sync: what it wrote since the last
	// one is lost, after it may have answered clients and sent appends.
	CrashBeforeSync float64
	// FsyncMax, with AsyncPersist, makes each sync take a time drawn
	// uniformly between Fsync and FsyncMax, as a disk shared with other
	// work does: a leader's own sync may then end after its followers'
	// acknowledgements arrive.
	FsyncMax time.Duration
}

func (sc Scenario) withDefaults() Scenario {
	if len(sc.Nodes) == 0 {
		sc.Nodes = sc.Init.IDs()
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if sc.Clients == 0 {
		sc.Clients = 4
	}
	if sc.Keys == 0 {
		sc.Keys = 4
	}
	def(&sc.Tick, 10*time.Millisecond)
	def(&sc.Fsync, Fsync)
	if sc.Link == nil {
		sc.Link = &sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02}
	}
	def(&sc.Duration, 4*time.Second)
	def(&sc.Liveness, 3*time.Second)
	def(&sc.OpTimeout, time.Second)
	def(&sc.AttemptTimeout, 150*time.Millisecond)
	def(&sc.ReconfigEvery, 300*time.Millisecond)
	if sc.MaxCrashed == 0 {
		sc.MaxCrashed = max(1, (len(sc.Init.Voters)-1)/2)
	}
	return sc
}

// Cluster is one run: the sim, the nodes, the clients and the observer.
type Cluster struct {
	s       *sim.Sim
	sc      Scenario
	proto   Protocol
	obs     *observer
	h       *sim.History
	nodes   map[uint64]*node // the current incarnation of each replica
	clients []*client
	downs   int  // nodes crashed by the harness and not yet restarted
	healed  bool // the faults are over
	reconf  int  // next Reconfig target
	// reader is a sale's final reader; answers are what its buyers were
	// told, in order.
	reader  *client
	answers []SaleAnswer
}

// FailureKind says which check a run failed.
type FailureKind string

const (
	Invariant       FailureKind = "invariant"
	NotLinearizable FailureKind = "linearizability"
	Liveness        FailureKind = "liveness"
	Harness         FailureKind = "harness" // step limit, a check that timed out
)

// Failure is why a run failed.
type Failure struct {
	Kind FailureKind
	Err  error
}

func (f *Failure) Error() string { return fmt.Sprintf("%s: %v", f.Kind, f.Err) }

// Safety reports whether f is a safety violation: what a canary must be
// caught by.
func (f *Failure) Safety() bool {
	return f != nil && (f.Kind == Invariant || f.Kind == NotLinearizable)
}

// Run runs one seed of sc on proto. With tb, the sim logs its trace and
// porcupine writes its visualization when the run fails (the caller fails
// tb); with tb nil the run is silent. It returns nil if every check passed.
func Run(tb testing.TB, proto Protocol, sc Scenario, seed uint64) *Failure {
	cfg := sim.Config{Seed: seed, Link: *sc.withDefaults().Link}
	var s *sim.Sim
	if tb != nil {
		s = sim.NewForTest(tb, cfg)
	} else {
		s = sim.New(cfg)
	}
	c, err := New(s, proto, sc)
	if err != nil {
		return &Failure{Harness, err}
	}
	f := c.Run()
	if tb == nil {
		return f
	}
	if f == nil || f.Kind == NotLinearizable {
		tb.Logf("%s: %d steps, %d operations (%d returned), %d terms with a leader, %d slots applied, t=%v",
			sc.Name, s.Steps(), c.h.Len(), c.returned(), len(c.obs.leaders), len(c.obs.applied), s.Now())
	}
	if f != nil && f.Kind == NotLinearizable {
		sim.AssertLinearizable(tb, c.h, sim.DefaultCheckTimeout) // for its report
	}
	return f
}

// New builds the cluster of sc on proto in s, a fresh sim whose links the
// caller configured (sc.Link is not read): the nodes, the workload, the
// invariants and the faults, all scheduled to start when s runs. Run then
// runs it. The lab builds s itself, to keep its whole trace.
func New(s *sim.Sim, proto Protocol, sc Scenario) (*Cluster, error) {
	sc = sc.withDefaults()
	c := &Cluster{s: s, sc: sc, proto: proto, h: sim.NewHistory(s), nodes: map[uint64]*node{}}
	var q quorum.System
	if proto.ChosenByQuorum && len(sc.Reconfig) == 0 {
		sys, err := sc.Init.System()
		if err != nil {
			return nil, err
		}
		q = sys
	}
	c.obs = newObserver(q, s.Now)
	for _, id := range sc.Nodes {
		s.AddNode(sim.NodeID(id), c.startNode)
	}
	if sc.Sale != nil {
		if err := c.startSale(); err != nil {
			return nil, err
		}
	} else {
		for i := range sc.Clients {
			cl := &client{c: c, id: uint64(firstClient + i), seen: map[string]string{}}
			c.clients = append(c.clients, cl)
			s.AddNode(sim.NodeID(cl.id), func(env *sim.Env) sim.Process {
				cl.env = env
				env.After(time.Duration(cl.rand(20))*time.Millisecond, cl.next)
				return cl
			})
		}
	}
	s.AddInvariant("replication", c.check)
	if !sc.NoNemesis {
		ids := make([]sim.NodeID, len(sc.Nodes))
		for i, id := range sc.Nodes {
			ids[i] = sim.NodeID(id)
		}
		s.StartNemesis(sim.NemesisConfig{
			Nodes: ids, Faults: sc.Faults, MaxCrashed: sc.MaxCrashed,
			MinGap: 50 * time.Millisecond, MaxGap: 400 * time.Millisecond,
			MinDuration: 100 * time.Millisecond, MaxDuration: 800 * time.Millisecond,
		})
	}
	if sc.KillLeader {
		c.every(300*time.Millisecond, time.Second, c.killLeader)
	}
	if sc.Pause {
		c.every(200*time.Millisecond, 800*time.Millisecond, c.pause)
	}
	if sc.Transfer {
		c.every(200*time.Millisecond, 800*time.Millisecond, c.transfer)
	}
	if len(sc.Reconfig) > 0 {
		var step func()
		step = func() {
			if !c.healed {
				c.reconfigure()
				s.After(sc.ReconfigEvery, step)
			}
		}
		s.After(sc.ReconfigEvery, step)
	}
	return c, nil
}

// Run runs the cluster New built: Duration under the faults, then, with
// every fault healed, the liveness checks, and at the end porcupine on the
// history. It returns the first check that failed, or nil; with
// KeepGoing, an invariant that failed comes first, since it failed first.
func (c *Cluster) Run() *Failure {
	f := c.runChecks()
	if c.sc.KeepGoing && c.obs.err != nil {
		return &Failure{Invariant, c.obs.err}
	}
	return f
}

func (c *Cluster) runChecks() *Failure {
	s, sc := c.s, c.sc
	if f := c.run(s.RunFor(sc.Duration)); f != nil {
		return f
	}
	c.healed = true
	for _, n := range c.nodes {
		n.resume()
	}
	s.Heal()
	c.downs = 0
	var f *Failure
	if sc.Sale != nil {
		f = c.finishSale()
	} else {
		f = c.finishClients()
	}
	if f != nil {
		return f
	}
	// No acknowledged write lost: the leader's state includes them all.
	caughtUp := func() bool {
		l, ok := c.leader()
		return ok && c.nodes[l].kv.Applied >= c.obs.maxAck
	}
	if f := c.runUntil(caughtUp, time.Second, fmt.Sprintf("the leader has not applied every acknowledged write (up to slot %d)", c.obs.maxAck)); f != nil {
		return f
	}
	return c.linearizable()
}

// finishClients checks liveness with the random workload: with every
// fault gone, a leader emerges and every client completes operations
// again, pending ones included; then the clients stop.
func (c *Cluster) finishClients() *Failure {
	base := make([]int, len(c.clients))
	for i, cl := range c.clients {
		base[i] = cl.completed
	}
	progressed := func() bool {
		if _, ok := c.leader(); !ok {
			return false
		}
		for i, cl := range c.clients {
			if cl.completed < base[i]+2 {
				return false
			}
		}
		return true
	}
	if f := c.runUntil(progressed, c.sc.Liveness, "no leader, or a client completed fewer than 2 operations, after healing"); f != nil {
		return f
	}
	for _, cl := range c.clients {
		cl.stopped = true
	}
	idle := func() bool {
		return !slices.ContainsFunc(c.clients, func(cl *client) bool { return cl.op != nil })
	}
	return c.runUntil(idle, c.sc.OpTimeout+c.sc.Tick, "clients still busy after stopping them")
}

func (c *Cluster) returned() int {
	n := 0
	for _, cl := range c.clients {
		n += cl.completed
	}
	return n
}

func (c *Cluster) run(err error) *Failure {
	var ie *sim.InvariantError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return &Failure{Invariant, err}
	}
	return &Failure{Harness, err}
}

func (c *Cluster) runUntil(cond func() bool, within time.Duration, what string) *Failure {
	err := c.s.RunUntil(cond, within)
	if errors.Is(err, sim.ErrDeadline) {
		return &Failure{Liveness, fmt.Errorf("%s (waited %v, t=%v)", what, within, c.s.Now())}
	}
	return c.run(err)
}

func (c *Cluster) linearizable() *Failure {
	switch c.h.Check(sim.DefaultCheckTimeout) {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return &Failure{Harness, fmt.Errorf("linearizability check of %d operations timed out", c.h.Len())}
	}
	return &Failure{NotLinearizable, fmt.Errorf("history of %d operations is not linearizable", c.h.Len())}
}

// check is the invariant run after every step.
func (c *Cluster) check() error {
	for _, id := range c.sc.Nodes {
		n := c.nodes[id]
		if n == nil || !n.alive() {
			continue
		}
		if term, owner, ok := n.core.Leader(); ok {
			c.obs.leader(id, term, owner)
		}
	}
	c.checkLeases()
	if c.sc.KeepGoing {
		return nil // Run reports c.obs.err at the end
	}
	return c.obs.err
}

// checkLeases fails the run if a node holds a lease while another leads at
// a higher term or ballot (LeaseCore). A node that is busy, paused or owed
// ticks is left out: its clock is behind, and it serves no read until it
// has caught up.
func (c *Cluster) checkLeases() {
	var top termKey
	var topID uint64
	for _, id := range c.sc.Nodes {
		n := c.nodes[id]
		if n == nil || !n.alive() {
			continue
		}
		if term, owner, ok := n.core.Leader(); ok && top.less(termKey{term, owner}) {
			top, topID = termKey{term, owner}, id
		}
	}
	for _, id := range c.sc.Nodes {
		n := c.nodes[id]
		if n == nil || !n.alive() || n.busy || n.paused || n.missed > 0 {
			continue
		}
		lc, ok := n.core.(LeaseCore)
		if !ok || !lc.Lease() {
			continue
		}
		if term, owner, _ := n.core.Leader(); (termKey{term, owner}).less(top) {
			c.obs.fail("n%d holds a lease at %d.%d while n%d leads at %d.%d", id, term, owner, topID, top.term, top.owner)
		}
	}
}

// leader returns the live leader of the highest term, if any.
func (c *Cluster) leader() (uint64, bool) {
	var best, bestTerm, bestOwner uint64
	found := false
	for _, id := range c.sc.Nodes {
		n := c.nodes[id]
		if n == nil || !n.alive() {
			continue
		}
		if term, owner, ok := n.core.Leader(); ok && (!found || term > bestTerm || (term == bestTerm && owner > bestOwner)) {
			best, bestTerm, bestOwner, found = id, term, owner, true
		}
	}
	return best, found
}

// withLeader calls f with the leader, unless there is none or it is
// handling a Ready (the Core contract), then lets it act on what f did.
func (c *Cluster) withLeader(f func(id uint64, n *node)) {
	l, ok := c.leader()
	if !ok || c.nodes[l].busy {
		return
	}
	f(l, c.nodes[l])
	c.nodes[l].kick()
}

// reconfigure asks the leader to move to the next configuration.
func (c *Cluster) reconfigure() {
	c.withLeader(func(l uint64, n *node) {
		target := c.sc.Reconfig[c.reconf%len(c.sc.Reconfig)]
		if err := n.core.ProposeConfig(target); err == nil {
			c.s.Tracef("reconfigure to %v via n%d", target, l)
			c.reconf++
		}
	})
}

// every runs fn at random intervals in [lo, hi] until the faults heal.
func (c *Cluster) every(lo, hi time.Duration, fn func()) {
	var next func()
	next = func() {
		if c.healed {
			return
		}
		fn()
		c.s.After(lo+time.Duration(c.s.Rand().Int64N(int64(hi-lo))), next)
	}
	c.s.After(lo+time.Duration(c.s.Rand().Int64N(int64(hi-lo))), next)
}

// crashFor crashes node id now and restarts it after d, if the harness
// may crash another node.
// crashFor crashes node id now and restarts it d later, and reports
// whether it did: not after the faults healed, nor with MaxCrashed nodes
// down.
func (c *Cluster) crashFor(id uint64, d time.Duration, why string) bool {
	if c.healed || c.downs >= c.sc.MaxCrashed {
		return false
	}
	c.downs++
	nid := sim.NodeID(id)
	c.s.Tracef("crash n%d: %s", id, why)
	c.s.After(0, func() { c.s.Crash(nid) })
	c.s.After(d, func() {
		c.downs = max(0, c.downs-1)
		if !c.s.Up(nid) {
			c.s.Restart(nid)
		}
	})
	return true
}

func (c *Cluster) randDur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(c.s.Rand().Int64N(int64(hi-lo)))
}

// maybeCrashAfterConfig crashes node id, the leader, right after it
// applied a committed configuration change, with the scenario's
// probability, and reboots it soon.
func (c *Cluster) maybeCrashAfterConfig(id uint64) {
	if c.sc.CrashAfterConfig > 0 && c.s.Rand().Float64() < c.sc.CrashAfterConfig {
		c.crashFor(id, c.randDur(20*time.Millisecond, 300*time.Millisecond), "a leader right after it applied a configuration change")
	}
}

// maybeCrashAfterPromise crashes node id right after it sent a promise of
// kind p, with the probability the scenario gives, and reboots it soon.
func (c *Cluster) maybeCrashAfterPromise(id uint64, p Promise) {
	prob := c.sc.CrashAfterAck
	if p == PromiseVote {
		prob = c.sc.CrashAfterVote
	}
	if prob == 0 || c.s.Rand().Float64() >= prob {
		return
	}
	c.crashFor(id, c.randDur(500*time.Microsecond, 10*time.Millisecond), "right after a promise")
}

func (c *Cluster) killLeader() {
	if l, ok := c.leader(); ok {
		c.crashFor(l, c.randDur(20*time.Millisecond, 300*time.Millisecond), "kill the leader")
	}
}

// transfer asks the leader to hand leadership to a random replica.
func (c *Cluster) transfer() {
	c.withLeader(func(l uint64, n *node) {
		to := c.sc.Nodes[c.s.Rand().IntN(len(c.sc.Nodes))]
		if err := n.core.TransferLeader(to); err == nil {
			c.s.Tracef("transfer leadership n%d -> n%d", l, to)
		}
	})
}

// pauseReport is the sale's report if it hears of pauses, else nil.
func (c *Cluster) pauseReport() PauseReport {
	if c.sc.Sale == nil {
		return nil
	}
	r, _ := c.sc.Sale.Report.(PauseReport)
	return r
}

func (c *Cluster) pause() {
	id := c.sc.Nodes[c.s.Rand().IntN(len(c.sc.Nodes))]
	if l, ok := c.leader(); ok && c.s.Rand().IntN(3) > 0 {
		id = l
	}
	n := c.nodes[id]
	if n == nil || !n.alive() || n.paused {
		return
	}
	d := c.randDur(50*time.Millisecond, 400*time.Millisecond)
	c.s.Tracef("pause n%d for %v", id, d)
	n.paused = true
	if r := c.pauseReport(); r != nil {
		r.Paused(id)
	}
	c.s.After(d, n.resume)
}
