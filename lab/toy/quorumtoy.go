package toy

// What designs 6, 7 and 9 share: a buyer whose patience the design sets (a
// coordinator or a leader may need longer than shopBuyer's timeout), the
// number of answers that make a majority, the run loop, and the story's
// line about who was told "sold" and when.

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

// quorumPatience is how a quorumBuyer waits and retries.
type quorumPatience struct {
	// Timeout is how long one attempt waits for an answer before the buyer
	// asks the next server of its list.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the pause before the next attempt.
	BackoffMin, BackoffMax time.Duration
	// MaxTries is how many attempts the buyer makes before giving up.
	MaxTries int
}

// quorumBuyer asks one server at a time to sell it the phone (shopBuy),
// moves to the next server of its own list on a timeout or an "ask
// elsewhere", and stops at "sold" or "sold out" or after MaxTries.
type quorumBuyer struct {
	sale     *lab.Sale
	env      *sim.Env
	name     string
	servers  []sim.NodeID // in the order this buyer tries them
	patience quorumPatience
	next     int
	try      int
	waiting  bool
	done     bool
	timer    *sim.Timer
}

// quorumBuyers adds one buyer per name (nodes 101, 102, ...) and names
// their lanes. serversOf returns buyer i's list of servers, first choice
// first; startOf returns when it starts asking. Both are called in buyer
// order, so they may draw from the simulator's random source.
func quorumBuyers(sale *lab.Sale, names []string, p quorumPatience, serversOf func(i int) []sim.NodeID, startOf func(i int) time.Duration) []*quorumBuyer {
	buyers := make([]*quorumBuyer, len(names))
	for i, name := range names {
		b := &quorumBuyer{sale: sale, name: name, servers: serversOf(i), patience: p}
		at := startOf(i)
		id := sim.NodeID(101 + i)
		sale.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			b.env = env
			env.After(at, b.ask)
			return b
		})
		sale.Lane(id, name)
		buyers[i] = b
	}
	return buyers
}

func (b *quorumBuyer) ask() {
	if b.try == b.patience.MaxTries {
		b.done = true
		b.sale.Mark(lab.Note, b.name, fmt.Sprintf("gives up after %d tries", b.try))
		return
	}
	b.try++
	b.waiting = true
	to := b.servers[b.next]
	b.sale.Begin(b.name)
	b.env.Send(to, shopBuy{Buyer: b.name, Try: b.try})
	b.timer = b.env.After(b.patience.Timeout, func() { b.fail("no answer from " + shopNode(to)) })
}

func (b *quorumBuyer) fail(why string) {
	b.timer.Stop()
	b.waiting = false
	b.sale.NoAnswer(b.name, why)
	b.next = (b.next + 1) % len(b.servers)
	b.env.After(shopBetween(b.env, b.patience.BackoffMin, b.patience.BackoffMax), b.ask)
}

func (b *quorumBuyer) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(shopReply)
	if !ok || !b.waiting || m.Try != b.try {
		return
	}
	if m.Outcome == shopElsewhere {
		b.fail(shopNode(from) + " does not sell")
		return
	}
	b.timer.Stop()
	b.waiting, b.done = false, true
	b.sale.Answer(b.name, m.Outcome == shopSold, 1+m.Trips)
}

// quorumDone reports whether every buyer has an answer or gave up.
func quorumDone(buyers []*quorumBuyer) bool {
	for _, b := range buyers {
		if !b.done {
			return false
		}
	}
	return true
}

// quorumMajority is the size of a majority of n.
func quorumMajority(n int) int { return n/2 + 1 }

// quorumRotated returns servers starting at index first, wrapping around:
// a buyer's list when its first choice is servers[first].
func quorumRotated(servers []sim.NodeID, first int) []sim.NodeID {
	out := make([]sim.NodeID, 0, len(servers))
	for i := range servers {
		out = append(out, servers[(first+i)%len(servers)])
	}
	return out
}

// quorumRun runs sale until done holds, heals every fault, and lets the
// nodes settle for settle. done must come true within shopRunLimit.
func quorumRun(sale *lab.Sale, done func() bool, settle time.Duration) error {
	if err := sale.Sim.RunUntil(done, shopRunLimit); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	sale.Sim.Heal()
	if err := sale.Sim.RunFor(settle); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	return nil
}

// quorumSoldAt returns when each buyer told "sold" was told, from the
// timeline.
func quorumSoldAt(res *lab.Result) map[string]time.Duration {
	at := map[string]time.Duration{}
	for _, ev := range res.Timeline.Events {
		if _, seen := at[ev.Lane]; ev.Kind == lab.Sold && !seen {
			at[ev.Lane] = ev.At
		}
	}
	return at
}

// quorumToldLine says who was told "sold" and when: "ann was told
// \"sold\" at 22ms, dan at 57ms".
func quorumToldLine(res *lab.Result) string {
	sold := quorumSoldAt(res)
	line := ""
	for i, b := range res.ToldSold {
		if i == 0 {
			line = fmt.Sprintf("%s was told \"sold\" at %s", b, shopAt(sold[b]))
			continue
		}
		line += fmt.Sprintf(", %s at %s", b, shopAt(sold[b]))
	}
	return line
}
