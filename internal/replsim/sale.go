package replsim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Sale is a flash sale, the workload the lab runs the cores with
// (Scenario.Sale): one item, one client per buyer, each sending
// CAS-if-absent(Item, its name) through the cluster as the random
// workload's clients send their operations (to a random node, following
// NotLeader hints, trying another node after AttemptTimeout, all with one
// Seq so that the state machine applies the write once). A buyer given no
// answer within OpTimeout tries again, the same operation, up to Tries
// times in all; an answer ends its sale: "sold" if its CAS swapped, "sold
// out" if not. Each try is reported to Report.
//
// Once the faults heal and every buyer is done, a final reader reads Item
// through the cluster (a linearizable read, ReadIndex at the leader):
// Cluster.FinalRead. Every operation goes into the history porcupine
// checks, and each reply's round trips are counted (hops.go).
type Sale struct {
	// Item is the key the buyers race for (default "phone").
	Item string
	// Buyers name the buyers, at most MaxBuyers; buyer i is client
	// 101+i, and the final reader the client after the last buyer.
	Buyers []string
	// Arrive spreads the buyers' first tries: each starts at a time drawn
	// uniformly from [0, Arrive) (default Scenario.Duration/2).
	Arrive time.Duration
	// Tries bounds each buyer's tries (default 3).
	Tries int
	// Report, if set, hears of every try as it starts and ends.
	Report SaleReport
}

// SaleReport hears of a sale's tries (lab.Sale implements it).
type SaleReport interface {
	// Begin: buyer starts a try now.
	Begin(buyer string)
	// Answer: buyer's try ended with an answer, sold or sold out, after
	// roundTrips sequential round trips (hops.go).
	Answer(buyer string, sold bool, roundTrips int)
	// NoAnswer: buyer's try ended with no answer.
	NoAnswer(buyer, why string)
}

// PauseReport, when a SaleReport implements it too, hears when a node is
// paused (Scenario.Pause) and when it resumes; a node that crashes while
// paused does not resume.
type PauseReport interface {
	Paused(node uint64)
	Resumed(node uint64)
}

// SaleAnswer is an answer a buyer got.
type SaleAnswer struct {
	At         time.Duration
	Buyer      string
	Node       uint64 // the node that answered
	Sold       bool
	RoundTrips int
	Index      uint64 // the slot the buyer's write was applied in
}

// buyer is what makes a client a buyer (or the final reader, with name ""
// and idx -1).
type buyer struct {
	name  string
	idx   int    // its place in the hop counts; -1: not counted
	depth uint16 // hops of the last message it received
	in    sim.KVInput
	tries int // left
	seq   uint64
	hist  *sim.Op
	done  bool
	out   sim.KVOutput // the answer, once done with one
	rep   SaleReport
}

// errTooManyBuyers: more buyers than hop counts.
var errTooManyBuyers = fmt.Errorf("replsim: a sale has at most %d buyers", MaxBuyers)

func (c *Cluster) startSale() error {
	sale := c.sc.Sale
	if len(sale.Buyers) > MaxBuyers {
		return errTooManyBuyers
	}
	if len(sale.Buyers) == 0 {
		return errors.New("replsim: a sale needs buyers")
	}
	item := orDefault(sale.Item, "phone")
	arrive := sale.Arrive
	if arrive == 0 {
		arrive = c.sc.Duration / 2
	}
	tries := sale.Tries
	if tries == 0 {
		tries = 3
	}
	add := func(b *buyer, at time.Duration) *client {
		cl := &client{c: c, id: uint64(firstClient + len(c.clients)), seen: map[string]string{}, buy: b}
		c.clients = append(c.clients, cl)
		c.s.AddNode(sim.NodeID(cl.id), func(env *sim.Env) sim.Process {
			cl.env = env
			if at >= 0 {
				env.After(at, func() { b.try(cl) })
			}
			return cl
		})
		return cl
	}
	for i, name := range sale.Buyers {
		at := time.Duration(c.s.Rand().Int64N(int64(arrive)))
		add(&buyer{name: name, idx: i, in: sim.KVCASAbsent(item, name), tries: tries, rep: sale.Report}, at)
	}
	// The final reader starts in finishSale, and tries until the end.
	c.reader = add(&buyer{idx: -1, in: sim.KVGet(item), tries: 1 << 30}, -1)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// try starts one try of the buyer's operation: the first one invokes it.
func (b *buyer) try(cl *client) {
	if b.done || cl.op != nil {
		return
	}
	if b.hist == nil {
		cl.seq++
		b.seq = cl.seq
		b.hist = cl.c.h.Invoke(sim.NodeID(cl.id), b.in)
	}
	b.tries--
	op := &pendingOp{seq: b.seq, in: b.in, hist: b.hist}
	cl.op = op
	b.report(func(r SaleReport) { r.Begin(b.name) })
	op.deadline = cl.env.After(cl.c.sc.OpTimeout, func() { b.timedOut(cl) })
	cl.attempt(0)
}

func (b *buyer) report(f func(SaleReport)) {
	if b.rep != nil && b.idx >= 0 {
		f(b.rep)
	}
}

// timedOut ends a try with no answer; another follows, if any is left.
func (b *buyer) timedOut(cl *client) {
	cl.end()
	b.report(func(r SaleReport) {
		r.NoAnswer(b.name, fmt.Sprintf("no answer within %v", cl.c.sc.OpTimeout))
	})
	if b.tries <= 0 {
		b.done = true
		b.hist.Unknown()
		return
	}
	// A pause, as a person would, before trying again.
	cl.env.After(time.Duration(20+cl.rand(80))*time.Millisecond, func() { b.try(cl) })
}

// heard takes the hops of a reply the buyer received; lost says the
// reply named no leader to go to, so the next request starts afresh.
func (b *buyer) heard(h hops, lost bool) {
	switch {
	case b.idx < 0:
	case lost:
		b.depth = 0
	default:
		b.depth = max(b.depth, h[b.idx])
	}
}

// request returns the hops of the buyer's next request.
func (b *buyer) request() hops {
	var h hops
	if b.idx >= 0 {
		h[b.idx] = b.depth + 1
	}
	return h
}

// answered ends the buyer's sale with the reply r from node.
func (b *buyer) answered(cl *client, node uint64, r Reply) {
	b.done, b.out = true, r.Out
	if b.idx < 0 {
		return
	}
	rt := (int(b.depth) + 1) / 2
	cl.c.answers = append(cl.c.answers, SaleAnswer{
		At: cl.env.Now(), Buyer: b.name, Node: node, Sold: r.Out.Swapped, RoundTrips: rt, Index: r.Index,
	})
	b.report(func(rep SaleReport) { rep.Answer(b.name, r.Out.Swapped, rt) })
}

// finishSale checks liveness with the sale: with every fault gone, a
// leader emerges and every buyer is done (answered, or out of tries); then
// the final read returns, and every replica applies what the leader did.
func (c *Cluster) finishSale() *Failure {
	done := func() bool {
		if _, ok := c.leader(); !ok {
			return false
		}
		return !slices.ContainsFunc(c.clients, func(cl *client) bool { return cl != c.reader && !cl.buy.done })
	}
	if f := c.runUntil(done, c.sc.Liveness, "no leader, or a buyer still waiting, after healing"); f != nil {
		return f
	}
	c.reader.buy.try(c.reader)
	read := func() bool { return c.reader.buy.done }
	if f := c.runUntil(read, c.sc.Liveness, "the final read got no answer after healing"); f != nil {
		return f
	}
	caughtUp := func() bool {
		l, ok := c.leader()
		if !ok {
			return false
		}
		for _, id := range c.sc.Nodes {
			if c.nodes[id].kv.Applied < c.nodes[l].kv.Applied {
				return false
			}
		}
		return true
	}
	return c.runUntil(caughtUp, time.Second, "a replica has not applied what the leader did, after healing")
}

// FinalRead returns what the sale's final read returned, if it did.
func (c *Cluster) FinalRead() (owner string, ok bool) {
	if c.reader == nil || !c.reader.buy.done {
		return "", false
	}
	return c.reader.buy.out.Value, true
}

// Owners returns each replica's owner of the sale's item, as its applied
// state says, in Scenario.Nodes order ("" for none).
func (c *Cluster) Owners() []string {
	item := orDefault(c.sc.Sale.Item, "phone")
	out := make([]string, len(c.sc.Nodes))
	for i, id := range c.sc.Nodes {
		if n := c.nodes[id]; n != nil {
			out[i] = n.kv.Get(item).Value
		}
	}
	return out
}

// Answers returns the answers the buyers got, in order.
func (c *Cluster) Answers() []SaleAnswer { return slices.Clone(c.answers) }

// Leaders returns every term or ballot's leader, in the order the
// observer first saw them lead.
func (c *Cluster) Leaders() []Leadership { return slices.Clone(c.obs.led) }

// Leader returns the live leader of the highest term or ballot, if any.
func (c *Cluster) Leader() (uint64, bool) { return c.leader() }

// Applied returns the slot each replica has applied up to, in
// Scenario.Nodes order.
func (c *Cluster) Applied() []uint64 {
	out := make([]uint64, len(c.sc.Nodes))
	for i, id := range c.sc.Nodes {
		if n := c.nodes[id]; n != nil {
			out[i] = n.kv.Applied
		}
	}
	return out
}
