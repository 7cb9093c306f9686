package kv

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/wrn"
)

// Eventual keyspaces in the deterministic simulator (issue 6): whole
// nodes as in sim_test.go, with the eventual coordinator driven from the
// simulation's goroutine through simReplicaNet, and hint replay and
// anti-entropy run by its timers. Clients send put, delete and get of a
// few keys, and compare-and-swap of others, each to a random node (every
// node coordinates: dueling coordinators), while the nemesis partitions,
// drops, duplicates, and crashes nodes (losing what Pebble had not
// synced). Then the faults heal and the test checks, per key:
//
//   - W+R > N: a read that started after a write was acknowledged returns
//     its version or a newer one (so no acknowledged write is lost);
//     W+R <= N: reads that miss an acknowledged write do happen, and the
//     staleness measure (readOp.settle) counts every one of them whose
//     replicas all answered.
//   - every record a read returns was written by a request of that key
//     (value and version): nothing is invented or mixed up.
//   - after the faults heal, every replica of every range holds the same
//     records within simConvergeBound, and no tombstone older than the
//     purge horizon is left (anti-entropy purged them once every replica
//     held them); the final record of each key is the newest
//     acknowledged one or newer, a purged tombstone only where a delete
//     was that newest.
//   - compare-and-swap histories (Basic Paxos per key) are linearizable
//     (porcupine), the flash sale's guarantee.
//
// Versions are hybrid-logical-clock readings of nodes whose physical
// clocks are off by up to 50 ms: "newer" is the version order, last
// writer wins. QKV_SIM_SEEDS=n runs more seeds.

// simConvergeBound is how long after the faults heal every range's
// replicas must hold the same records.
const simConvergeBound = 15 * time.Second

// simEvKeys and simCASKeys are the keys the clients use: plain writes and
// reads on the first, compare-and-swap only on the second (mixing them
// forfeits the compare-and-swap guarantee, see eventual_cas.go).
var (
	simEvKeys  = []string{"k0", "k1", "k2", "k3"}
	simCASKeys = []string{"c0", "c1", "c2", "c3"}
)

type simEvShape struct {
	name  string
	nodes int
	ks    KeyspaceDescriptor
	// q overrides the keyspace's W and R in every request, as kvctl's
	// --w and --r do: a keyspace is refused with W+R <= N, a request is
	// not.
	q QuorumOverride
	// noCAS leaves compare-and-swap out of the workload.
	noCAS bool
}

func evKeyspace(n, w, r int) KeyspaceDescriptor {
	return KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: n, W: w, R: r, Ranges: 2}
}

func TestSimEventual(t *testing.T) {
	for _, shape := range []simEvShape{
		{name: "nodes=3,N=3,W=2,R=2", nodes: 3, ks: evKeyspace(3, 2, 2)},
		{name: "nodes=5,N=5,W=3,R=3", nodes: 5, ks: evKeyspace(5, 3, 3)},
		{name: "nodes=5,N=3,W=1,R=3", nodes: 5, ks: evKeyspace(3, 1, 3)},
		// Write sets and read sets from a geometry instead of sizes: one
		// node per zone here, so a write needs one zone (one replica) and
		// a read one node in every zone (all three).
		{name: "nodes=3,N=3,zones", nodes: 3, ks: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, Quorum: "zones", Ranges: 2}},
	} {
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
	shape := simEvShape{name: "nodes=3,N=3,W=1,R=1", nodes: 3, ks: evKeyspace(3, 2, 2), q: QuorumOverride{W: 1, R: 1}, noCAS: true}
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
			if op.in.Op == sim.OpGet && op.state == "acked" {
				reads++
			}
		}
	})
}

// simEv is one seed's eventual run: its clients and what they saw.
type simEv struct {
	c       *simCluster
	shape   simEvShape
	clients []*simEvClient
	ops     map[simEvOpID]*simEvOp
	order   []*simEvOp
	// stale counts the reads that missed an acknowledged write, and
	// staleMeasured those of them the staleness measure counted.
	stale, staleMeasured int
}

type simEvOpID struct{ client, seq uint64 }

// simEvOp is one client operation on a plain key, as the test saw it.
type simEvOp struct {
	id          simEvOpID
	in          sim.KVInput
	invoke, ret time.Duration
	// state: pending, then acked (a write acknowledged, a read answered),
	// failed (the coordinator said Unavailable: a write may still have
	// reached some replicas) or unknown.
	state string
	// version is a write's, logged by its coordinator when it versioned
	// it; coordinated says it got that far.
	version     wrn.Version
	coordinated bool
	// rec is what a read returned; settled says every replica answered
	// it without an error, and measured whether the staleness measure
	// then counted it stale.
	rec               wrn.Record
	settled, measured bool
}

// simEvRequest is a client's operation, sent to one node.
type simEvRequest struct {
	ID simEvOpID
	In sim.KVInput
}

// simEvReply answers it: Err empty on success; Failed for a condition that
// failed (compare-and-swap) or a write that was refused; Rec is a read's
// record.
type simEvReply struct {
	ID     simEvOpID
	Err    string
	Failed bool
	Rec    wrn.Record
}

func runSimEventual(t *testing.T, seed uint64, shape simEvShape) *simEv {
	c := newSimClusterWith(t, seed, shape.nodes, []KeyspaceDescriptor{shape.ks})
	ev := &simEv{c: c, shape: shape, ops: map[simEvOpID]*simEvOp{}}
	c.eventual = ev.serve
	s := c.s

	c.startFaults(ev.startClients, false)
	if err := s.RunFor(simFaults); err != nil {
		t.Fatal(err)
	}
	s.Heal()
	healed := s.Now()
	s.Tracef("healed: convergence from here")
	ev.stopClients()
	c.require("the clients' last operations to end", 2*simOpTimeout, ev.idle)
	if err := s.RunUntil(ev.converged, simConvergeBound); err != nil {
		t.Fatalf("the replicas did not converge within %v of healing: %v\n%s", simConvergeBound, err, ev.describe())
	}
	converged := s.Now() - healed

	// Liveness: every client completes operations again.
	base := make([]int, len(ev.clients))
	for i, cl := range ev.clients {
		base[i] = cl.completed
		cl.stopped = false
		cl.env.After(0, cl.next)
	}
	c.require(fmt.Sprintf("every client to complete %d operations after the faults healed", simLiveOps), simLiveness, func() bool {
		for i, cl := range ev.clients {
			if cl.completed < base[i]+simLiveOps {
				return false
			}
		}
		return true
	})
	ev.stopClients()
	c.require("the clients' last operations to end", 2*simOpTimeout, ev.idle)
	if err := s.RunUntil(ev.converged, simConvergeBound); err != nil {
		t.Fatalf("the replicas did not converge again: %v\n%s", err, ev.describe())
	}

	for _, msg := range c.unexpected {
		t.Error(msg)
	}
	ev.checkReads()
	ev.checkFinal()
	sim.AssertLinearizable(t, c.h, sim.DefaultCheckTimeout)
	crashes := 0
	for _, d := range c.disks {
		crashes += d.Crashes()
	}
	t.Logf("seed %d: %d operations (%d compare-and-swap), %d crashes, converged %v after healing, %d stale reads, %v virtual",
		seed, len(ev.order)+c.h.Len(), c.h.Len(), crashes, converged, ev.stale, s.Now())
	return ev
}

// serve starts a client's request on node n as the API would (Node's
// PutWith, DeleteWith, GetWith, CompareAndSwap), answering when it is
// decided.
func (ev *simEv) serve(n *simNode, from sim.NodeID, req simEvRequest) {
	reply := func(r simEvReply) {
		r.ID = req.ID
		n.env.Send(from, r)
	}
	key := []byte(req.In.Key)
	ks, rd, err := n.node.lookup(ev.shape.ks.Name, key)
	if err != nil {
		reply(simEvReply{Err: err.Error()})
		return
	}
	switch req.In.Op {
	case sim.OpPut, sim.OpDelete:
		rec := wrn.Record{Value: []byte(req.In.Value)}
		if req.In.Op == sim.OpDelete {
			rec = wrn.Record{Tombstone: true}
		}
		w, err := n.node.newEventualWrite(ks, rd, key, rec, ev.shape.q)
		if err != nil {
			reply(simEvReply{Err: err.Error()})
			return
		}
		op := ev.ops[req.ID]
		op.version, op.coordinated = w.rec.Version, true
		w.start(func(res writeResult) {
			if res.err != nil {
				reply(simEvReply{Err: res.err.Error(), Failed: errors.Is(res.err, ErrUnavailable)})
				return
			}
			reply(simEvReply{})
		})
	case sim.OpGet:
		r, err := n.node.newEventualRead(ks, rd, key, ev.shape.q)
		if err != nil {
			reply(simEvReply{Err: err.Error()})
			return
		}
		op := ev.ops[req.ID]
		r.stale = func(stale, complete bool) { op.settled, op.measured = complete, stale }
		r.start(func(res readResult) {
			if res.err != nil {
				reply(simEvReply{Err: res.err.Error(), Failed: true})
				return
			}
			reply(simEvReply{Rec: res.rec})
		})
	case sim.OpCAS:
		cas, err := n.node.newCASOp(ks, rd, key, Expect{Absent: req.In.ExpectAbsent, Value: []byte(req.In.Expect)}, []byte(req.In.Value))
		if err != nil {
			reply(simEvReply{Err: err.Error()})
			return
		}
		cas.start(func(res casResult) {
			switch {
			case res.err == nil:
				reply(simEvReply{})
			case errors.Is(res.err, ErrConditionFailed):
				reply(simEvReply{Failed: true})
			default:
				reply(simEvReply{Err: res.err.Error()})
			}
		})
	}
}

// simEvClient issues random operations, one at a time, each to a random
// node; an operation not answered within simOpTimeout ends unknown.
type simEvClient struct {
	ev        *simEv
	env       *sim.Env
	id        uint64
	seq       uint64
	pending   *simEvPending
	stopped   bool
	completed int
	writes    int
	seen      map[string]string // compare-and-swap keys: the value last seen
}

type simEvPending struct {
	req      simEvRequest
	op       *simEvOp // plain keys
	cas      *sim.Op  // compare-and-swap keys
	deadline *sim.Timer
}

func (ev *simEv) startClients() {
	c := ev.c
	for i := range simClients {
		id := uint64(simClientID + i + 1)
		cl := &simEvClient{ev: ev, id: id, seen: map[string]string{}}
		c.addClient(id, cl, func(env *sim.Env) { cl.env = env }, func() { cl.next() })
		ev.clients = append(ev.clients, cl)
	}
}

func (ev *simEv) stopClients() {
	for _, cl := range ev.clients {
		cl.stopped = true
	}
}

func (ev *simEv) idle() bool {
	for _, cl := range ev.clients {
		if cl.pending != nil {
			return false
		}
	}
	return true
}

func (cl *simEvClient) rand(n int) int { return cl.env.Rand().IntN(n) }

func (cl *simEvClient) next() {
	if cl.stopped || cl.pending != nil {
		return
	}
	cl.seq++
	p := &simEvPending{req: simEvRequest{ID: simEvOpID{cl.id, cl.seq}, In: cl.draw()}}
	if p.req.In.Op == sim.OpCAS {
		p.cas = cl.ev.c.h.Invoke(sim.NodeID(cl.id), p.req.In)
	} else {
		p.op = &simEvOp{id: p.req.ID, in: p.req.In, invoke: cl.env.Now(), state: "pending"}
		cl.ev.ops[p.req.ID] = p.op
		cl.ev.order = append(cl.ev.order, p.op)
	}
	cl.pending = p
	p.deadline = cl.env.After(simOpTimeout, func() { cl.finish(nil) })
	target := cl.ev.c.ids[cl.rand(len(cl.ev.c.ids))]
	cl.env.Send(sim.NodeID(target), p.req)
}

// draw picks the next operation. Written values are unique, which lets
// the checks tell writes apart.
func (cl *simEvClient) draw() sim.KVInput {
	val := func() string {
		cl.writes++
		return fmt.Sprintf("c%d-%d", cl.id, cl.writes)
	}
	if !cl.ev.shape.noCAS && cl.rand(5) == 0 {
		key := simCASKeys[cl.rand(len(simCASKeys))]
		expect, ok := cl.seen[key]
		if !ok || cl.rand(3) == 0 {
			return sim.KVCASAbsent(key, val())
		}
		return sim.KVCAS(key, expect, val())
	}
	key := simEvKeys[cl.rand(len(simEvKeys))]
	switch p := cl.rand(100); {
	case p < 45:
		return sim.KVGet(key)
	case p < 85:
		return sim.KVPut(key, val())
	default:
		return sim.KVDelete(key)
	}
}

func (cl *simEvClient) Receive(from sim.NodeID, msg any) {
	r, ok := msg.(simEvReply)
	if !ok || cl.pending == nil || r.ID != cl.pending.req.ID {
		return // a late or duplicated answer
	}
	if r.Err != "" && !r.Failed && cl.pending.cas == nil {
		cl.ev.c.unexpected = append(cl.ev.c.unexpected, fmt.Sprintf("node %d answered %v with %q", from, cl.pending.req.In, r.Err))
	}
	cl.finish(&r)
}

// finish ends the pending operation with r, or unknown if r is nil.
func (cl *simEvClient) finish(r *simEvReply) {
	p := cl.pending
	p.deadline.Stop()
	cl.pending = nil
	now := cl.env.Now()
	switch {
	case p.cas != nil && r != nil && r.Err == "":
		p.cas.Return(sim.KVOutput{Swapped: !r.Failed})
		if !r.Failed {
			cl.seen[p.req.In.Key] = p.req.In.Value
		}
		cl.completed++
	case p.cas != nil:
		p.cas.Unknown()
	case r == nil:
		p.op.state, p.op.ret = "unknown", now
	case r.Err != "" && !r.Failed:
		p.op.state, p.op.ret = "unknown", now
	case r.Failed:
		p.op.state, p.op.ret = "failed", now
	default:
		p.op.state, p.op.ret, p.op.rec = "acked", now, r.Rec
		cl.completed++
	}
	cl.env.After(time.Duration(cl.rand(15))*time.Millisecond, cl.next)
}

// converged reports whether every eventual range's replicas are up and
// hold the same records, with no tombstone older than the purge horizon
// (less a second for the rounds to get to it) left.
func (ev *simEv) converged() bool {
	c := ev.c
	old := simEpoch + int64(c.s.Now()) - int64(simTombstoneGrace+time.Second)
	for _, rd := range c.node(1).store.Catalog().Ranges[ev.shape.ks.Name] {
		var first []keyRecord
		for i, rep := range rd.Replicas {
			n := c.node(rep.NodeID)
			if n == nil {
				return false
			}
			recs, err := n.node.records.scan(rd.ID, nil, nil, 1<<20)
			if err != nil {
				c.t.Fatal(err)
			}
			for _, kr := range recs {
				if kr.Record.Tombstone && kr.Record.Version.Timestamp.WallTime < old {
					return false
				}
			}
			if i == 0 {
				first = recs
			} else if !slices.EqualFunc(first, recs, func(a, b keyRecord) bool {
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
	for _, rd := range c.node(1).store.Catalog().Ranges[ev.shape.ks.Name] {
		for _, rep := range rd.Replicas {
			n := c.node(rep.NodeID)
			if n == nil {
				fmt.Fprintf(&b, "range %d node %d: down\n", rd.ID, rep.NodeID)
				continue
			}
			recs, _ := n.node.records.scan(rd.ID, nil, nil, 1<<20)
			fmt.Fprintf(&b, "range %d node %d:", rd.ID, rep.NodeID)
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
		return "tombstone@" + formatRecordVersion(r.Version)
	}
	return fmt.Sprintf("%q@%s", r.Value, formatRecordVersion(r.Version))
}

// writesOf returns the writes of key that reached a coordinator, by
// version.
func (ev *simEv) writesOf(key string) map[wrn.Version]*simEvOp {
	out := map[wrn.Version]*simEvOp{}
	for _, op := range ev.order {
		if op.in.Key == key && op.in.Op != sim.OpGet && op.coordinated {
			out[op.version] = op
		}
	}
	return out
}

// purgedDelete says whether a delete among writes, begun before the time
// before, has a version of at least v: once its tombstone is purged, no
// record is what it leaves.
func purgedDelete(writes map[wrn.Version]*simEvOp, v wrn.Version, before time.Duration) bool {
	for wv, w := range writes {
		if w.in.Op == sim.OpDelete && !wv.Less(v) && w.invoke < before {
			return true
		}
	}
	return false
}

// matches says whether rec is what write op wrote.
func matches(rec wrn.Record, op *simEvOp) bool {
	if op.in.Op == sim.OpDelete {
		return rec.Tombstone
	}
	return !rec.Tombstone && string(rec.Value) == op.in.Value
}

// checkReads checks every answered read against the writes of its key:
// it returns a record some write of that key wrote (and that write began
// before the read ended), and it counts the reads that missed a write
// acknowledged before they started (ev.stale), requiring the staleness
// measure to have counted each of them that settled. A read that finds
// nothing missed nothing if a delete as new was written: its tombstone
// may have been purged.
func (ev *simEv) checkReads() {
	t := ev.c.t
	for _, key := range simEvKeys {
		writes := ev.writesOf(key)
		for _, rd := range ev.order {
			if rd.in.Key != key || rd.in.Op != sim.OpGet || rd.state != "acked" {
				continue
			}
			if !rd.rec.Version.IsZero() {
				w, ok := writes[rd.rec.Version]
				switch {
				case !ok:
					t.Errorf("read %v (client %d #%d) returned %s, which no write of the key wrote", rd.in, rd.id.client, rd.id.seq, describeRecord(rd.rec))
				case !matches(rd.rec, w):
					t.Errorf("read %v returned %s, but that version wrote %v", rd.in, describeRecord(rd.rec), w.in)
				case w.invoke > rd.ret:
					t.Errorf("read %v returned %s, written by %v, which began after the read ended", rd.in, describeRecord(rd.rec), w.in)
				}
			}
			var missed *simEvOp
			for _, w := range writes {
				if w.state == "acked" && w.ret < rd.invoke && rd.rec.Version.Less(w.version) {
					if missed == nil || missed.version.Less(w.version) {
						missed = w
					}
				}
			}
			if missed == nil || (rd.rec.Version.IsZero() && purgedDelete(writes, missed.version, rd.ret)) {
				// Nothing missed; or a delete at least as new as the
				// write missed (acknowledged or not: a failed write may
				// still reach replicas, by hints) has had its tombstone
				// purged: "none" is what it wrote.
				continue
			}
			ev.stale++
			if rd.settled {
				if !rd.measured {
					t.Errorf("read %v returned %s, missing %v (version %s, acknowledged before the read), and every replica answered, "+
						"yet the staleness measure did not count it", rd.in, describeRecord(rd.rec), missed.in, formatRecordVersion(missed.version))
				}
				ev.staleMeasured++
			}
		}
	}
}

// checkFinal checks the converged record of every key: the newest
// acknowledged write's, or a newer one that some write of the key wrote;
// absent only if a delete at least as new was purged.
func (ev *simEv) checkFinal() {
	c, t := ev.c, ev.c.t
	for _, key := range simEvKeys {
		var newest *simEvOp
		writes := ev.writesOf(key)
		for _, v := range slices.SortedFunc(maps.Keys(writes), func(a, b wrn.Version) int { return a.Compare(b) }) {
			if w := writes[v]; w.state == "acked" {
				newest = w
			}
		}
		k := []byte(key)
		_, rd, err := c.node(1).node.lookup(ev.shape.ks.Name, k)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := c.node(rd.Replicas[0].NodeID).node.records.read(rd.ID, k)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Version.IsZero() {
			if newest == nil {
				continue
			}
			if !purgedDelete(writes, newest.version, ev.c.s.Now()) {
				t.Errorf("key %s: no record left, but %v (version %s) was acknowledged and no delete as new was written",
					key, newest.in, formatRecordVersion(newest.version))
			}
			continue
		}
		w, ok := writes[rec.Version]
		switch {
		case !ok || !matches(rec, w):
			t.Errorf("key %s holds %s, which no write of the key wrote", key, describeRecord(rec))
		case newest != nil && rec.Version.Less(newest.version):
			t.Errorf("key %s holds %s, older than the acknowledged %v (version %s): an acknowledged write was lost",
				key, describeRecord(rec), newest.in, formatRecordVersion(newest.version))
		}
	}
}

// A tombstone is purged only once every replica holds it: while one
// replica, cut off for longer than the grace, still holds the value the
// delete hid, the others keep their tombstone, so that when it comes back
// anti-entropy brings it the tombstone rather than spreading the value
// back (resurrection). Then all three purge it.
func TestSimEventualTombstonePurge(t *testing.T) {
	c := newSimClusterWith(t, 1, 3, []KeyspaceDescriptor{evKeyspace(3, 2, 2)})
	key := []byte("k")
	n1 := c.node(1)
	ks, rd, err := n1.node.lookup("ev", key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(rec wrn.Record) {
		t.Helper()
		w, err := n1.node.newEventualWrite(ks, rd, key, rec, QuorumOverride{})
		if err != nil {
			t.Fatal(err)
		}
		var res *writeResult
		w.start(func(r writeResult) { res = &r })
		c.require("the write", time.Second, func() bool { return res != nil })
		if res.err != nil {
			t.Fatal(res.err)
		}
	}
	records := func(id uint64) wrn.Record {
		rec, err := c.node(id).node.records.read(rd.ID, key)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
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
	r, err := n1.node.newEventualRead(ks, rd, key, QuorumOverride{R: 3})
	if err != nil {
		t.Fatal(err)
	}
	var res *readResult
	r.start(func(rr readResult) { res = &rr })
	c.require("the read", time.Second, func() bool { return res != nil })
	if res.err != nil || res.rec.Exists() {
		t.Fatalf("read after the purge: %s, %v; want nothing", describeRecord(res.rec), res.err)
	}
}
