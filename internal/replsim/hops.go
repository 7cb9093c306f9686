package replsim

import (
	"fmt"
	"math"
)

// A sale (Scenario.Sale) counts, for each buyer, the round trips on the
// critical path of its write, by following causality through the
// messages: every message carries, per buyer, how many sequential hops
// lie between that buyer's request and the message (0: none, the message
// does not follow from the request).
//
//   - A buyer's request carries 1 more than the last reply it received,
//     and 1 after a "not leader" reply that names no leader: a buyer
//     polling for a leader during an election is waiting for the
//     election, not on its write's path.
//   - A node's Ready follows from the messages it handled since its
//     previous Ready: protocol messages, and the requests it took (a
//     request it turned away changes nothing). Each buyer's count is the
//     deepest among them; for a buyer none of them came from whose write
//     the node still serves (a client waits for its answer) or holds in
//     its log unapplied, it is the count its state last followed from, so
//     that a leader's heartbeat, which carries the entries a lost append
//     missed, stays on the write's path, and so does a new leader that
//     found the write in its log.
//   - Every message the Ready sends, the replies to buyers included,
//     carries that count plus one.
//
// The reply that answers a buyer then carries the length of the chain
// that led to it: request, redirect if any, phase-2 accept,
// acknowledgement, reply (4 hops, 2 round trips, without a redirect);
// half of it, rounded up, is the number of round trips. A Ready that
// follows from several messages takes the deepest chain, so the count
// errs, if at all, long.

// MaxBuyers bounds Sale.Buyers: each message of a sale carries a hop count
// per buyer (2 bytes each).
const MaxBuyers = 16

// hops holds one hop count per buyer, 0 for none.
type hops [MaxBuyers]uint16

func (h *hops) merge(o hops) {
	for i := range h {
		h[i] = max(h[i], o[i])
	}
}

// next is h one hop later.
func (h hops) next() hops {
	for i := range h {
		if h[i] > 0 && h[i] < math.MaxUint16 {
			h[i]++
		}
	}
	return h
}

// hopped is a message of a sale with its hops.
type hopped struct {
	msg  any
	hops hops
}

// String prints the message alone: the trace reads as without hops.
func (m hopped) String() string { return fmt.Sprint(m.msg) }

// Unwrap returns the message a sale sent, without its hop counts; any
// other message unchanged. The lab labels the messages it draws with it.
func Unwrap(msg any) any {
	m, _ := unwrap(msg)
	return m
}

func unwrap(msg any) (any, hops) {
	if m, ok := msg.(hopped); ok {
		return m.msg, m.hops
	}
	return msg, hops{}
}

// wrap attaches h to msg when the run counts hops and h counts any.
func (c *Cluster) wrap(msg any, h hops) any {
	if c.sc.Sale == nil || h == (hops{}) {
		return msg
	}
	return hopped{msg, h}
}

// readyHops returns the hops the messages of rd, the Ready just taken,
// carry, and starts collecting the causes of the next.
func (n *node) readyHops(rd Ready) hops {
	if n.c.sc.Sale == nil {
		return hops{}
	}
	for _, r := range rd.Accepted {
		if i, ok := n.c.buyerOf(r.Value); ok {
			n.holds[i] = max(n.holds[i], r.Index)
		}
	}
	c := n.cause
	for i, v := range c {
		if v == 0 && n.last[i] > 0 && (n.holds[i] > n.kv.Applied || n.serves(uint64(firstClient+i))) {
			c[i] = n.last[i]
		}
	}
	n.last, n.cause = c, hops{}
	return c.next()
}

// buyerOf returns the buyer whose write a log record holds, if any.
func (c *Cluster) buyerOf(value string) (int, bool) {
	if len(value) == 0 || value[0] != Value(EntryCommand, nil)[0] {
		return 0, false
	}
	cmd, err := DecodeCommand([]byte(value[1:]))
	i := int(cmd.Client) - firstClient
	return i, err == nil && cmd.Client >= firstClient && i < len(c.sc.Sale.Buyers)
}

// serves reports whether the node has a write or read of client pending.
func (n *node) serves(client uint64) bool {
	for op := range n.writes {
		if op.client == client {
			return true
		}
	}
	for _, req := range n.reads {
		if req.Client == client {
			return true
		}
	}
	return false
}
