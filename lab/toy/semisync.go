package toy

// Design 4 of the article: semi-synchronous replication, a master and two
// slaves. The master syncs a sale locally, sends it to both slaves, and
// tells the buyer "sold" as soon as one slave has synced it. The slaves
// are the arbiters: when two nodes have lost their master, they pick a new
// one between them, the one holding a sale if only one does. After one
// failure some node up holds every acknowledged sale, and the rule elects
// it. After two in a row, none may:
//
//  1. the master n1 syncs ann's sale and crashes before any slave has it;
//  2. n2 and n3, both empty, pick n2, which sells to bob; n3 stores it and
//     bob is told "sold";
//  3. n2 crashes, and n1 comes back: n1 holds ann, n3 holds bob, and
//     nothing in their records says which sale is the real one.
//
// Their rule must still pick one. This design's rule is the lowest node ID
// among the nodes holding a sale, so n1 wins, n3 takes n1's record, and
// bob's acknowledged sale is lost (and if ann is still asking, n1 tells
// her "sold" too).

import (
	"fmt"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	// semiTick is how often a master sends heartbeats and a node without
	// a master calls for an election.
	semiTick = 10 * time.Millisecond
	// semiMasterTimeout is how long a slave follows a master it does not
	// hear before it looks for a new one: ten heartbeats.
	semiMasterTimeout = 100 * time.Millisecond
	// semiResend is how often a master sends a sale again until a slave
	// acknowledges it.
	semiResend = 50 * time.Millisecond
	// semiBuyers race for the phone; enough that the new master usually
	// sells to someone other than the buyer the first master took.
	semiBuyers = 6
	// semiRush is the window in which the buyers start asking.
	semiRush = 200 * time.Millisecond
	// semiStopAfter is the unavailability that counts as a stop: about the
	// failovers' length, which the design accepts.
	semiStopAfter = 500 * time.Millisecond
)

// semiBeat is the master's heartbeat. It carries the master's owner:
// slaves mirror the master, so a slave with another record takes the
// master's.
type semiBeat struct{ Owner string }

// semiLooking says a node has no master it can hear, with the sale it
// holds, for the pick.
type semiLooking struct{ Owner string }

// semiCopy sends a sale to a slave; semiCopied acknowledges it.
type semiCopy struct{ Buyer string }

type semiCopied struct{ Buyer string }

func (semiBeat) drawn() string     { return "" }
func (semiLooking) drawn() string  { return "" }
func (m semiCopy) drawn() string   { return "copy: " + m.Buyer }
func (m semiCopied) drawn() string { return "stored: " + m.Buyer }

// semiPick is the election rule two masterless nodes apply, both to the
// same two records, so both reach the same answer: the node holding a
// sale if only one does, else the lower ID.
func semiPick(a sim.NodeID, aOwner string, b sim.NodeID, bOwner string) sim.NodeID {
	if (aOwner == "") != (bOwner == "") {
		if aOwner != "" {
			return a
		}
		return b
	}
	return min(a, b)
}

// semiOr names an owner for a note: "nobody" for none.
func semiOr(owner string) string {
	if owner == "" {
		return "nobody"
	}
	return owner
}

// semiNode is one node of design 4.
type semiNode struct {
	env    *sim.Env
	peers  []sim.NodeID // the other two
	master sim.NodeID   // 0: none
	heard  time.Duration
	owner  string
	// As master: whether a slave acknowledged the owner, the requests
	// waiting for that, and the resend timer.
	acked   bool
	waiters []shopWaiter
	resend  *sim.Timer
	run     *semiRun
}

func (n *semiNode) self() sim.NodeID { return n.env.ID() }

// looking reports whether n has no master it can hear.
func (n *semiNode) looking() bool {
	return n.master != n.self() && (n.master == 0 || n.env.Now()-n.heard > semiMasterTimeout)
}

func (n *semiNode) tick() {
	switch {
	case n.master == n.self():
		n.send(semiBeat{Owner: n.owner})
	case n.looking():
		n.master = 0
		n.send(semiLooking{Owner: n.owner})
	}
}

func (n *semiNode) send(msg any) {
	for _, p := range n.peers {
		n.env.Send(p, msg)
	}
}

func (n *semiNode) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case semiBeat:
		if n.master == n.self() {
			// Two masters: three nodes looking at once can pick two,
			// pair by pair. The same rule settles it between them.
			if semiPick(n.self(), n.owner, from, m.Owner) == n.self() {
				return // the other steps down when it hears this one
			}
			n.stepDown(from)
		}
		n.follow(from)
		n.store(m.Owner)
	case semiLooking:
		n.elect(from, m.Owner)
	case semiCopy:
		if from == n.master {
			n.store(m.Buyer)
			n.env.Send(from, semiCopied(m))
		}
	case semiCopied:
		if n.master == n.self() && m.Buyer == n.owner && !n.acked {
			n.settle()
		}
	case shopBuy:
		n.buy(from, m)
	}
}

// elect answers a masterless peer: a master welcomes it, a node that has
// no master either applies the rule with it, and a slave that still
// hears its master ignores it (it backs its master).
func (n *semiNode) elect(from sim.NodeID, theirs string) {
	switch {
	case n.master == n.self():
		n.env.Send(from, semiBeat{Owner: n.owner})
	case n.looking():
		if semiPick(n.self(), n.owner, from, theirs) == n.self() {
			n.run.picked(n, from, theirs)
			n.becomeMaster()
			return
		}
		n.follow(from)
		n.env.Send(from, semiLooking{Owner: n.owner}) // so it picks itself now
	}
}

func (n *semiNode) follow(master sim.NodeID) {
	n.master, n.heard = master, n.env.Now()
}

func (n *semiNode) becomeMaster() {
	n.master = n.self()
	// A record the other node agreed to elect is the sale.
	n.acked = n.owner != ""
	n.send(semiBeat{Owner: n.owner})
}

// stepDown makes a master a slave of master: the requests it holds are
// sent elsewhere.
func (n *semiNode) stepDown(master sim.NodeID) {
	if n.resend != nil {
		n.resend.Stop()
	}
	for _, w := range n.waiters {
		n.env.Send(w.from, shopReply{Buyer: w.buyer, Try: w.try, Outcome: shopElsewhere})
	}
	n.waiters = nil
	n.run.sale.Mark(lab.Note, shopNode(n.self()), "steps down for "+shopNode(master))
}

func (n *semiNode) store(owner string) {
	if owner != n.owner {
		if n.owner != "" {
			n.run.sale.Mark(lab.Note, shopNode(n.self()), fmt.Sprintf("drops %s for %s", n.owner, semiOr(owner)))
		}
		n.owner = owner
		shopStoreOwner(n.env.Disk(), owner)
	}
}

func (n *semiNode) buy(from sim.NodeID, m shopBuy) {
	if n.master != n.self() {
		n.env.Send(from, shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: shopElsewhere})
		return
	}
	if n.acked {
		n.env.Send(from, shopAnswer(m, n.owner, 0))
		return
	}
	n.waiters = shopWait(n.waiters, from, m)
	if n.owner != "" {
		return // answered once a slave has the sale in progress
	}
	n.store(m.Buyer)
	n.run.wrote(n, m.Buyer)
	if !n.env.Alive() {
		return // the nemesis crashed it right after the write
	}
	n.send(semiCopy{Buyer: m.Buyer})
	n.resend = n.env.Every(semiResend, func() { n.send(semiCopy{Buyer: m.Buyer}) })
}

// settle answers the waiting buyers once a slave holds the sale.
func (n *semiNode) settle() {
	n.acked = true
	n.resend.Stop()
	for _, w := range n.waiters {
		out, trips := shopSoldOut, 0
		if w.buyer == n.owner {
			out, trips = shopSold, 1
		}
		n.env.Send(w.from, shopReply{Buyer: w.buyer, Try: w.try, Outcome: out, Trips: trips})
	}
	n.waiters = nil
	n.run.acked(n)
}

// semiRun is one run of design 4: its nodes, the nemesis, and what
// happened, for the story.
type semiRun struct {
	sale   *lab.Sale
	ids    []sim.NodeID
	nodes  map[sim.NodeID]*semiNode // running incarnations
	buyers []*shopBuyer

	// The nemesis's progress: 0 waits for a master's first local write,
	// 1 for the next master's first acknowledged sale, 2 has struck
	// both.
	stage int

	first, second       sim.NodeID // the two masters crashed
	firstBuyer, sold    string     // the lost write, the acknowledged sale
	firstAt, soldAt     time.Duration
	crash2At, backAt    time.Duration
	pickAt              time.Duration
	pickWinner, pickFor string // owners of the winner and the loser of a pick between two different sales
	pickLoser           sim.NodeID
}

// wrote is the nemesis's hook after a master synced a sale locally and
// before it sent it to the slaves: the first time, it crashes the master
// right there.
func (r *semiRun) wrote(n *semiNode, buyer string) {
	if r.stage != 0 {
		return
	}
	s := r.sale.Sim
	r.stage, r.first, r.firstBuyer, r.firstAt = 1, n.self(), buyer, s.Now()
	s.Crash(n.self())
	r.sale.Mark(lab.Note, shopNode(n.self()), "crashes after its local write")
}

// acked is the nemesis's hook after a master told a buyer "sold": the
// first time after its first strike, it crashes that master 1-40 ms later
// and brings the first one back 20-200 ms after that.
func (r *semiRun) acked(n *semiNode) {
	if r.stage != 1 {
		return
	}
	s := r.sale.Sim
	r.stage, r.second, r.sold, r.soldAt = 2, n.self(), n.owner, s.Now()
	s.After(shopBetween(s, time.Millisecond, 40*time.Millisecond), func() {
		r.crash2At = s.Now()
		s.Crash(r.second)
		s.After(shopBetween(s, 20*time.Millisecond, 200*time.Millisecond), func() {
			r.backAt = s.Now()
			s.Restart(r.first)
		})
	})
}

// settled reports whether the nemesis is done: both masters crashed, the
// first one back, and a master elected among the nodes up. The second
// master stays down until then, and Heal brings it back.
func (r *semiRun) settled() bool {
	if r.stage < 2 || r.backAt == 0 {
		return false
	}
	for _, id := range r.ids {
		if r.sale.Sim.Up(id) && r.nodes[id].master == id {
			return true
		}
	}
	return false
}

// picked records an election won by n over peer.
func (r *semiRun) picked(n *semiNode, peer sim.NodeID, theirs string) {
	if n.owner == "" || theirs == "" || n.owner == theirs || r.pickWinner != "" {
		r.sale.Mark(lab.Note, shopNode(n.self()), "picked as master")
		return
	}
	r.pickAt, r.pickWinner, r.pickFor, r.pickLoser = r.sale.Sim.Now(), n.owner, theirs, peer
	r.sale.Broke(shopNode(n.self()), fmt.Sprintf("%s or %s? picked by lowest ID", n.owner, theirs))
}

// newSemiRun starts design 4's three nodes, n1 the master.
func newSemiRun(seed uint64) *semiRun {
	r := &semiRun{sale: lab.NewSale(seed, sim.DefaultLink()), nodes: map[sim.NodeID]*semiNode{}}
	shopDraw(r.sale)
	r.ids = shopServers(r.sale, 3)
	for _, id := range r.ids {
		var peers []sim.NodeID
		for _, p := range r.ids {
			if p != id {
				peers = append(peers, p)
				// Nodes replicate over connections that keep order, as
				// TCP does: a heartbeat sent before a copy never
				// overwrites it.
				fifo := sim.DefaultLink()
				fifo.FIFO = true
				r.sale.Sim.Net().SetLink(id, p, fifo)
			}
		}
		r.sale.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			n := &semiNode{env: env, peers: peers, owner: shopLoadOwner(env.Disk()), run: r}
			if env.Incarnation() == 0 {
				n.follow(r.ids[0]) // n1 starts as the master
				n.acked = n.owner != ""
			}
			env.Every(semiTick, n.tick)
			r.nodes[id] = n
			return n
		})
	}
	return r
}

// SemiSync runs design 4 under the article's sequence of two failures: the
// master crashes right after its local write, the new master sells and
// crashes after the sale, and the first master returns. On most seeds the
// two nodes left hold different sales; the rule picks the first master's,
// so the sale the buyer was told of is lost (lab.LostSale), and when the
// first buyer is still asking she is told "sold" too (lab.SoldTwice).
func SemiSync(seed uint64) (*lab.Result, error) {
	r := newSemiRun(seed)
	s := r.sale.Sim
	r.buyers = shopBuyers(r.sale, semiBuyers, r.ids, func() time.Duration { return shopBetween(s, 0, semiRush) })
	if err := shopRun(r.sale, r.buyers, r.settled); err != nil {
		return nil, err
	}
	res := &lab.Result{
		Design: "A master syncs each sale locally, sends it to its two slaves and tells the buyer \"sold\" once " +
			"one slave has synced it (two round trips). Slaves mirror the master's record. Two nodes that both " +
			"lost their master pick a new one: the one holding a sale if only one does, else the lower ID; " +
			"a node back from a crash looks for a master the same way. Buyers try n1, n2, n3 in turn after " +
			"each timeout or refusal.",
		Fault: "The master crashes right after its local write, before sending it; the next master crashes " +
			"1-40 ms after its first sale, and the first master returns 20-200 ms later.",
		Buyers: semiBuyers,
	}
	var owners []string
	owner := ""
	for _, id := range r.ids {
		n := r.nodes[id]
		owners = append(owners, n.owner)
		if n.master == id && owner == "" {
			owner = n.owner // a read goes to the master
		}
	}
	r.sale.Finish(res, lab.Final{Owners: owners, Owner: owner, StopAfter: semiStopAfter})
	r.story(res)
	return res, nil
}

func (r *semiRun) story(res *lab.Result) {
	res.Story = append(res.Story, fmt.Sprintf("At %s n%d synced %s's sale and crashed before any slave had it.",
		shopAt(r.firstAt), r.first, r.firstBuyer))
	if r.stage < 2 {
		res.Story = append(res.Story, "No later master sold the phone before the buyers gave up.")
		return
	}
	res.Story = append(res.Story, fmt.Sprintf("The slaves picked n%d, which told %s \"sold\" at %s once a slave "+
		"had it, and crashed at %s; n%d came back at %s.", r.second, r.sold, shopAt(r.soldAt), shopAt(r.crash2At),
		r.first, shopAt(r.backAt)))
	if r.pickWinner == "" {
		res.Story = append(res.Story, fmt.Sprintf("n%d's sale was to %s as well, so the records agreed.",
			r.second, r.sold))
		return
	}
	res.Story = append(res.Story, fmt.Sprintf("At %s n%d held %s and n%d %s, with nothing to tell which was "+
		"the sale; the rule (lowest ID) kept %s's and n%d took that record.",
		shopAt(r.pickAt), r.first, r.pickWinner, r.pickLoser, r.pickFor, r.pickWinner, r.pickLoser))
	if slices.Contains(res.ToldSold, r.pickWinner) {
		res.Story = append(res.Story, fmt.Sprintf("%s, still asking, was told \"sold\" too: the phone went to "+
			"two buyers and %s's sale is lost.", r.pickWinner, r.pickFor))
	} else {
		res.Story = append(res.Story, fmt.Sprintf("%s was told \"sold\", but the phone is now %s's: an "+
			"acknowledged sale is lost.", r.pickFor, r.pickWinner))
	}
}
