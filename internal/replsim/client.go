package replsim

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// client issues random operations, one at a time, to random nodes. It
// follows NotLeader hints, retries a silent node elsewhere after
// AttemptTimeout (with the same Seq: the state machine applies a write
// once however often it is proposed), and gives up after OpTimeout,
// recording the outcome as unknown.
type client struct {
	c       *Cluster
	env     *sim.Env
	id      uint64
	seq     uint64
	op      *pendingOp
	stopped bool
	// completed counts operations that returned (not the unknown ones).
	completed int
	// seen is the last value the client read or wrote per key: CAS
	// expectations drawn from it succeed often enough to matter.
	seen   map[string]string
	writes int
	// buy, if set, makes the client a buyer of a sale, or the sale's
	// final reader (sale.go).
	buy *buyer
}

// firstClient is the sim ID of the first client; the others follow.
const firstClient = 101

type pendingOp struct {
	seq, attempt uint64
	in           sim.KVInput
	hist         *sim.Op
	deadline     *sim.Timer
	retry        *sim.Timer
}

func (cl *client) Receive(from sim.NodeID, msg any) {
	msg, h := unwrap(msg)
	r, ok := msg.(Reply)
	op := cl.op
	if !ok || op == nil || r.Seq != op.seq {
		return // a late answer to an operation already finished
	}
	if cl.buy != nil {
		cl.buy.heard(h, r.NotLeader && (r.Hint == 0 || r.Hint == uint64(from)))
	}
	if r.NotLeader {
		op.retry.Stop()
		target := r.Hint
		wait := time.Duration(1+cl.rand(5)) * time.Millisecond
		if target == 0 || target == uint64(from) {
			// An election is on: give it time rather than spin.
			target = 0
			wait = time.Duration(10+cl.rand(20)) * time.Millisecond
		}
		op.retry = cl.env.After(wait, func() { cl.attempt(target) })
		return
	}
	if op.in.Op != sim.OpGet {
		cmd := Command{Client: cl.id, Seq: op.seq, In: op.in}
		cl.c.obs.acked(r.Index, Value(EntryCommand, EncodeCommand(cmd)))
	}
	switch {
	case op.in.Op == sim.OpGet && r.Out.Found:
		cl.seen[op.in.Key] = r.Out.Value
	case op.in.Op == sim.OpPut || (op.in.Op == sim.OpCAS && r.Out.Swapped):
		cl.seen[op.in.Key] = op.in.Value
	}
	op.hist.Return(r.Out)
	cl.completed++
	if cl.buy != nil {
		cl.end()
		cl.buy.answered(cl, uint64(from), r)
		return
	}
	cl.finish()
}

func (cl *client) rand(n int) int { return cl.env.Rand().IntN(n) }

func (cl *client) next() {
	if cl.stopped || cl.op != nil {
		return
	}
	cl.seq++
	in := cl.draw()
	op := &pendingOp{seq: cl.seq, in: in, hist: cl.c.h.Invoke(sim.NodeID(cl.id), in)}
	cl.op = op
	op.deadline = cl.env.After(cl.c.sc.OpTimeout, func() {
		op.hist.Unknown()
		cl.finish()
	})
	cl.attempt(0)
}

// attempt sends the operation to target, or to a random node if 0.
func (cl *client) attempt(target uint64) {
	op := cl.op
	if op == nil {
		return
	}
	if target == 0 {
		nodes := cl.c.sc.Nodes
		target = nodes[cl.rand(len(nodes))]
	}
	op.attempt++
	req := Request{Client: cl.id, Seq: op.seq, Attempt: op.attempt, In: op.in}
	var h hops
	if cl.buy != nil {
		h = cl.buy.request()
	}
	cl.env.Send(sim.NodeID(target), cl.c.wrap(req, h))
	op.retry = cl.env.After(cl.c.sc.AttemptTimeout, func() { cl.attempt(0) })
}

func (cl *client) finish() {
	cl.end()
	// Think time, so clients interleave differently on every seed.
	cl.env.After(time.Duration(cl.rand(15))*time.Millisecond, cl.next)
}

// end ends the pending operation's attempts.
func (cl *client) end() {
	cl.op.deadline.Stop()
	cl.op.retry.Stop()
	cl.op = nil
}

// draw picks the next operation. Written values are unique, which lets
// porcupine tell writes apart.
func (cl *client) draw() sim.KVInput {
	key := fmt.Sprintf("k%d", cl.rand(cl.c.sc.Keys))
	val := func() string {
		cl.writes++
		return fmt.Sprintf("c%d-%d", cl.id, cl.writes)
	}
	switch p := cl.rand(100); {
	case p < 40:
		return sim.KVGet(key)
	case p < 70:
		return sim.KVPut(key, val())
	case p < 78:
		return sim.KVDelete(key)
	case p < 84:
		return sim.KVCASAbsent(key, val())
	default:
		expect, ok := cl.seen[key]
		if !ok || cl.rand(4) == 0 {
			expect = fmt.Sprintf("c%d-%d", 101+cl.rand(cl.c.sc.Clients), 1+cl.rand(max(1, cl.writes)))
		}
		return sim.KVCAS(key, expect, val())
	}
}
