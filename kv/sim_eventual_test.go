package kv

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/wrn"
)

// Eventual keyspaces in the deterministic simulator (issues 6 and 10):
// whole nodes as in sim_test.go, with the eventual coordinator driven from
// the simulation's goroutine through simReplicaNet, and hint replay and
// anti-entropy run by its timers. Clients send put, delete and get of
// plain keys, and compare-and-swap (expecting absence, a value, a version
// or existence) and conditional deletes of others, plus gets of those,
// each attempt to a random node (every node coordinates: dueling
// coordinators). They retry as the Go client does: Unavailable on another
// node after a backoff, outcome unknown (or no answer) only for
// compare-and-swap and conditional delete, which carry an idempotency
// key; an operation is recorded once, however many attempts it took. A
// janitor deletes compare-and-swap keys with plain deletes, when no
// client is at work on them (plain writes concurrent with swaps forfeit
// their guarantee, see kv/eventual/eventual_cas.go), so that anti-entropy purges
// their tombstones while swaps go on. The nemesis partitions, drops,
// duplicates and crashes nodes (losing what Pebble had not synced),
// restarts a swap's coordinator right after the swap is chosen, and
// steps nodes' clocks by up to 3 s, past the HLC's maximum offset. Then
// the faults heal and the test checks:
//
//   - W+R > N: a read that started after a write was acknowledged returns
//     its version or a newer one (so no acknowledged write is lost);
//     W+R <= N: reads that miss an acknowledged write do happen, and the
//     staleness measure (readOp.settle) counts every one of them whose
//     replicas all answered.
//   - every record a read returns was written by a request of that key
//     (value and version), and never by an attempt that was answered
//     Unavailable: that answer promises nothing was written.
//   - exactly once: each value (every write's is unique) is seen at one
//     version at most, however often its request was retried.
//   - after the faults heal, every replica of every range holds the same
//     records within simConvergeBound, and no tombstone older than the
//     purge horizon is left (anti-entropy purged them once every replica
//     held them); the final record of each plain key is the newest
//     acknowledged one or newer, a purged tombstone only where a delete
//     was that newest.
//   - the compare-and-swap keys' histories (swaps, conditional deletes,
//     the janitor's deletes, and a final linearizable read through Paxos)
//     are linearizable (porcupine), the flash sale's guarantee.
//
// Versions are hybrid-logical-clock readings of nodes whose physical
// clocks are off by up to 50 ms, and by seconds while the nemesis steps
// one: "newer" is the version order, last writer wins. QKV_SIM_SEEDS=n
// runs more seeds.

// simConvergeBound is how long after the faults heal every range's
// replicas must hold the same records.
const simConvergeBound = 15 * time.Second

// The simulated clients' retries (as the Go client's): an attempt not
// answered within simAttemptTimeout is given up (its coordinator gives
// up too, as a request whose context ended), and an operation ends
// after simOpBudget whatever its attempts.
const (
	simAttemptTimeout = time.Second
	simOpBudget       = 4 * time.Second
)

// simEvKeys and simCASKeys are the keys the clients use: plain writes and
// reads on the first, compare-and-swap, conditional deletes and reads on
// the second (and the janitor's plain deletes, never concurrent with a
// client's operation on the key).
var (
	simEvKeys  = []string{"k0", "k1", "k2", "k3"}
	simCASKeys = []string{"c0", "c1", "c2", "c3"}
)

type simEvShape struct {
	name  string
	nodes int
	ks    catalog.KeyspaceDescriptor
	// q overrides the keyspace's W and R in every plain request, as
	// kvctl's --w and --r do: a keyspace is refused with W+R <= N, a
	// request is not.
	q catalog.QuorumOverride
	// noCAS leaves compare-and-swap out of the workload.
	noCAS bool
	// calm leaves the clock steps and the restarts after a chosen swap
	// out of the nemesis.
	calm bool
	// hooks plants canaries.
	hooks eventual.Hooks
	// rangeMaxBytes, if set, splits the eventual ranges past it
	// (sim_eventual_split_test.go), and downDuringSplits and crashSweeps
	// are that test's faults.
	rangeMaxBytes                 int64
	downDuringSplits, crashSweeps bool
}

func evKeyspace(n, w, r int) catalog.KeyspaceDescriptor {
	return catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: n, W: w, R: r, Ranges: 2}
}

// simEvShapes are TestSimEventual's clusters.
var simEvShapes = []simEvShape{
	{name: "nodes=3,N=3,W=2,R=2", nodes: 3, ks: evKeyspace(3, 2, 2)},
	{name: "nodes=5,N=5,W=3,R=3", nodes: 5, ks: evKeyspace(5, 3, 3)},
	{name: "nodes=5,N=3,W=1,R=3", nodes: 5, ks: evKeyspace(3, 1, 3)},
	// Write sets and read sets from a geometry instead of sizes: one
	// node per zone here, so a write needs one zone (one replica) and
	// a read one node in every zone (all three).
	{name: "nodes=3,N=3,zones", nodes: 3, ks: catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, Quorum: "zones", Ranges: 2}},
}

func TestSimEventual(t *testing.T) {
	for _, shape := range simEvShapes {
		t.Run(shape.name, func(t *testing.T) {
			sim.RunSeeds(t, 10, func(t *testing.T, seed uint64) {
				ev := runSimEventual(t, seed, shape)
				if ev.stale > 0 {
					t.Errorf("%d reads missed a write acknowledged before they started, with W+R > N", ev.stale)
				}
			})
		})
	}
}

// Sloppy quorum (hints count toward W) gives up the W+R > N promise, as
// docs/api.md says: a write acknowledged by one replica and one hint is
// missed by a read of the two others. Everything else holds: reads return
// only what was written, no acknowledged write is lost, and the replicas
// converge once the faults heal (hints and anti-entropy).
func TestSimEventualSloppyQuorum(t *testing.T) {
	ks := evKeyspace(3, 2, 2)
	ks.SloppyQuorum = true
	shape := simEvShape{name: "nodes=3,N=3,W=2,R=2,sloppy", nodes: 3, ks: ks}
	var mu sync.Mutex // the seeds run in parallel
	stale := 0
	t.Cleanup(func() { t.Logf("sloppy quorum, W=2 R=2 N=3: %d reads missed an acknowledged write", stale) })
	sim.RunSeeds(t, 10, func(t *testing.T, seed uint64) {
		ev := runSimEventual(t, seed, shape)
		mu.Lock()
		defer mu.Unlock()
		stale += ev.stale
	})
}

// With W+R <= N reads miss acknowledged writes, and the staleness measure
// sees them: the test of the measurement.
func TestSimEventualStaleReads(t *testing.T) {
	shape := simEvShape{name: "nodes=3,N=3,W=1,R=1", nodes: 3, ks: evKeyspace(3, 2, 2), q: catalog.QuorumOverride{W: 1, R: 1}, noCAS: true, calm: true}
	var mu sync.Mutex // the seeds run in parallel
	reads, stale, measured := 0, 0, 0
	// After every seed's subtest.
	t.Cleanup(func() {
		t.Logf("W=1 R=1 N=3: %d of %d reads missed an acknowledged write; %d of them settled and were all counted stale",
			stale, reads, measured)
		if stale == 0 {
			t.Error("no read missed an acknowledged write with W+R <= N: the workload does not exercise staleness")
		}
	})
	sim.RunSeeds(t, 10, func(t *testing.T, seed uint64) {
		ev := runSimEventual(t, seed, shape)
		mu.Lock()
		defer mu.Unlock()
		stale += ev.stale
		measured += ev.staleMeasured
		for _, op := range ev.order {
			if op.in.kind == evGet && op.state == "ok" {
				reads++
			}
		}
	})
}

// simEv is one seed's eventual run: its clients and what they saw.
type simEv struct {
	c       *simCluster
	t       testing.TB
	shape   simEvShape
	clients []*simEvClient
	janitor *simEvClient
	ops     map[simEvOpID]*simEvOp
	order   []*simEvOp
	// stale counts the reads that missed an acknowledged write, and
	// staleMeasured those of them the staleness measure counted.
	stale, staleMeasured int
	// shift is how far the nemesis stepped each node's clock.
	shift map[uint64]time.Duration
	// locked is the compare-and-swap key the janitor is deleting; tainted
	// are those it no longer deletes (an operation on it ended unknown,
	// and may still take effect at any time).
	locked  string
	tainted map[string]bool
	healed  bool
	// probes are the final linearizable reads of the compare-and-swap
	// keys, in porcupine's terms.
	probes []porcupine.Operation
	// stamp is the last porcupine timestamp handed out.
	stamp int64
	// collect, if set, gathers the violations instead of failing the test
	// (the canaries' runs).
	collect    bool
	violations []string
	// sweepCrashes counts the crashes in a sweep (crashSweeps).
	sweepCrashes int
}

// failf reports a violation of what the test checks.
func (ev *simEv) failf(format string, args ...any) {
	if ev.collect {
		ev.violations = append(ev.violations, fmt.Sprintf(format, args...))
		return
	}
	ev.t.Helper()
	ev.t.Errorf(format, args...)
}

// runUntil runs the sim until cond holds, reporting a violation (and
// false) if it does not within d.
func (ev *simEv) runUntil(what string, d time.Duration, cond func() bool) bool {
	if err := ev.c.s.RunUntil(cond, d); err != nil {
		ev.failf("waiting %v for %s: %v\n%s", d, what, err, ev.describe())
		return false
	}
	return true
}

type simEvOpID struct{ client, seq uint64 }

// simEvKind is an operation's kind.
type simEvKind uint8

const (
	evGet simEvKind = iota + 1
	evPut
	evDel   // a plain delete
	evCAS   // compare-and-swap
	evDelIf // conditional delete
	evProbe // the final read of a compare-and-swap key (porcupine only)
)

// simEvIn is an operation as a client invoked it.
type simEvIn struct {
	kind   simEvKind
	key    string
	value  string         // evPut, evCAS
	expect catalog.Expect // evCAS, evDelIf
	// was is the value expect names, for the model: expect.Value, or the
	// value the client saw at expect.Version. Values are unique, so a
	// version names one value.
	was string
}

func (in simEvIn) String() string {
	cond := func() string {
		switch {
		case in.expect.Absent:
			return "absent"
		case in.expect.Exists:
			return "exists"
		case in.expect.Version != "":
			return fmt.Sprintf("@%s(%q)", in.expect.Version, in.was)
		}
		return fmt.Sprintf("%q", in.was)
	}
	switch in.kind {
	case evGet:
		return fmt.Sprintf("get(%s)", in.key)
	case evPut:
		return fmt.Sprintf("put(%s, %q)", in.key, in.value)
	case evDel:
		return fmt.Sprintf("delete(%s)", in.key)
	case evCAS:
		return fmt.Sprintf("cas(%s, %s -> %q)", in.key, cond(), in.value)
	case evDelIf:
		return fmt.Sprintf("delete-if(%s, %s)", in.key, cond())
	case evProbe:
		return fmt.Sprintf("probe(%s)", in.key)
	}
	return fmt.Sprintf("op%d(%s)", in.kind, in.key)
}

// writes says whether the operation writes a value or tombstone.
func (in simEvIn) writes() bool { return in.kind != evGet && in.kind != evProbe }

// conditional says whether it goes through Paxos.
func (in simEvIn) conditional() bool { return in.kind == evCAS || in.kind == evDelIf }

// simEvOp is one client operation, as the test saw it.
type simEvOp struct {
	id          simEvOpID
	in          simEvIn
	invoke, ret time.Duration
	// state: pending, then ok (a write acknowledged, a read answered),
	// failed (a condition that was false), unavailable (every attempt
	// answered Unavailable: nothing written) or unknown.
	state    string
	attempts int
	// callStamp and retStamp are its porcupine timestamps.
	callStamp, retStamp int64
	// uncertain: some attempt answered outcome unknown, or no answer.
	uncertain bool
	// stamped are a plain write's versions, one per attempt that reached a
	// coordinator; refused those of attempts answered Unavailable; acked
	// the one acknowledged.
	stamped, refused []wrn.Version
	acked            wrn.Version
	// version is a compare-and-swap's, as answered.
	version string
	// rec is what a read returned; settled says every replica answered
	// it without an error, and measured whether the staleness measure
	// then counted it stale.
	rec               wrn.Record
	settled, measured bool
}

// simEvRequest is an attempt of a client's operation, sent to one node.
type simEvRequest struct {
	ID      simEvOpID
	Attempt int
	In      simEvIn
	Idem    string
}

// simEvAnswer is what an attempt's answer means to the client.
type simEvAnswer uint8

const (
	ansOK          simEvAnswer = iota + 1
	ansFailed                  // the condition was false
	ansUnavailable             // nothing written: retry
	ansUnknown                 // the outcome is unknown
	ansOther                   // an error no correct node answers
)

// simEvReply answers an attempt: Rec is a read's record, Version a
// compare-and-swap's, Stamped the version a plain write got.
type simEvReply struct {
	ID      simEvOpID
	Attempt int
	Answer  simEvAnswer
	Err     string
	Rec     wrn.Record
	Version string
	Stamped wrn.Version
}

func runSimEventual(t *testing.T, seed uint64, shape simEvShape) *simEv {
	return newSimEv(t, shape, false).run(seed)
}

// newSimEv is a simulation of shape; collect records violations instead
// of failing t (the canary hunts).
func newSimEv(t *testing.T, shape simEvShape, collect bool) *simEv {
	return &simEv{t: t, shape: shape, ops: map[simEvOpID]*simEvOp{}, shift: map[uint64]time.Duration{}, tainted: map[string]bool{}, collect: collect}
}

func (ev *simEv) run(seed uint64) *simEv {
	t, shape := ev.t.(*testing.T), ev.shape
	c := newSimClusterWith(t, seed, shape.nodes, []catalog.KeyspaceDescriptor{shape.ks}, func(c *simCluster) {
		ev.c = c
		c.eventual = ev.serve
		c.nodeConfig = ev.nodeConfig
		c.rangeMaxBytes = shape.rangeMaxBytes
	})
	s := c.s
	ev.startSplitFaults()

	c.startFaults(ev.startClients, false)
	if !shape.calm {
		ev.startClockSteps()
	}
	if err := s.RunFor(simFaults); err != nil {
		t.Fatal(err)
	}
	ev.healed = true
	clear(ev.shift)
	s.Heal()
	healed := s.Now()
	s.Tracef("healed: convergence from here")
	ev.stopClients()
	if !ev.runUntil("the clients' last operations to end", simOpBudget+simAttemptTimeout, ev.idle) ||
		!ev.runUntil("the replicas to converge after healing", simConvergeBound, ev.converged) {
		return ev
	}
	converged := s.Now() - healed

	// Liveness: every client completes operations again.
	base := make([]int, len(ev.clients))
	for i, cl := range ev.clients {
		base[i] = cl.completed
		cl.stopped = false
		cl.env.After(0, cl.next)
	}
	if !ev.runUntil(fmt.Sprintf("every client to complete %d operations after the faults healed", simLiveOps), simLiveness, func() bool {
		for i, cl := range ev.clients {
			if cl.completed < base[i]+simLiveOps {
				return false
			}
		}
		return true
	}) {
		return ev
	}
	ev.stopClients()
	if !ev.runUntil("the clients' last operations to end", simOpBudget+simAttemptTimeout, ev.idle) ||
		!ev.runUntil("the replicas to converge again", simConvergeBound, ev.converged) ||
		!ev.probe() ||
		// The probes write, and a split range's replicas move its records
		// (sim_eventual_split_test.go): the checks below read replicas.
		!ev.runUntil("the replicas to converge after the probes", simConvergeBound, ev.converged) {
		return ev
	}

	for _, msg := range c.unexpected {
		ev.failf("%s", msg)
	}
	ev.checkReads()
	ev.checkFinal()
	ev.checkOnce()
	ev.checkCAS()
	crashes := 0
	for _, d := range c.disks {
		crashes += d.Crashes()
	}
	cas, retried := 0, 0
	states := map[string]int{}
	for _, op := range ev.order {
		if op.in.conditional() {
			cas++
		}
		if op.attempts > 1 {
			retried++
		}
		states[op.state]++
	}
	t.Logf("seed %d: %d operations (%d compare-and-swap or conditional delete; %d retried; %v), %d crashes, converged %v after healing, "+
		"%d stale reads, %v virtual", seed, len(ev.order), cas, retried, states, crashes, converged, ev.stale, s.Now())
	return ev
}

// nodeConfig gives a node the nemesis's clock steps, the shape's
// canaries, and the restart after a chosen swap.
func (ev *simEv) nodeConfig(id uint64, cfg *NodeConfig) {
	phys := cfg.PhysicalClock
	cfg.PhysicalClock = func() int64 { return phys() + int64(ev.shift[id]) }
	cfg.evHooks = ev.shape.hooks
	cfg.evHooks.Chosen = func([]byte) { ev.chosen(id) }
	if ev.shape.crashSweeps {
		cfg.evHooks.SweepStop = func(rangeID uint64, moved int) bool { return ev.crashSweep(id, rangeID, moved) }
	}
}

// startClockSteps steps one node's clock at a time, by 100-400 ms (within
// the HLC's maximum offset) or by 1-3 s (past it), ahead or behind, for
// 0.3-1.5 s.
func (ev *simEv) startClockSteps() {
	s := ev.c.s
	var step func()
	step = func() {
		if ev.healed {
			return
		}
		id := ev.c.ids[s.Rand().IntN(len(ev.c.ids))]
		d := time.Second + time.Duration(s.Rand().Int64N(int64(2*time.Second)))
		if s.Rand().IntN(3) == 0 {
			d = 100*time.Millisecond + time.Duration(s.Rand().Int64N(int64(300*time.Millisecond)))
		}
		if s.Rand().IntN(2) == 0 {
			d = -d
		}
		ev.shift[id] = d
		s.Tracef("nemesis: node %d's clock stepped by %v", id, d)
		s.After(300*time.Millisecond+time.Duration(s.Rand().Int64N(int64(1200*time.Millisecond))), func() {
			if ev.healed {
				return
			}
			ev.shift[id] = 0
			s.Tracef("nemesis: node %d's clock back", id)
			s.After(time.Duration(s.Rand().Int64N(int64(800*time.Millisecond))), step)
		})
	}
	s.After(time.Duration(s.Rand().Int64N(int64(500*time.Millisecond))), step)
}

// chosen crashes node id, whose compare-and-swap was just chosen (before
// its record is written), one time in four, as its next event, and
// restarts it 50-400 ms later; only while every node is up, so that a
// majority stays up.
func (ev *simEv) chosen(id uint64) {
	c, s := ev.c, ev.c.s
	if ev.healed || ev.shape.calm || s.Rand().IntN(4) != 0 {
		return
	}
	for _, other := range c.ids {
		if c.node(other) == nil {
			return
		}
	}
	s.After(0, func() {
		if ev.healed || !s.Up(sim.NodeID(id)) {
			return
		}
		s.Tracef("nemesis: node %d crashes right after its swap was chosen", id)
		s.Crash(sim.NodeID(id))
		s.After(50*time.Millisecond+time.Duration(s.Rand().Int64N(int64(350*time.Millisecond))), func() {
			if !s.Up(sim.NodeID(id)) {
				s.Restart(sim.NodeID(id))
			}
		})
	})
}

// answerOf is what err means to a client.
func answerOf(err error) simEvAnswer {
	switch {
	case err == nil:
		return ansOK
	case errors.Is(err, command.ErrConditionFailed):
		return ansFailed
	case errors.Is(err, store.ErrOutcomeUnknown):
		return ansUnknown
	case errors.Is(err, store.ErrUnavailable):
		return ansUnavailable
	}
	return ansOther
}

// serve starts a client's attempt on node n as the API would (Node's
// PutWith, DeleteWith, GetWith, CompareAndSwapWith), answering when it is
// decided.
func (ev *simEv) serve(n *simNode, from sim.NodeID, req simEvRequest) {
	reply := func(r simEvReply) {
		r.ID, r.Attempt = req.ID, req.Attempt
		n.env.Send(from, r)
	}
	fail := func(err error) { reply(simEvReply{Answer: answerOf(err), Err: err.Error()}) }
	key := []byte(req.In.key)
	ks, rd, err := n.node.ev.Lookup(ev.shape.ks.Name, key)
	if err != nil {
		fail(err)
		return
	}
	op := ev.ops[req.ID]
	switch req.In.kind {
	case evPut, evDel:
		rec := wrn.Record{Value: []byte(req.In.value)}
		if req.In.kind == evDel {
			rec = wrn.Record{Tombstone: true}
		}
		write := func() {
			w, err := n.node.ev.NewEventualWrite(ks, rd, key, rec, ev.shape.q)
			if err != nil {
				fail(err)
				return
			}
			op.stamped = append(op.stamped, w.Rec.Version)
			w.Start(func(res eventual.WriteResult) {
				r := simEvReply{Answer: answerOf(res.Err), Stamped: w.Rec.Version}
				if res.Err != nil {
					r.Err = res.Err.Error()
				}
				reply(r)
			})
		}
		if !slices.Contains(simCASKeys, req.In.key) {
			write()
			return
		}
		// The janitor's delete of a compare-and-swap key: read it first
		// on this node, whose clock then stamps the tombstone past the
		// swaps' versions (a blind delete may order before a swap that
		// returned before it, by up to the clocks' offset).
		r, err := n.node.ev.NewEventualRead(ks, rd, key, catalog.QuorumOverride{})
		if err != nil {
			fail(err)
			return
		}
		r.Start(func(res eventual.ReadResult) {
			if res.Err != nil {
				fail(res.Err)
				return
			}
			write()
		})
	case evGet:
		r, err := n.node.ev.NewEventualRead(ks, rd, key, ev.shape.q)
		if err != nil {
			fail(err)
			return
		}
		r.Stale = func(stale, complete bool) { op.settled, op.measured = complete, stale }
		r.Start(func(res eventual.ReadResult) {
			if res.Err != nil {
				fail(res.Err)
				return
			}
			reply(simEvReply{Answer: ansOK, Rec: res.Rec})
		})
	case evCAS, evDelIf:
		rec := wrn.Record{Value: []byte(req.In.value)}
		if req.In.kind == evDelIf {
			rec = wrn.Record{Tombstone: true}
		}
		cas, err := n.node.ev.NewCASOp(ks, rd, key, req.In.expect, rec, []byte(req.Idem))
		if err != nil {
			fail(err)
			return
		}
		// As await does when the client's deadline passes.
		n.env.After(simAttemptTimeout, func() { cas.GiveUp() })
		cas.Start(func(res eventual.CASResult) {
			if res.Err != nil {
				fail(res.Err)
				return
			}
			reply(simEvReply{Answer: ansOK, Version: res.Version})
		})
	}
}

// simEvClient issues random operations, one at a time, each attempt to a
// random node, retrying as the Go client does (see above). The janitor is
// one too, with its own operations.
type simEvClient struct {
	ev        *simEv
	env       *sim.Env
	id        uint64
	idx       int // porcupine's client ID
	seq       uint64
	p         *simEvPending
	stopped   bool
	janitor   bool
	completed int
	writes    int
	// known is the client's view of the compare-and-swap keys: what it
	// last read or swapped.
	known map[string]simEvKnown
}

type simEvKnown struct {
	present        bool
	value, version string
}

type simEvPending struct {
	op     *simEvOp
	req    simEvRequest
	timer  *sim.Timer // the attempt's deadline, or the backoff
	budget time.Duration
}

func (ev *simEv) startClients() {
	c := ev.c
	for i := range simClients {
		id := uint64(simClientID + i + 1)
		cl := &simEvClient{ev: ev, id: id, idx: i, known: map[string]simEvKnown{}}
		c.addClient(id, cl, func(env *sim.Env) { cl.env = env }, func() { cl.next() })
		ev.clients = append(ev.clients, cl)
	}
	if ev.shape.noCAS {
		return
	}
	id := uint64(simClientID + simClients + 1)
	ev.janitor = &simEvClient{ev: ev, id: id, idx: simClients, janitor: true, known: map[string]simEvKnown{}}
	c.addClient(id, ev.janitor, func(env *sim.Env) { ev.janitor.env = env }, func() { ev.janitor.next() })
}

func (ev *simEv) stopClients() {
	for _, cl := range ev.clients {
		cl.stopped = true
	}
	if ev.janitor != nil {
		ev.janitor.stopped = true
	}
}

func (ev *simEv) idle() bool {
	for _, cl := range ev.clients {
		if cl.p != nil {
			return false
		}
	}
	return ev.janitor == nil || ev.janitor.p == nil
}

// busy says whether a client has an operation on key under way.
func (ev *simEv) busy(key string) bool {
	for _, cl := range ev.clients {
		if cl.p != nil && cl.p.op.in.key == key {
			return true
		}
	}
	return false
}

func (cl *simEvClient) rand(n int) int { return cl.env.Rand().IntN(n) }

func (cl *simEvClient) next() {
	if cl.stopped || cl.p != nil {
		return
	}
	var in simEvIn
	if cl.janitor {
		key := cl.ev.janitorKey()
		if key == "" {
			cl.env.After(50*time.Millisecond, cl.next)
			return
		}
		cl.ev.locked = key
		in = simEvIn{kind: evDel, key: key}
	} else {
		in = cl.draw()
	}
	cl.seq++
	op := &simEvOp{id: simEvOpID{cl.id, cl.seq}, in: in, invoke: cl.env.Now(), state: "pending", callStamp: cl.ev.nextStamp()}
	cl.ev.ops[op.id] = op
	cl.ev.order = append(cl.ev.order, op)
	cl.p = &simEvPending{op: op, req: simEvRequest{ID: op.id, In: in, Idem: fmt.Sprintf("c%d-%d", cl.id, cl.seq)},
		budget: cl.env.Now() + simOpBudget}
	cl.attempt()
}

// janitorKey picks a compare-and-swap key no client is at work on, that
// no unknown operation may still write to.
func (ev *simEv) janitorKey() string {
	var free []string
	for _, k := range simCASKeys {
		if !ev.tainted[k] && !ev.busy(k) {
			free = append(free, k)
		}
	}
	if len(free) == 0 {
		return ""
	}
	return free[ev.janitor.rand(len(free))]
}

func (cl *simEvClient) attempt() {
	p := cl.p
	p.req.Attempt++
	p.op.attempts++
	target := cl.ev.c.ids[cl.rand(len(cl.ev.c.ids))]
	cl.env.Send(sim.NodeID(target), p.req)
	p.timer = cl.env.After(simAttemptTimeout, func() {
		// No answer: the attempt's outcome is unknown.
		p.op.uncertain = true
		if p.op.in.writes() && !p.op.in.conditional() {
			cl.finish("unknown", nil)
			return
		}
		cl.retry()
	})
}

// retry makes another attempt after a backoff, or ends the operation if
// its budget would run out.
func (cl *simEvClient) retry() {
	p := cl.p
	wait := time.Duration(5+cl.rand(20)) * time.Millisecond << min(p.op.attempts, 4)
	if cl.env.Now()+wait >= p.budget {
		if p.op.uncertain {
			cl.finish("unknown", nil)
		} else {
			cl.finish("unavailable", nil)
		}
		return
	}
	p.timer = cl.env.After(wait, cl.attempt)
}

func (cl *simEvClient) Receive(from sim.NodeID, msg any) {
	r, ok := msg.(simEvReply)
	p := cl.p
	if !ok || p == nil || r.ID != p.req.ID || r.Attempt != p.req.Attempt {
		return // a late or duplicated answer
	}
	p.timer.Stop()
	op := p.op
	switch r.Answer {
	case ansOK:
		cl.finish("ok", &r)
	case ansFailed:
		cl.finish("failed", &r)
	case ansUnavailable:
		if !r.Stamped.IsZero() {
			op.refused = append(op.refused, r.Stamped)
		}
		cl.retry()
	case ansUnknown:
		op.uncertain = true
		if op.in.conditional() {
			cl.retry() // same idempotency key
			return
		}
		cl.finish("unknown", nil)
	default:
		cl.ev.c.unexpected = append(cl.ev.c.unexpected, fmt.Sprintf("node %d answered %v with %q", from, op.in, r.Err))
		op.uncertain = true
		cl.finish("unknown", nil)
	}
}

// finish ends the pending operation in state, with the answer r if any.
func (cl *simEvClient) finish(state string, r *simEvReply) {
	p := cl.p
	p.timer.Stop()
	cl.p = nil
	op := p.op
	op.state, op.ret, op.retStamp = state, cl.env.Now(), cl.ev.nextStamp()
	in := op.in
	if r != nil {
		op.rec, op.version, op.acked = r.Rec, r.Version, r.Stamped
	}
	cas := slices.Contains(simCASKeys, in.key)
	switch {
	case state == "ok" && in.kind == evGet && cas:
		cl.known[in.key] = simEvKnown{present: op.rec.Exists(), value: string(op.rec.Value), version: eventual.FormatRecordVersion(op.rec.Version)}
	case state == "ok" && in.kind == evCAS:
		cl.known[in.key] = simEvKnown{present: true, value: in.value, version: op.version}
	case state == "ok" && (in.kind == evDelIf || in.kind == evDel) && cas:
		cl.known[in.key] = simEvKnown{}
	case state == "unknown" && cas:
		cl.ev.tainted[in.key] = true
	}
	if state == "ok" || state == "failed" {
		cl.completed++
	}
	if cl.janitor {
		// Half the time the key rests past the tombstone grace, so that
		// the next swap of it comes after anti-entropy purged the
		// tombstone (if every replica could be reached).
		rest := time.Duration(0)
		if state == "ok" && cl.rand(2) == 0 {
			rest = simTombstoneGrace + time.Second
		}
		cl.env.After(rest, func() {
			cl.ev.locked = ""
			cl.env.After(300*time.Millisecond+time.Duration(cl.rand(400))*time.Millisecond, cl.next)
		})
		return
	}
	cl.env.After(time.Duration(cl.rand(15))*time.Millisecond, cl.next)
}

// draw picks the next operation. Written values are unique, which lets
// the checks tell writes apart.
func (cl *simEvClient) draw() simEvIn {
	if !cl.ev.shape.noCAS && cl.rand(3) == 0 {
		var free []string
		for _, k := range simCASKeys {
			if k != cl.ev.locked {
				free = append(free, k)
			}
		}
		return cl.drawCAS(free[cl.rand(len(free))])
	}
	key := simEvKeys[cl.rand(len(simEvKeys))]
	switch p := cl.rand(100); {
	case p < 45:
		return simEvIn{kind: evGet, key: key}
	case p < 85:
		return simEvIn{kind: evPut, key: key, value: cl.value()}
	default:
		return simEvIn{kind: evDel, key: key}
	}
}

func (cl *simEvClient) value() string {
	cl.writes++
	return fmt.Sprintf("c%d-%d", cl.id, cl.writes)
}

// drawCAS picks an operation on compare-and-swap key, with conditions on
// what the client last saw of it (a read's ETag, as a REST client does
// with If-Match).
func (cl *simEvClient) drawCAS(key string) simEvIn {
	k := cl.known[key]
	byVersion := simEvIn{key: key, expect: catalog.Expect{Version: k.version}, was: k.value}
	byValue := simEvIn{key: key, expect: catalog.Expect{Value: []byte(k.value)}, was: k.value}
	exists := simEvIn{key: key, expect: catalog.Expect{Exists: true}}
	absent := simEvIn{kind: evCAS, key: key, expect: catalog.Expect{Absent: true}, value: cl.value()}
	p := cl.rand(100)
	switch {
	case p < 15:
		return simEvIn{kind: evGet, key: key}
	case p < 30 || (p < 82 && !k.present):
		if p >= 65 {
			exists.kind = evDelIf
			return exists
		}
		return absent
	case p < 55:
		byVersion.kind, byVersion.value = evCAS, cl.value()
		return byVersion
	case p < 65:
		byValue.kind, byValue.value = evCAS, cl.value()
		return byValue
	case p < 70:
		exists.kind, exists.value = evCAS, cl.value()
		return exists
	case p < 82:
		byVersion.kind = evDelIf
		return byVersion
	case p < 90:
		byValue.kind = evDelIf
		return byValue
	}
	exists.kind = evDelIf
	return exists
}

// converged reports whether every eventual range's replicas are up and
// hold the same records, with no tombstone older than the purge horizon
// (less a second for the rounds to get to it) left.
func (ev *simEv) converged() bool {
	c := ev.c
	old := simEpoch + int64(c.s.Now()) - int64(simTombstoneGrace+time.Second)
	for _, rd := range c.node(1).store.Catalog().Ranges[ev.shape.ks.Name] {
		var first []records.KeyRecord
		for i, rep := range rd.Replicas {
			n := c.node(rep.NodeID)
			if n == nil || n.node.ev.Settled(rd) != nil {
				return false // down, or still moving a split's records
			}
			recs, err := n.node.ev.Records.Scan(rd.ID, nil, nil, 1<<20)
			if err != nil {
				c.t.Fatal(err)
			}
			for _, kr := range recs {
				if !rd.Span.Contains(catalog.HashKey(kr.Key)) {
					return false // a record a split left behind: the run fails, never converged
				}
				if kr.Record.Tombstone && kr.Record.Version.Timestamp.WallTime < old {
					return false
				}
			}
			if i == 0 {
				first = recs
			} else if !slices.EqualFunc(first, recs, func(a, b records.KeyRecord) bool {
				return bytes.Equal(a.Key, b.Key) && a.Record.Version == b.Record.Version
			}) {
				return false
			}
		}
	}
	return true
}

// describe is every replica's records, for failures.
func (ev *simEv) describe() string {
	var b bytes.Buffer
	c := ev.c
	for _, rd := range c.node(c.ids[0]).store.Catalog().Ranges[ev.shape.ks.Name] {
		for _, rep := range rd.Replicas {
			n := c.node(rep.NodeID)
			if n == nil {
				fmt.Fprintf(&b, "range %d node %d: down\n", rd.ID, rep.NodeID)
				continue
			}
			recs, _ := n.node.ev.Records.Scan(rd.ID, nil, nil, 1<<20)
			fmt.Fprintf(&b, "range %d node %d:", rd.ID, rep.NodeID)
			if err := n.node.ev.Settled(rd); err != nil {
				fmt.Fprintf(&b, " (%v)", err)
			}
			for _, kr := range recs {
				fmt.Fprintf(&b, " %s=%s", kr.Key, describeRecord(kr.Record))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func describeRecord(r wrn.Record) string {
	switch {
	case r.Version.IsZero():
		return "none"
	case r.Tombstone:
		return "tombstone@" + eventual.FormatRecordVersion(r.Version)
	}
	return fmt.Sprintf("%q@%s", r.Value, eventual.FormatRecordVersion(r.Version))
}

// finalRecord is key's converged record (on its range's first replica).
func (ev *simEv) finalRecord(key string) wrn.Record {
	c := ev.c
	k := []byte(key)
	_, rd, err := c.node(c.ids[0]).node.ev.Lookup(ev.shape.ks.Name, k)
	if err != nil {
		c.t.Fatal(err)
	}
	rec, err := c.node(rd.Replicas[0].NodeID).node.ev.Records.Read(rd.ID, k)
	if err != nil {
		c.t.Fatal(err)
	}
	return rec
}

// writesOf returns the plain writes of key that reached a coordinator, by
// the version of each attempt.
func (ev *simEv) writesOf(key string) map[wrn.Version]*simEvOp {
	out := map[wrn.Version]*simEvOp{}
	for _, op := range ev.order {
		if op.in.key == key && (op.in.kind == evPut || op.in.kind == evDel) {
			for _, v := range op.stamped {
				out[v] = op
			}
		}
	}
	return out
}

// purgedDelete says whether a delete among writes, begun before the time
// before, has a version of at least v: once its tombstone is purged, no
// record is what it leaves.
func purgedDelete(writes map[wrn.Version]*simEvOp, v wrn.Version, before time.Duration) bool {
	for wv, w := range writes {
		if w.in.kind == evDel && !wv.Less(v) && w.invoke < before {
			return true
		}
	}
	return false
}

// matches says whether rec is what write op wrote.
func matches(rec wrn.Record, op *simEvOp) bool {
	if op.in.kind == evDel {
		return rec.Tombstone
	}
	return !rec.Tombstone && string(rec.Value) == op.in.value
}

// checkReads checks every answered read of a plain key against the
// writes of its key: it returns a record some write of that key wrote
// (and that write began before the read ended), never one an attempt
// answered Unavailable wrote, and it counts the reads that missed a write
// acknowledged before they started (ev.stale), requiring the staleness
// measure to have counted each of them that settled. A read that finds
// nothing missed nothing if a delete as new was written: its tombstone
// may have been purged.
func (ev *simEv) checkReads() {
	for _, key := range simEvKeys {
		writes := ev.writesOf(key)
		for _, rd := range ev.order {
			if rd.in.key != key || rd.in.kind != evGet || rd.state != "ok" {
				continue
			}
			if !rd.rec.Version.IsZero() {
				w, ok := writes[rd.rec.Version]
				switch {
				case !ok:
					ev.failf("read %v (client %d #%d) returned %s, which no write of the key wrote", rd.in, rd.id.client, rd.id.seq, describeRecord(rd.rec))
				case !matches(rd.rec, w):
					ev.failf("read %v returned %s, but that version wrote %v", rd.in, describeRecord(rd.rec), w.in)
				case w.invoke > rd.ret:
					ev.failf("read %v returned %s, written by %v, which began after the read ended", rd.in, describeRecord(rd.rec), w.in)
				case slices.Contains(w.refused, rd.rec.Version):
					ev.failf("read %v returned %s, written by an attempt of %v that was answered Unavailable (nothing written)",
						rd.in, describeRecord(rd.rec), w.in)
				}
			}
			var missed *simEvOp
			for _, w := range writes {
				if w.state == "ok" && w.ret < rd.invoke && rd.rec.Version.Less(w.acked) {
					if missed == nil || missed.acked.Less(w.acked) {
						missed = w
					}
				}
			}
			if missed == nil || (rd.rec.Version.IsZero() && purgedDelete(writes, missed.acked, rd.ret)) {
				// Nothing missed; or a delete at least as new as the
				// write missed (acknowledged or not: a write of unknown
				// outcome may still reach replicas, by hints) has had its
				// tombstone purged: "none" is what it wrote.
				continue
			}
			ev.stale++
			if rd.settled {
				if !rd.measured {
					ev.failf("read %v returned %s, missing %v (version %s, acknowledged before the read), and every replica answered, "+
						"yet the staleness measure did not count it", rd.in, describeRecord(rd.rec), missed.in, eventual.FormatRecordVersion(missed.acked))
				}
				ev.staleMeasured++
			}
		}
	}
}

// checkFinal checks the converged record of every plain key: the newest
// acknowledged write's, or a newer one that some write of the key wrote
// (not an attempt answered Unavailable); absent only if a delete at least
// as new was purged.
func (ev *simEv) checkFinal() {
	for _, key := range simEvKeys {
		var newest *simEvOp
		writes := ev.writesOf(key)
		for _, w := range writes {
			if w.state == "ok" && (newest == nil || newest.acked.Less(w.acked)) {
				newest = w
			}
		}
		rec := ev.finalRecord(key)
		if rec.Version.IsZero() {
			if newest != nil && !purgedDelete(writes, newest.acked, ev.c.s.Now()) {
				ev.failf("key %s: no record left, but %v (version %s) was acknowledged and no delete as new was written",
					key, newest.in, eventual.FormatRecordVersion(newest.acked))
			}
			continue
		}
		w, ok := writes[rec.Version]
		switch {
		case !ok || !matches(rec, w):
			ev.failf("key %s holds %s, which no write of the key wrote", key, describeRecord(rec))
		case slices.Contains(w.refused, rec.Version):
			ev.failf("key %s holds %s, written by an attempt of %v that was answered Unavailable (nothing written)", key, describeRecord(rec), w.in)
		case newest != nil && rec.Version.Less(newest.acked):
			ev.failf("key %s holds %s, older than the acknowledged %v (version %s): an acknowledged write was lost",
				key, describeRecord(rec), newest.in, eventual.FormatRecordVersion(newest.acked))
		}
	}
}

// checkOnce checks that every value was written at one version at most,
// however often its request was retried, and that a compare-and-swap
// answered Unavailable by every attempt wrote nothing: over every record
// a read returned, every converged record, the probes, and the versions
// the swaps answered.
func (ev *simEv) checkOnce() {
	byValue := map[string]*simEvOp{}
	for _, op := range ev.order {
		if op.in.kind == evPut || op.in.kind == evCAS {
			byValue[op.in.value] = op
		}
	}
	seen := map[string]map[string]string{} // value -> version -> where
	see := func(rec wrn.Record, where string) {
		if !rec.Exists() {
			return
		}
		v := string(rec.Value)
		if seen[v] == nil {
			seen[v] = map[string]string{}
		}
		seen[v][eventual.FormatRecordVersion(rec.Version)] = where
	}
	for _, op := range ev.order {
		switch {
		case op.in.kind == evGet && op.state == "ok":
			see(op.rec, fmt.Sprintf("read by client %d #%d", op.id.client, op.id.seq))
		case op.in.kind == evCAS && op.state == "ok":
			seen[op.in.value] = map[string]string{op.version: "the swap's answer"}
		}
	}
	for _, key := range append(slices.Clone(simEvKeys), simCASKeys...) {
		see(ev.finalRecord(key), "the converged record")
	}
	for _, p := range ev.probes {
		see(p.Output.(evModelOut).rec, "the final probe")
	}
	for _, v := range slices.Sorted(maps.Keys(seen)) {
		op := byValue[v]
		switch {
		case op == nil:
			ev.failf("value %q was seen (%v), but no write wrote it", v, seen[v])
		case len(seen[v]) > 1:
			ev.failf("%v (client %d #%d, %d attempts) took effect more than once: value %q seen at versions %v",
				op.in, op.id.client, op.id.seq, op.attempts, v, seen[v])
		case op.in.kind == evCAS && op.state == "unavailable":
			ev.failf("%v was answered Unavailable by all its %d attempts (nothing written), yet its value was seen: %v",
				op.in, op.attempts, seen[v])
		}
	}
}

// probe reads each compare-and-swap key linearizably at the end, through
// Paxos: a compare-and-swap whose condition never holds reports the
// register's record.
func (ev *simEv) probe() bool {
	if ev.shape.noCAS {
		return true
	}
	c := ev.c
	n := c.node(c.ids[0])
	for _, key := range simCASKeys {
		k := []byte(key)
		ks, rd, err := n.node.ev.Lookup(ev.shape.ks.Name, k)
		if err != nil {
			c.t.Fatal(err)
		}
		call := ev.nextStamp()
		var dec eventual.CASDecision
		// The network still loses messages: Unavailable is retried.
		for try := 0; ; try++ {
			op, err := n.node.ev.NewCASOp(ks, rd, k, catalog.Expect{Version: "probe"}, wrn.Record{Value: []byte("probe")}, nil)
			if err != nil {
				ev.failf("probe of %s: %v", key, err)
				return false
			}
			var res *eventual.CASResult
			op.Start(func(r eventual.CASResult) { res = &r })
			if !ev.runUntil("the probe of "+key, simOpBudget, func() bool { return res != nil }) {
				return false
			}
			op.Mu.Lock()
			dec = op.Mu.Dec
			op.Mu.Unlock()
			if errors.Is(res.Err, command.ErrConditionFailed) && dec.Kind == eventual.CASFailed {
				break
			}
			if !errors.Is(res.Err, store.ErrUnavailable) || try == 10 {
				ev.failf("probe of %s: %v", key, res.Err)
				return false
			}
		}
		ev.probes = append(ev.probes, porcupine.Operation{ClientId: simClients + 1, Input: evModelIn{kind: evProbe, key: key},
			Call: call, Output: evModelOut{rec: dec.Rec}, Return: ev.nextStamp()})
	}
	return true
}

// nextStamp returns a porcupine timestamp: virtual time, bumped past the
// last one so that events at one virtual instant keep their order.
func (ev *simEv) nextStamp() int64 {
	ev.stamp = max(int64(ev.c.s.Now()), ev.stamp+1)
	return ev.stamp
}

// evModelIn is an operation on a compare-and-swap key, in the model's
// terms; evModelOut is its result.
type evModelIn struct {
	kind               simEvKind
	key                string
	absent, exists     bool
	was, value         string
	client, seq, tries uint64
}

type evModelOut struct {
	swapped bool
	unknown bool
	rec     wrn.Record // evProbe
}

// evModelState is one key's state.
type evModelState struct {
	present bool
	value   string
}

// evModel is the porcupine model of a compare-and-swap key: swaps and
// conditional deletes that take effect if and only if their condition
// holds, plain deletes, and reads (the probe).
func evModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			for _, op := range history {
				k := op.Input.(evModelIn).key
				byKey[k] = append(byKey[k], op)
			}
			var out [][]porcupine.Operation
			for _, k := range slices.Sorted(maps.Keys(byKey)) {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return evModelState{} },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(evModelState), input.(evModelIn), output.(evModelOut)
			switch in.kind {
			case evProbe:
				return out.rec.Exists() == st.present && (!st.present || string(out.rec.Value) == st.value), st
			case evDel:
				return true, evModelState{}
			}
			holds := (in.absent && !st.present) || (in.exists && st.present) ||
				(!in.absent && !in.exists && st.present && st.value == in.was)
			if !out.unknown && out.swapped != holds {
				return false, st
			}
			switch {
			case !holds:
				return true, st
			case in.kind == evDelIf:
				return true, evModelState{}
			}
			return true, evModelState{present: true, value: in.value}
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(evModelIn), output.(evModelOut)
			var cond string
			switch {
			case in.absent:
				cond = "absent"
			case in.exists:
				cond = "exists"
			default:
				cond = fmt.Sprintf("%q", in.was)
			}
			var res string
			switch {
			case out.unknown:
				res = "?"
			case in.kind == evProbe:
				res = describeRecord(out.rec)
			default:
				res = fmt.Sprint(out.swapped)
			}
			what := map[simEvKind]string{evCAS: "cas", evDelIf: "delete-if", evDel: "delete", evProbe: "probe"}[in.kind]
			switch in.kind {
			case evCAS:
				return fmt.Sprintf("c%d#%d %s(%s, %s -> %q) -> %s [%d tries]", in.client, in.seq, what, in.key, cond, in.value, res, in.tries)
			case evDelIf:
				return fmt.Sprintf("c%d#%d %s(%s, %s) -> %s [%d tries]", in.client, in.seq, what, in.key, cond, res, in.tries)
			}
			return fmt.Sprintf("c%d#%d %s(%s) -> %s", in.client, in.seq, what, in.key, res)
		},
		DescribeState: func(state any) string {
			st := state.(evModelState)
			if !st.present {
				return "absent"
			}
			return fmt.Sprintf("%q", st.value)
		},
	}
}

// casHistory is the compare-and-swap keys' history in porcupine's terms:
// their swaps, conditional and plain deletes (an operation that every
// attempt was answered Unavailable for did nothing, and is left out), and
// the probes.
func (ev *simEv) casHistory() []porcupine.Operation {
	var ops []porcupine.Operation
	for _, op := range ev.order {
		if !slices.Contains(simCASKeys, op.in.key) || !op.in.writes() || op.state == "unavailable" {
			continue
		}
		in := evModelIn{kind: op.in.kind, key: op.in.key, absent: op.in.expect.Absent, exists: op.in.expect.Exists,
			was: op.in.was, value: op.in.value, client: op.id.client, seq: op.id.seq, tries: uint64(op.attempts)}
		pop := porcupine.Operation{ClientId: ev.clientIdx(op.id.client), Input: in, Call: op.callStamp, Return: op.retStamp,
			Output: evModelOut{swapped: op.state == "ok"}}
		if op.state == "unknown" {
			pop.Return, pop.Output = math.MaxInt64, evModelOut{unknown: true}
		}
		ops = append(ops, pop)
	}
	return append(ops, ev.probes...)
}

func (ev *simEv) clientIdx(id uint64) int { return int(id - simClientID - 1) }

// checkCAS checks the compare-and-swap keys' history with porcupine.
func (ev *simEv) checkCAS() {
	if ev.shape.noCAS {
		return
	}
	checkEvLinearizable(ev.t, ev.casHistory(), ev.failf)
}

// checkEvLinearizable checks ops against evModel, reporting a violation
// with the operations of each key that does not linearize and a porcupine
// visualization (an HTML file) in sim.ArtifactDir.
func checkEvLinearizable(t testing.TB, ops []porcupine.Operation, failf func(string, ...any)) {
	model := evModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, sim.DefaultCheckTimeout)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		failf("linearizability check of %d compare-and-swap operations timed out after %v", len(ops), sim.DefaultCheckTimeout)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the compare-and-swap history of %d operations is not linearizable\n", len(ops))
	partials := info.PartialLinearizationsOperations()
	for i, part := range model.Partition(ops) {
		longest := 0
		if i < len(partials) {
			for _, p := range partials[i] {
				longest = max(longest, len(p))
			}
		}
		if longest == len(part) {
			continue
		}
		fmt.Fprintf(&b, "key %s: %d operations, at most %d linearizable:\n", part[0].Input.(evModelIn).key, len(part), longest)
		for _, op := range part {
			ret := "never"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			fmt.Fprintf(&b, "  [%v, %s] %s\n", time.Duration(op.Call), ret, model.DescribeOperation(op.Input, op.Output))
		}
	}
	if dir, err := sim.ArtifactDir(); err == nil {
		name := strings.NewReplacer("/", ".", ",", "_", "=", "_").Replace(t.Name()) + ".cas.porcupine.html"
		if f, err := os.Create(dir + "/" + name); err == nil {
			if porcupine.Visualize(model, info, f) == nil {
				fmt.Fprintf(&b, "visualization: %s/%s", dir, name)
			}
			f.Close()
		}
	}
	failf("%s", b.String())
}

// A tombstone is purged only once every replica holds it: while one
// replica, cut off for longer than the grace, still holds the value the
// delete hid, the others keep their tombstone, so that when it comes back
// anti-entropy brings it the tombstone rather than spreading the value
// back (resurrection). Then all three purge it.
func TestSimEventualTombstonePurge(t *testing.T) {
	c := newSimClusterWith(t, 1, 3, []catalog.KeyspaceDescriptor{evKeyspace(3, 2, 2)})
	key := []byte("k")
	n1 := c.node(1)
	ks, rd, err := n1.node.ev.Lookup("ev", key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(rec wrn.Record) { c.evWrite(t, n1, ks, rd, key, rec, catalog.QuorumOverride{}) }
	records := func(id uint64) wrn.Record { return c.evRecord(t, id, rd, key) }
	write(wrn.Record{Value: []byte("v")})
	c.require("every replica to hold v", time.Second, func() bool {
		return string(records(1).Value) == "v" && string(records(2).Value) == "v" && string(records(3).Value) == "v"
	})

	heal := c.s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2, 3}, 3))
	write(wrn.Record{Tombstone: true})
	// Past the grace: the hint for node 3 expired, and the tombstone is
	// old enough to purge, but node 3 still holds v.
	if err := c.s.RunFor(2 * simTombstoneGrace); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		if rec := records(id); !rec.Tombstone {
			t.Fatalf("node %d holds %s while node 3, cut off, still holds v: the tombstone was purged too early", id, describeRecord(rec))
		}
	}
	if rec := records(3); string(rec.Value) != "v" {
		t.Fatalf("node 3, cut off, holds %s", describeRecord(rec))
	}

	heal()
	c.require("node 3 to get the tombstone, and then every replica to purge it", 10*time.Second, func() bool {
		return records(1).Version.IsZero() && records(2).Version.IsZero() && records(3).Version.IsZero()
	})
	r, err := n1.node.ev.NewEventualRead(ks, rd, key, catalog.QuorumOverride{R: 3})
	if err != nil {
		t.Fatal(err)
	}
	var res *eventual.ReadResult
	r.Start(func(rr eventual.ReadResult) { res = &rr })
	c.require("the read", time.Second, func() bool { return res != nil })
	if res.Err != nil || res.Rec.Exists() {
		t.Fatalf("read after the purge: %s, %v; want nothing", describeRecord(res.Rec), res.Err)
	}
}

// While an eventual range has a leaving replica, no replica purges
// tombstones: the leaving one may hold a value the tombstone hides and
// hands its records to the others before it goes. Here the replica
// leaving is cut off, so it stays leaving; the others keep their
// tombstone far past the grace, though every replica of the range is
// alive and agrees. Once it hands off and leaves, they purge it, and its
// node deletes the range's records.
func TestSimEventualNoPurgeWhileLeaving(t *testing.T) {
	c := newSimClusterWith(t, 1, 4, []catalog.KeyspaceDescriptor{{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1}})
	key := []byte("k")
	n1 := c.node(1)
	ks, rd, err := n1.node.ev.Lookup("ev", key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(rec wrn.Record) { c.evWrite(t, n1, ks, rd, key, rec, catalog.QuorumOverride{W: 3}) }
	records := func(id uint64) wrn.Record { return c.evRecord(t, id, rd, key) }
	write(wrn.Record{Value: []byte("v")})
	write(wrn.Record{Tombstone: true})
	var leaving, to uint64
	for _, id := range c.ids {
		switch {
		case !rd.HasReplica(id):
			to = id
		case id != 1:
			leaving = id
		}
	}
	c.s.Tracef("n%d's replica moves to n%d, and n%d is cut off", leaving, to, leaving)
	heal := c.s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2, 3, 4}, sim.NodeID(leaving)))
	c.proposeCatalog(catalog.CatalogOp{Move: &catalog.MoveReplica{Range: rd.ID, From: leaving, To: catalog.ReplicaDescriptor{NodeID: to, Zone: fmt.Sprintf("z%d", to), Weight: 1}}})
	if err := c.s.RunFor(3 * simTombstoneGrace); err != nil {
		t.Fatal(err)
	}
	if got := c.catalog().Ranges["ev"][0]; !got.IsLeaving(leaving) {
		t.Fatalf("n%d's replica is not leaving: %+v", leaving, got)
	}
	for _, id := range c.ids {
		if id != leaving && id != to && !records(id).Tombstone {
			t.Fatalf("n%d holds %s while n%d's replica is leaving: the tombstone was purged", id, describeRecord(records(id)), leaving)
		}
	}
	heal()
	c.require("the leaving replica to hand off and go, and the tombstone to be purged", 20*time.Second, func() bool {
		if c.catalog().Ranges["ev"][0].IsLeaving(leaving) {
			return false
		}
		for _, id := range c.ids {
			if !records(id).Version.IsZero() {
				return false
			}
		}
		return true
	})
}

// evWrite writes rec to key of eventual range rd through node n, and
// requires it to succeed.
func (c *simCluster) evWrite(t *testing.T, n *simNode, ks catalog.KeyspaceDescriptor, rd *catalog.RangeDescriptor, key []byte, rec wrn.Record, q catalog.QuorumOverride) {
	t.Helper()
	w, err := n.node.ev.NewEventualWrite(ks, rd, key, rec, q)
	if err != nil {
		t.Fatal(err)
	}
	var res *eventual.WriteResult
	w.Start(func(r eventual.WriteResult) { res = &r })
	c.require("the write", time.Second, func() bool { return res != nil })
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}

// evRecord is node id's record of key in eventual range rd.
func (c *simCluster) evRecord(t *testing.T, id uint64, rd *catalog.RangeDescriptor, key []byte) wrn.Record {
	t.Helper()
	rec, err := c.node(id).node.ev.Records.Read(rd.ID, key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
