package replsim

import (
	"fmt"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Value is how the observer compares slots: the kind and the data.
func Value(kind EntryKind, data []byte) string { return string(rune('0'+kind)) + string(data) }

// Request is a client's operation sent to a node. Attempt counts the
// client's tries of operation Seq, so a reply to an earlier try is still
// recognised as an answer to Seq.
type Request struct {
	Client  uint64
	Seq     uint64
	Attempt uint64
	In      sim.KVInput
}

func (r Request) String() string {
	return fmt.Sprintf("req c%d#%d.%d %v", r.Client, r.Seq, r.Attempt, r.In)
}

// Reply answers a Request: the result, or NotLeader with the node's best
// guess of the leader (0 if none).
type Reply struct {
	Seq       uint64
	Out       sim.KVOutput
	NotLeader bool
	Hint      uint64
	// Index names the slot a write was applied in, for the observer's
	// "no acknowledged write lost".
	Index uint64
}

func (r Reply) String() string {
	if r.NotLeader {
		return fmt.Sprintf("reply #%d not leader (try %d)", r.Seq, r.Hint)
	}
	return fmt.Sprintf("reply #%d %+v @%d", r.Seq, r.Out, r.Index)
}

type clientOp struct{ client, seq uint64 }

// node is one replica: a Core, its disk, the state machine, and the
// requests it is serving. It is rebuilt from its disk on every restart.
type node struct {
	c    *Cluster
	env  *sim.Env
	id   uint64
	core Core
	kv   *KV

	// busy is set while a Ready is being persisted: the node is
	// single-threaded, so messages and ticks wait until it is handled.
	busy       bool
	paused     bool // frozen by the Pause fault
	inbox      []any
	missed     int // ticks that fell while busy (or paused, PauseKeepsTicks)
	writes     map[clientOp]bool
	reads      map[string]Request
	readStates []ReadState
	sinceSnap  int
	// written are the Readys handled since the last sync returned
	// (Scenario.AsyncPersist): their messages but the eager ones, and
	// their Synced calls, wait for the next; syncing says it is under way.
	written []writtenReady
	syncing bool
	// cause, last and out count hops for a sale (hops.go): the deepest
	// chain of each buyer among the messages handled since the last
	// Ready, the chains the node's state last depended on, and what the
	// messages of the Ready being handled carry.
	cause, last, out hops
	// holds is, per buyer, the last slot the node persisted its write
	// in (hops.go).
	holds [MaxBuyers]uint64
}

// writtenReady is a Ready handled by an AsyncCore whose writes are not
// known durable yet, and what its AdvanceWritten returned.
type writtenReady struct {
	rd  Ready
	w   any
	out hops
}

func (c *Cluster) startNode(env *sim.Env) sim.Process {
	id := uint64(env.ID())
	core, snap := c.proto.Start(env, id, c.sc.Init, env.Disk())
	n := &node{c: c, env: env, id: id, core: core, writes: map[clientOp]bool{}, reads: map[string]Request{}}
	n.kv = NewKV()
	if snap != nil {
		kv, err := LoadKV(snap.Index, snap.Data)
		if err != nil {
			panic(fmt.Sprintf("replsim: node %d restarting: %v", id, err))
		}
		n.kv = kv
		c.obs.snapshot(id, kv.Applied, kv.Hash)
	}
	c.nodes[id] = n
	env.Every(c.tickPeriod(env), n.tick)
	env.After(0, n.kick)
	return n
}

// tickPeriod is the period of one incarnation's ticks: Scenario.Tick,
// off by up to TickDrift.
func (c *Cluster) tickPeriod(env *sim.Env) time.Duration {
	if c.sc.TickDrift == 0 {
		return c.sc.Tick
	}
	x := (2*env.Rand().Float64() - 1) * c.sc.TickDrift
	return time.Duration(float64(c.sc.Tick) * (1 + x))
}

func (n *node) alive() bool { return n.env.Alive() }

func (n *node) tick() {
	if n.paused {
		if n.c.sc.PauseKeepsTicks {
			n.missed++ // given all at once when it resumes
		}
		return // a frozen process does not tick
	}
	if n.busy {
		n.missed++
		return
	}
	n.core.Tick()
	n.kick()
}

// Receive takes a protocol message or a client request.
func (n *node) Receive(from sim.NodeID, msg any) {
	if n.busy || n.paused {
		n.inbox = append(n.inbox, msg)
		return
	}
	n.handle(msg)
	n.kick()
}

func (n *node) handle(msg any) {
	msg, h := unwrap(msg)
	if req, ok := msg.(Request); ok {
		n.request(req, h)
		return
	}
	n.cause.merge(h)
	n.core.Step(msg)
}

func (n *node) notLeader(req Request, h hops) {
	n.sendTo(req.Client, Reply{Seq: req.Seq, NotLeader: true, Hint: n.core.Hint()}, h.next())
}

// sendTo sends msg to node id, with the hops h if the run counts them.
func (n *node) sendTo(id uint64, msg any, h hops) {
	n.env.Send(sim.NodeID(id), n.c.wrap(msg, h))
}

// request takes a client's request, which came with the hops h.
func (n *node) request(req Request, h hops) {
	if req.In.Op == sim.OpGet {
		ctx := fmt.Sprintf("c%d#%d.%d", req.Client, req.Seq, req.Attempt)
		if err := n.core.ReadIndex([]byte(ctx)); err != nil {
			n.notLeader(req, h)
			return
		}
		n.reads[ctx] = req
		n.cause.merge(h)
		return
	}
	cmd := EncodeCommand(Command{Client: req.Client, Seq: req.Seq, In: req.In})
	if err := n.core.Propose(cmd); err != nil {
		n.notLeader(req, h)
		return
	}
	n.writes[clientOp{req.Client, req.Seq}] = true
	n.cause.merge(h)
}

// drainInbox hands the core the ticks and messages that waited.
func (n *node) drainInbox() {
	for len(n.inbox) > 0 || n.missed > 0 {
		if n.missed > 0 {
			n.missed--
			n.core.Tick()
			continue
		}
		msg := n.inbox[0]
		n.inbox = n.inbox[1:]
		n.handle(msg)
	}
}

// kick handles the core's next Ready, if any and if none is in flight.
func (n *node) kick() {
	if n.c.sc.AsyncPersist {
		n.kickAsync()
		return
	}
	for !n.busy && !n.paused && n.alive() {
		n.drainInbox()
		if !n.core.HasReady() {
			return
		}
		rd := n.core.Ready()
		out := n.readyHops(rd)
		if rd.Persist != nil {
			rd.Persist(n.env.Disk())
		}
		if !rd.Sync {
			n.out = out
			n.finish(rd)
			continue
		}
		// The fsync takes time: a crash before it completes loses the
		// writes, and nothing that depends on them has been sent.
		n.busy = true
		var synced func()
		synced = func() {
			if n.paused {
				n.env.After(time.Millisecond, synced)
				return
			}
			n.env.Disk().Sync()
			n.busy = false
			n.out = out
			n.finish(rd)
			n.kick()
		}
		n.env.After(n.c.sc.Fsync, synced)
		return
	}
}

// kickAsync is kick for Scenario.AsyncPersist: every Ready is written,
// its eager messages sent, its entries applied and its clients answered
// at once; the rest waits in n.written for the disk's next sync.
func (n *node) kickAsync() {
	core := n.core.(AsyncCore)
	for !n.paused && n.alive() {
		n.drainInbox()
		if !core.HasReady() {
			return
		}
		rd := core.Ready()
		n.out = n.readyHops(rd)
		if rd.Persist != nil {
			rd.Persist(n.env.Disk())
		}
		late := rd.Messages[:0:0]
		for _, m := range rd.Messages {
			if m.Eager {
				n.sendTo(m.To, m.Msg, n.out)
			} else {
				late = append(late, m)
			}
		}
		rd.Messages = late
		n.apply(rd)
		w := core.AdvanceWritten()
		n.compactAfter(rd)
		if !rd.Sync && len(n.written) == 0 {
			n.release(rd, w)
			continue
		}
		n.written = append(n.written, writtenReady{rd, w, n.out})
		if !n.syncing && rd.Sync {
			n.syncing = true
			d := n.c.sc.Fsync
			if n.c.sc.FsyncMax > d {
				d += time.Duration(n.env.Rand().Int64N(int64(n.c.sc.FsyncMax - d)))
			}
			n.env.After(d, n.synced)
		}
	}
}

// synced ends the sync kickAsync started: what every Ready wrote is
// durable now (or, with CrashBeforeSync, the node crashes and loses it).
func (n *node) synced() {
	if !n.alive() {
		return
	}
	if n.paused {
		n.env.After(time.Millisecond, n.synced)
		return
	}
	if p := n.c.sc.CrashBeforeSync; p > 0 && n.env.Rand().Float64() < p &&
		n.c.crashFor(n.id, n.c.randDur(500*time.Microsecond, 10*time.Millisecond), "before its sync returned") {
		return // the crash comes next, and takes the unsynced writes with it
	}
	n.env.Disk().Sync()
	written := n.written
	n.written, n.syncing = nil, false
	for _, x := range written {
		n.out = x.out
		n.release(x.rd, x.w)
	}
	n.kick()
}

// release sends what a durable Ready held back and tells the core.
func (n *node) release(rd Ready, w any) {
	n.c.obs.persisted(n.id, rd.Accepted)
	n.send(rd.Messages)
	n.core.(AsyncCore).Synced(w)
}

// resume ends a pause: the inbox is handled in arrival order.
func (n *node) resume() {
	if !n.paused || !n.alive() {
		return
	}
	n.paused = false
	if r := n.c.pauseReport(); r != nil {
		r.Resumed(n.id)
	}
	n.env.Logf("resumes with %d messages waiting", len(n.inbox))
	n.kick()
}

// finish sends, applies and advances a persisted Ready.
func (n *node) finish(rd Ready) {
	n.c.obs.persisted(n.id, rd.Accepted)
	n.send(rd.Messages)
	n.apply(rd)
	n.core.Advance()
	n.compactAfter(rd)
}

// send sends msgs, and crashes the node after a promise if the scenario
// says so.
func (n *node) send(msgs []Envelope) {
	for _, m := range msgs {
		n.sendTo(m.To, m.Msg, n.out)
		if m.Promise != NoPromise {
			n.c.maybeCrashAfterPromise(n.id, m.Promise)
		}
	}
}

// apply loads rd's snapshot, applies its committed entries and serves the
// reads it confirmed.
func (n *node) apply(rd Ready) {
	if s := rd.Snapshot; s != nil {
		kv, err := LoadKV(s.Index, s.Data)
		if err != nil {
			panic(fmt.Sprintf("replsim: node %d installing a snapshot: %v", n.id, err))
		}
		n.kv = kv
		n.c.obs.snapshot(n.id, kv.Applied, kv.Hash)
	}
	for _, e := range rd.Committed {
		n.applyEntry(e)
	}
	n.readStates = append(n.readStates, rd.Reads...)
	n.serveReads()
}

// compactAfter takes a snapshot, when one is due, after rd is advanced,
// and lets a leader crash after a configuration change it applied.
func (n *node) compactAfter(rd Ready) {
	config := slices.ContainsFunc(rd.Committed, func(e Entry) bool { return e.Kind == EntryConfig })
	n.maybeCompact(len(rd.Committed), config)
	if _, _, leads := n.core.Leader(); config && leads {
		n.c.maybeCrashAfterConfig(n.id)
	}
}

func (n *node) applyEntry(e Entry) {
	if e.Index <= n.kv.Applied {
		return // covered by a snapshot loaded in the same Ready
	}
	a, err := n.kv.Apply(e)
	if err != nil {
		panic(fmt.Sprintf("replsim: node %d: %v", n.id, err))
	}
	n.c.obs.apply(n.id, e.Index, Value(e.Kind, e.Data), n.kv.Hash)
	if !a.IsCmd {
		return
	}
	op := clientOp{a.Cmd.Client, a.Cmd.Seq}
	if !n.writes[op] {
		return
	}
	delete(n.writes, op)
	n.sendTo(a.Cmd.Client, Reply{Seq: a.Cmd.Seq, Out: a.Out, Index: a.Index}, n.out)
}

func (n *node) serveReads() {
	kept := n.readStates[:0]
	for _, rs := range n.readStates {
		if rs.Index > n.kv.Applied {
			kept = append(kept, rs)
			continue
		}
		req, ok := n.reads[string(rs.Ctx)]
		if !ok {
			continue
		}
		delete(n.reads, string(rs.Ctx))
		n.sendTo(req.Client, Reply{Seq: req.Seq, Out: n.kv.Get(req.In.Key)}, n.out)
	}
	n.readStates = kept
}

// maybeCompact snapshots the state machine every SnapshotEvery applied
// slots, so that snapshots are sent, installed and restarted from; and
// right after a configuration change is applied, because a snapshot sent
// to a node added by that change must already include it (a Raft node
// refuses a snapshot of a configuration it is not in, as etcd's does: the
// application is to hand out snapshots taken at the applied index, as
// CockroachDB generates them).
func (n *node) maybeCompact(applied int, config bool) {
	if n.c.sc.SnapshotEvery == 0 {
		return
	}
	n.sinceSnap += applied
	if (n.sinceSnap < n.c.sc.SnapshotEvery && !config) || n.kv.Applied == 0 {
		return
	}
	n.sinceSnap = 0
	if err := n.core.Compact(n.kv.Applied, n.kv.Snapshot(), n.env.Disk()); err != nil {
		panic(fmt.Sprintf("replsim: node %d compacting at %d: %v", n.id, n.kv.Applied, err))
	}
}

// Fsync is the default time a Sync takes.
const Fsync = 500 * time.Microsecond
