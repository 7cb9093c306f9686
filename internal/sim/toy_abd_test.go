package sim_test

// A toy protocol that is correct: a multi-key register replicated ABD-style
// (Attiya, Bar-Noy, Dolev) on N replicas with read quorum R and write quorum
// W, W+R > N. It exists to prove the harness: under every fault the sim can
// inject, porcupine must find its histories linearizable.
//
// Each key carries a tag <Num, Writer>, ordered by Num then Writer.
//
//   write(k, v): phase 1 asks all replicas for k's tag and waits for R
//                answers; phase 2 stores (tag', v) with
//                tag' = <max(seen Num, own last Num)+1, me> and waits for W
//                acks.
//   read(k):     phase 1 as above, picking the answer with the highest tag;
//                phase 2 writes that (tag, value) back to W replicas before
//                returning it, so no later read can return anything older.
//
// Replicas keep the highest tag they have seen per key, and sync it to disk
// before they acknowledge. A delete is a write of a tombstone.

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

type abdTag struct {
	Num    uint64
	Writer sim.NodeID
}

func (a abdTag) less(b abdTag) bool {
	return a.Num < b.Num || (a.Num == b.Num && a.Writer < b.Writer)
}

// abdRecord is one key's replicated state.
type abdRecord struct {
	Tag     abdTag
	Present bool // false: never written, or deleted
	Value   string
}

type abdQuery struct {
	Op  uint64
	Key string
}

type abdQueryReply struct {
	Op  uint64
	Rec abdRecord
}

type abdStore struct {
	Op  uint64
	Key string
	Rec abdRecord
}

type abdStoreAck struct{ Op uint64 }

// abdReplica is a storage node. All its state is on its disk.
type abdReplica struct {
	env  *sim.Env
	data map[string]abdRecord
}

func newABDReplica(env *sim.Env) sim.Process {
	r := &abdReplica{env: env, data: make(map[string]abdRecord)}
	disk := env.Disk()
	for _, k := range disk.Keys("key/") {
		raw, _ := disk.Get(k)
		var rec abdRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			panic(err) // we wrote it; corrupt data is a bug
		}
		r.data[k[len("key/"):]] = rec
	}
	return r
}

func (r *abdReplica) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case abdQuery:
		r.env.Send(from, abdQueryReply{Op: m.Op, Rec: r.data[m.Key]})
	case abdStore:
		if r.data[m.Key].Tag.less(m.Rec.Tag) {
			r.data[m.Key] = m.Rec
			raw, _ := json.Marshal(m.Rec)
			r.env.Disk().Set("key/"+m.Key, raw)
			r.env.Disk().Sync() // durable before the ack: the quorum counts on it
		}
		r.env.Send(from, abdStoreAck{Op: m.Op})
	}
}

// abdClient runs one operation at a time against the replicas.
type abdClient struct {
	s        *sim.Sim
	env      *sim.Env
	h        *sim.History
	replicas []sim.NodeID
	r, w     int
	work     workload
	timeout  time.Duration // give up (outcome unknown) after this
	resend   time.Duration // resend to replicas that have not answered
	// noWriteBack makes reads return after phase 1: the classic ABD bug,
	// kept to show the checker finds subtle violations too.
	noWriteBack bool

	stopped   bool
	completed int    // operations that returned
	lastNum   uint64 // highest tag Num this client wrote: tags must never repeat
	nextOp    uint64
	op        *abdOp
}

type abdOp struct {
	id       uint64
	in       sim.KVInput
	hist     *sim.Op
	phase    int // 1: query, 2: store
	answered map[sim.NodeID]bool
	best     abdRecord
	store    abdStore
	deadline *sim.Timer
	resend   *sim.Timer
}

func (c *abdClient) start() {
	if c.stopped {
		return
	}
	c.nextOp++
	in := c.work.next(c.s)
	op := &abdOp{id: c.nextOp, in: in, hist: c.h.Invoke(c.env.ID(), in), phase: 1, answered: make(map[sim.NodeID]bool)}
	c.op = op
	op.deadline = c.env.After(c.timeout, func() {
		op.hist.Unknown()
		c.finish()
	})
	c.broadcast()
}

// broadcast sends the current phase's message to every replica that has
// not answered it, and again after c.resend: with loss, one try is not
// enough for liveness.
func (c *abdClient) broadcast() {
	op := c.op
	for _, id := range c.replicas {
		if op.answered[id] {
			continue
		}
		if op.phase == 1 {
			c.env.Send(id, abdQuery{Op: op.id, Key: op.in.Key})
		} else {
			c.env.Send(id, op.store)
		}
	}
	op.resend = c.env.After(c.resend, c.broadcast)
}

func (c *abdClient) finish() {
	c.op.deadline.Stop()
	c.op.resend.Stop()
	c.op = nil
	// Think time, so clients interleave differently on every seed.
	c.env.After(time.Duration(c.s.Rand().IntN(20))*time.Millisecond, c.start)
}

func (c *abdClient) Receive(from sim.NodeID, msg any) {
	op := c.op
	switch m := msg.(type) {
	case abdQueryReply:
		if op == nil || m.Op != op.id || op.phase != 1 || op.answered[from] {
			return // late, duplicate, or from an abandoned operation
		}
		op.answered[from] = true
		if op.best.Tag.less(m.Rec.Tag) || len(op.answered) == 1 {
			op.best = m.Rec
		}
		if len(op.answered) < c.r {
			return
		}
		if c.noWriteBack && op.in.Op == sim.OpGet {
			op.store.Rec = op.best
			c.complete()
			return
		}
		c.beginStore()
	case abdStoreAck:
		if op == nil || m.Op != op.id || op.phase != 2 || op.answered[from] {
			return
		}
		op.answered[from] = true
		if len(op.answered) == c.w {
			c.complete()
		}
	}
}

func (c *abdClient) beginStore() {
	op := c.op
	rec := op.best // a read writes back what it will return
	if op.in.Op != sim.OpGet {
		c.lastNum = max(c.lastNum, op.best.Tag.Num) + 1
		rec = abdRecord{Tag: abdTag{Num: c.lastNum, Writer: c.env.ID()}, Present: op.in.Op == sim.OpPut, Value: op.in.Value}
	}
	op.phase = 2
	op.store = abdStore{Op: op.id, Key: op.in.Key, Rec: rec}
	op.answered = make(map[sim.NodeID]bool)
	op.resend.Stop()
	c.broadcast()
}

func (c *abdClient) complete() {
	out := sim.KVOutput{}
	if c.op.in.Op == sim.OpGet {
		out = sim.KVOutput{Found: c.op.store.Rec.Present, Value: c.op.store.Rec.Value}
	}
	c.op.hist.Return(out)
	c.completed++
	c.finish()
}

type abdParams struct {
	n, r, w     int
	clients     int
	noWriteBack bool
}

// runABD runs the register under faults and returns its history and
// clients. Replicas are 1..n, clients 101...
func runABD(t testing.TB, seed uint64, p abdParams, faults bool) (*sim.Sim, *sim.History, []*abdClient) {
	s := sim.NewForTest(t, sim.Config{Seed: seed, Link: sim.LinkConfig{
		MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.05, DupRate: 0.05,
	}})
	h := sim.NewHistory(s)
	var replicas, all []sim.NodeID
	for i := 1; i <= p.n; i++ {
		id := sim.NodeID(i)
		replicas = append(replicas, id)
		s.AddNode(id, newABDReplica)
	}
	all = append(all, replicas...)
	var clients []*abdClient
	for i := 0; i < p.clients; i++ {
		id := sim.NodeID(101 + i)
		all = append(all, id)
		c := &abdClient{s: s, h: h, replicas: replicas, r: p.r, w: p.w,
			work:    workload{client: id, keys: []string{"x", "y"}},
			timeout: 400 * time.Millisecond, resend: 30 * time.Millisecond, noWriteBack: p.noWriteBack}
		clients = append(clients, c)
		s.AddNode(id, func(env *sim.Env) sim.Process {
			c.env = env
			env.After(0, c.start)
			return c
		})
	}
	if faults {
		s.StartNemesis(sim.NemesisConfig{
			Nodes: all, Crashable: replicas,
			MinGap: 20 * time.Millisecond, MaxGap: 200 * time.Millisecond,
			MinDuration: 50 * time.Millisecond, MaxDuration: 500 * time.Millisecond,
		})
	}
	if err := s.RunFor(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s, h, clients
}

// TestABDLinearizable is the harness's positive control: a correct quorum
// protocol must pass on every seed, under drops, duplicates, reordering,
// partitions, crashes and client timeouts.
func TestABDLinearizable(t *testing.T) {
	for _, p := range []abdParams{
		{n: 3, r: 2, w: 2, clients: 4},
		{n: 5, r: 3, w: 3, clients: 4},
		{n: 3, r: 1, w: 3, clients: 3},
	} {
		t.Run(fmt.Sprintf("n=%d_r=%d_w=%d", p.n, p.r, p.w), func(t *testing.T) {
			sim.RunSeeds(t, 100, func(t *testing.T, seed uint64) {
				s, h, clients := runABD(t, seed, p, true)
				// Liveness: once the faults end, every client completes
				// operations again.
				s.Heal()
				before := make([]int, len(clients))
				for i, c := range clients {
					before[i] = c.completed
				}
				if err := s.RunFor(time.Second); err != nil {
					t.Fatal(err)
				}
				for i, c := range clients {
					c.stopped = true
					if c.completed == before[i] {
						t.Errorf("client %d completed nothing in 1s after Heal", c.env.ID())
					}
				}
				sim.AssertLinearizable(t, h, sim.DefaultCheckTimeout)
			})
		})
	}
}

// TestABDWithoutWriteBackIsCaught is a canary for the checker's power: the
// subtle, classic ABD bug (a read that does not write back what it read,
// allowing a new-old inversion between two reads concurrent with a write)
// must be flagged within 200 seeds.
func TestABDWithoutWriteBackIsCaught(t *testing.T) {
	canary(t, 200, func(t testing.TB, seed uint64) *sim.History {
		_, h, _ := runABD(t, seed, abdParams{n: 3, r: 2, w: 2, clients: 3, noWriteBack: true}, true)
		return h
	})
}
