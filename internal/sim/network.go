package sim

import (
	"fmt"
	"time"
)

// LinkConfig is how one directed link treats the messages sent over it.
type LinkConfig struct {
	// MinDelay and MaxDelay bound a message's delay; each message draws a
	// delay uniformly in [MinDelay, MaxDelay], so messages overtake each
	// other unless FIFO is set. MaxDelay < MinDelay counts as MinDelay.
	MinDelay, MaxDelay time.Duration
	// DropRate is the probability, in [0, 1], that a message is lost.
	DropRate float64
	// DupRate is the probability, in [0, 1], that a message that is not
	// lost is delivered twice (the copy gets its own delay).
	DupRate float64
	// FIFO delivers the link's messages in the order they were sent, as a
	// TCP connection would: a message is never delivered before one sent
	// earlier on the same link. Loss and duplication still apply.
	FIFO bool
}

func (c LinkConfig) String() string {
	return fmt.Sprintf("delay=[%v,%v] drop=%.3g dup=%.3g fifo=%t", c.MinDelay, c.MaxDelay, c.DropRate, c.DupRate, c.FIFO)
}

type link struct{ from, to NodeID }

// Network is the simulated network: per-link configuration and the set of
// active partitions. Reach it through Sim.Net.
type Network struct {
	s         *Sim
	def       LinkConfig
	overrides map[link]LinkConfig
	// lastArrival is, per FIFO link, when its latest message arrives: later
	// messages are not delivered before it. Equal times keep send order
	// because the event queue breaks ties by scheduling order.
	lastArrival map[link]time.Duration
	parts       []*activePartition
	nextPart    uint64
	flaps       []*Flap
}

func newNetwork(s *Sim, def LinkConfig) *Network {
	return &Network{
		s:           s,
		def:         def,
		overrides:   make(map[link]LinkConfig),
		lastArrival: make(map[link]time.Duration),
	}
}

// SetDefault sets the configuration of every link that has no override.
func (n *Network) SetDefault(c LinkConfig) {
	n.def = c
	n.s.record(TraceEvent{Kind: EvLink, Text: "default " + c.String()})
}

// SetLink overrides the configuration of the directed link from -> to.
func (n *Network) SetLink(from, to NodeID, c LinkConfig) {
	n.overrides[link{from, to}] = c
	n.s.record(TraceEvent{Kind: EvLink, Text: fmt.Sprintf("n%d->n%d %v", from, to, c)})
}

// ResetLink removes the override of link from -> to.
func (n *Network) ResetLink(from, to NodeID) {
	delete(n.overrides, link{from, to})
	n.s.record(TraceEvent{Kind: EvLink, Text: fmt.Sprintf("n%d->n%d default", from, to)})
}

// Link returns the configuration in force on link from -> to.
func (n *Network) Link(from, to NodeID) LinkConfig {
	if c, ok := n.overrides[link{from, to}]; ok {
		return c
	}
	return n.def
}

// Blocked reports whether an active partition cuts link from -> to. A node
// can always send to itself.
func (n *Network) Blocked(from, to NodeID) bool {
	if from == to {
		return false
	}
	for _, p := range n.parts {
		if p.p.Blocks(from, to) {
			return true
		}
	}
	return false
}

// send puts msg on the wire. The partition is checked when the message is
// sent and again when it would arrive: a message sent into a cut is lost,
// and so is one in flight when a cut appears (as with a firewall rule).
func (n *Network) send(from, to NodeID, msg any) {
	n.s.mustNode(to)
	n.s.record(TraceEvent{Kind: EvSend, From: from, To: to, Msg: msg})
	if n.Blocked(from, to) {
		n.s.record(TraceEvent{Kind: EvDrop, From: from, To: to, Msg: msg, Text: "partition"})
		return
	}
	c := n.Link(from, to)
	rng := n.s.rng
	if c.DropRate > 0 && rng.Float64() < c.DropRate {
		n.s.record(TraceEvent{Kind: EvDrop, From: from, To: to, Msg: msg, Text: "loss"})
		return
	}
	n.transmit(from, to, msg, c)
	if c.DupRate > 0 && rng.Float64() < c.DupRate {
		n.s.record(TraceEvent{Kind: EvDuplicate, From: from, To: to, Msg: msg})
		n.transmit(from, to, msg, c)
	}
}

// transmit schedules one delivery of msg.
func (n *Network) transmit(from, to NodeID, msg any, c LinkConfig) {
	delay := c.MinDelay
	if c.MaxDelay > c.MinDelay {
		delay += time.Duration(n.s.rng.Int64N(int64(c.MaxDelay-c.MinDelay) + 1))
	}
	if c.FIFO {
		l := link{from, to}
		if last := n.lastArrival[l]; n.s.now+delay < last {
			delay = last - n.s.now
		}
		n.lastArrival[l] = n.s.now + delay
	}
	n.s.schedule(delay, func() { n.deliver(from, to, msg) })
}

func (n *Network) deliver(from, to NodeID, msg any) {
	if n.Blocked(from, to) {
		n.s.record(TraceEvent{Kind: EvDrop, From: from, To: to, Msg: msg, Text: "partition"})
		return
	}
	dst := n.s.nodes[to]
	if !dst.up {
		n.s.record(TraceEvent{Kind: EvDrop, From: from, To: to, Msg: msg, Text: "receiver down"})
		return
	}
	n.s.record(TraceEvent{Kind: EvDeliver, From: from, To: to, Msg: msg})
	if dst.proc != nil {
		dst.proc.Receive(from, msg)
	}
}
