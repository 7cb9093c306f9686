package toy

// What the toy designs share: the buyer who asks one server at a time
// (design 5's buyers write to every replica instead, see multiwrite.go),
// the messages between buyers and servers, the servers' lanes, the owner
// on disk, the picture's labels, and the run's ending.

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

// Timing of a buyer, with links of 1-10 ms each way.
const (
	// shopTimeout is how long a buyer waits for an answer: two round trips
	// of the slowest link (buyer->server->backup and back) plus slack. Too
	// short and a working server looks dead; too long and a dead one costs
	// the buyer more time before it asks another.
	shopTimeout = 60 * time.Millisecond
	// shopBackoffMin and shopBackoffMax bound the pause before a buyer
	// asks again, drawn at random so buyers do not retry in lock step.
	shopBackoffMin = 10 * time.Millisecond
	shopBackoffMax = 30 * time.Millisecond
	// shopMaxTries is how many times a buyer asks before it gives up:
	// with the timeout and the pauses above, up to 1.8 s of trying when
	// every try times out, longer than any outage of designs 1-5.
	shopMaxTries = 20
	// shopSettle is how long a run goes on after the faults healed, for
	// the replicas to exchange what they have before they are read.
	shopSettle = 300 * time.Millisecond
	// shopRunLimit bounds a run's virtual time; a run that needs longer
	// is a bug in the design's code.
	shopRunLimit = 20 * time.Second
)

// shopOutcome is a server's answer to a buyer.
type shopOutcome uint8

const (
	shopSold      shopOutcome = iota + 1 // the phone is the buyer's
	shopSoldOut                          // the phone is someone else's
	shopElsewhere                        // this server does not sell now: ask another
)

// shopBuy asks a server for the phone. Try numbers the buyer's attempts,
// so that a late answer to an earlier attempt is not taken for this one.
type shopBuy struct {
	Buyer string
	Try   int
}

func (m shopBuy) drawn() string { return "buy " + m.Buyer }

// shopReply answers a shopBuy.
type shopReply struct {
	Buyer   string
	Try     int
	Outcome shopOutcome
	// Trips counts the round trips the server waited for behind the
	// buyer's own (1 when it waited for a backup's acknowledgement).
	Trips int
}

func (m shopReply) drawn() string {
	switch m.Outcome {
	case shopSold:
		return "sold to " + m.Buyer
	case shopSoldOut:
		return "sold out"
	default:
		return "ask elsewhere"
	}
}

// shopAnswer is the reply to m when the phone is owner's: "sold" if owner
// is m's buyer, "sold out" if not. trips is as in shopReply.
func shopAnswer(m shopBuy, owner string, trips int) shopReply {
	out := shopSoldOut
	if owner == m.Buyer {
		out = shopSold
	}
	return shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: out, Trips: trips}
}

// shopDrawn is implemented by the messages the picture draws; drawn
// returns the arrow's label, or "" for a message not worth an arrow
// (heartbeats).
type shopDrawn interface{ drawn() string }

// shopDraw makes sale's picture draw the messages that say what they are.
func shopDraw(sale *lab.Sale) {
	sale.Matters(func(msg any) bool {
		d, ok := msg.(shopDrawn)
		return ok && d.drawn() != ""
	}, func(msg any) string {
		return msg.(shopDrawn).drawn()
	})
}

// shopPatience is how a buyer waits and retries.
type shopPatience struct {
	// Timeout is how long one attempt waits for an answer before the buyer
	// asks the next server of its list.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the pause before the next attempt,
	// drawn at random so buyers do not retry in lock step.
	BackoffMin, BackoffMax time.Duration
	// MaxTries is how many attempts the buyer makes before giving up.
	MaxTries int
}

// shopDefaultPatience is the patience of the buyers of designs 1-5.
var shopDefaultPatience = shopPatience{Timeout: shopTimeout, BackoffMin: shopBackoffMin, BackoffMax: shopBackoffMax, MaxTries: shopMaxTries}

// shopBuyer is a client that wants the phone. It asks one server at a
// time (shopBuy); on a timeout or an "ask elsewhere" it pauses and asks
// the next server of its own list; it stops at "sold" or "sold out", or
// gives up after its patience's MaxTries.
type shopBuyer struct {
	sale     *lab.Sale
	env      *sim.Env
	name     string
	servers  []sim.NodeID // in the order this buyer tries them
	patience shopPatience
	next     int // index in servers of the server to ask next
	try      int
	waiting  bool // an attempt is open
	done     bool
	timer    *sim.Timer
}

// shopBuyers adds n buyers (nodes 101, 102, ...) with the default
// patience who know servers and start asking at the times start returns,
// and names their lanes. The servers' lanes must be named first.
func shopBuyers(sale *lab.Sale, n int, servers []sim.NodeID, start func() time.Duration) []*shopBuyer {
	return patientBuyers(sale, lab.BuyerNames(n), shopDefaultPatience,
		func(int) []sim.NodeID { return servers }, func(int) time.Duration { return start() })
}

// patientBuyers adds one buyer per name (nodes 101, 102, ...) with
// patience p and names their lanes. serversOf returns buyer i's list of
// servers, first choice first; startOf returns when it starts asking.
// Both are called in buyer order, so they may draw from the simulator's
// random source.
func patientBuyers(sale *lab.Sale, names []string, p shopPatience, serversOf func(i int) []sim.NodeID, startOf func(i int) time.Duration) []*shopBuyer {
	buyers := make([]*shopBuyer, len(names))
	for i, name := range names {
		b := &shopBuyer{sale: sale, name: name, servers: serversOf(i), patience: p}
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

func (b *shopBuyer) ask() {
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

// fail ends the open attempt without an answer and schedules the next one,
// at the next server.
func (b *shopBuyer) fail(why string) {
	b.timer.Stop()
	b.waiting = false
	b.sale.NoAnswer(b.name, why)
	b.next = (b.next + 1) % len(b.servers)
	b.env.After(shopBetween(b.env, b.patience.BackoffMin, b.patience.BackoffMax), b.ask)
}

func (b *shopBuyer) Receive(from sim.NodeID, msg any) {
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

// shopWaiter is a buyer's request a server holds until the sale in
// progress resolves.
type shopWaiter struct {
	from  sim.NodeID
	buyer string
	try   int
}

// shopWait adds m to the requests held in waiters and returns the list; a
// buyer's newer try replaces its older one.
func shopWait(waiters []shopWaiter, from sim.NodeID, m shopBuy) []shopWaiter {
	for i := range waiters {
		if waiters[i].buyer == m.Buyer {
			waiters[i].try = m.Try
			return waiters
		}
	}
	return append(waiters, shopWaiter{from: from, buyer: m.Buyer, try: m.Try})
}

// shopAllDone reports whether every buyer has an answer or gave up.
func shopAllDone(buyers []*shopBuyer) bool {
	for _, b := range buyers {
		if !b.done {
			return false
		}
	}
	return true
}

// shopServers returns the IDs of n servers, 1..n, and names their lanes
// n1..nn.
func shopServers(sale *lab.Sale, n int) []sim.NodeID {
	ids := make([]sim.NodeID, n)
	for i := range ids {
		ids[i] = sim.NodeID(i + 1)
		sale.Lane(ids[i], shopNode(ids[i]))
	}
	return ids
}

// shopNode is a server's lane name.
func shopNode(id sim.NodeID) string { return fmt.Sprintf("n%d", id) }

// shopOwnerKey is where a server keeps the owner on its disk.
const shopOwnerKey = "owner"

// shopLoadOwner returns the owner on disk ("" for none).
func shopLoadOwner(d *sim.Disk) string {
	v, _ := d.Get(shopOwnerKey)
	return string(v)
}

// shopStoreOwner writes the owner and syncs: it survives a crash.
func shopStoreOwner(d *sim.Disk, owner string) {
	d.Set(shopOwnerKey, []byte(owner))
	d.Sync()
}

// shopBetween draws a duration uniformly from [lo, hi] from the
// simulator's random source (src is the *sim.Sim or a node's *sim.Env).
func shopBetween(src interface{ Rand() *rand.Rand }, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(src.Rand().Int64N(int64(hi-lo)+1))
}

// shopAt formats a virtual time for a story: "212ms", "1.04s".
func shopAt(d time.Duration) string { return d.Round(time.Millisecond).String() }

// shopRun runs sale until the buyers are done and the nemesis says its
// faults are over, heals whatever is left, and lets the replicas settle.
func shopRun(sale *lab.Sale, buyers []*shopBuyer, faultsOver func() bool) error {
	done := func() bool { return shopAllDone(buyers) && faultsOver() }
	if err := sale.Sim.RunUntil(done, shopRunLimit); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	sale.Sim.Heal()
	if err := sale.Sim.RunFor(shopSettle); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	return nil
}
