package toy

// Design 2 of the article: a primary with a backup, copied asynchronously.
// The primary sells, syncs, answers the buyer, and copies its state to the
// backup only every asyncCopyEvery. A backup that has heard no copy for
// asyncFailover takes over. A sale acknowledged between two copies lives
// on the primary alone: if the primary dies then, the backup takes over
// without it and sells the phone again.

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	// asyncCopyEvery is the period of the primary's copies to the backup;
	// each copy also tells the backup the primary is alive. The longer
	// it is, the more acknowledged sales a crash can take with it.
	asyncCopyEvery = 50 * time.Millisecond
	// asyncFailover is how long a backup waits without a copy before it
	// takes over: three copy periods, so one late copy is no failover.
	asyncFailover = 150 * time.Millisecond
	// asyncTick is how often a backup checks for the primary's silence.
	asyncTick = 10 * time.Millisecond
	// asyncBuyers race for the phone.
	asyncBuyers = 5
	// asyncRush is the window in which the buyers start asking.
	asyncRush = 300 * time.Millisecond
	// asyncStopAfter is the unavailability that counts as a stop: about
	// the failover's length, which the design accepts.
	asyncStopAfter = 300 * time.Millisecond
)

// asyncCopy is the primary's periodic copy of its state to the backup.
type asyncCopy struct{ Owner string }

func (m asyncCopy) drawn() string {
	if m.Owner == "" {
		return ""
	}
	return "copy: " + m.Owner
}

// asyncServer is one of the two servers of design 2.
type asyncServer struct {
	env     *sim.Env
	peer    sim.NodeID
	primary bool
	owner   string
	heard   time.Duration // when the backup last heard a copy
	// The run's hooks: a sale made (acknowledged), a takeover, and a
	// copy replacing the owner this server held.
	sold     func(srv *asyncServer, buyer string)
	takeover func(srv *asyncServer)
	replaced func(srv *asyncServer, owner string)
}

func (srv *asyncServer) start() {
	srv.heard = srv.env.Now()
	srv.env.Every(asyncCopyEvery, func() {
		if srv.primary {
			srv.env.Send(srv.peer, asyncCopy{Owner: srv.owner})
		}
	})
	srv.env.Every(asyncTick, func() {
		if !srv.primary && srv.env.Now()-srv.heard > asyncFailover {
			srv.primary = true
			srv.takeover(srv)
		}
	})
}

func (srv *asyncServer) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case asyncCopy:
		if srv.primary {
			return // a copy from a primary this one replaced; never sent in these runs
		}
		srv.heard = srv.env.Now()
		if m.Owner != srv.owner {
			if srv.owner != "" {
				srv.replaced(srv, m.Owner)
			}
			srv.owner = m.Owner
			shopStoreOwner(srv.env.Disk(), m.Owner)
		}
	case shopBuy:
		srv.buy(from, m)
	}
}

func (srv *asyncServer) buy(from sim.NodeID, m shopBuy) {
	if !srv.primary {
		srv.env.Send(from, shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: shopElsewhere})
		return
	}
	if srv.owner != "" {
		srv.env.Send(from, shopAnswer(m, srv.owner, 0))
		return
	}
	srv.owner = m.Buyer
	shopStoreOwner(srv.env.Disk(), m.Buyer)
	// Acknowledge now; the backup hears of the sale with the next copy.
	srv.env.Send(from, shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: shopSold})
	srv.sold(srv, m.Buyer)
}

// asyncRun is one run of design 2 and what happened in it, for the story.
type asyncRun struct {
	sale    *lab.Sale
	ids     []sim.NodeID
	servers map[sim.NodeID]*asyncServer // running incarnations
	buyers  []*shopBuyer

	sales    []asyncSale
	crashAt  time.Duration
	backAt   time.Duration
	takeAt   time.Duration
	taker    sim.NodeID
	takerHad string // what the new primary held when it took over
	over     bool
}

type asyncSale struct {
	by    sim.NodeID
	buyer string
	at    time.Duration
}

// AsyncBackup runs design 2 with the primary crashing 1-15 ms after its
// first sale, on most seeds before its next copy reaches the backup. The
// backup then takes over without the sale and sells the phone again:
// lab.SoldTwice.
func AsyncBackup(seed uint64) (*lab.Result, error) {
	r := &asyncRun{sale: lab.NewSale(seed, sim.DefaultLink()), servers: map[sim.NodeID]*asyncServer{}}
	shopDraw(r.sale)
	s := r.sale.Sim
	r.ids = shopServers(r.sale, 2)
	for _, id := range r.ids {
		peer := r.ids[0] + r.ids[1] - id
		s.AddNode(id, func(env *sim.Env) sim.Process {
			// n1 starts as the primary; a server that restarts after a
			// crash comes back as the backup of whoever serves now.
			srv := &asyncServer{env: env, peer: peer, owner: shopLoadOwner(env.Disk()),
				primary: id == r.ids[0] && env.Incarnation() == 0, sold: r.onSold, takeover: r.onTakeover, replaced: r.onReplaced}
			srv.start()
			r.servers[id] = srv
			return srv
		})
	}
	r.buyers = shopBuyers(r.sale, asyncBuyers, r.ids, func() time.Duration { return shopBetween(s, 0, asyncRush) })
	if err := shopRun(r.sale, r.buyers, func() bool { return r.over }); err != nil {
		return nil, err
	}
	res := &lab.Result{
		Design: "A primary sells, syncs the sale to its disk and answers the buyer at once; every 50 ms it copies " +
			"its state to a backup. A backup that hears no copy for 150 ms takes over as primary. A server back " +
			"from a crash rejoins as the backup and takes the primary's copies. Buyers ask n1, then n2, then n1 " +
			"again, after each timeout or refusal.",
		Fault:  "The primary crashes 1-15 ms after its first sale and stays down 200-500 ms.",
		Buyers: asyncBuyers,
	}
	var owners []string
	owner := ""
	for _, id := range r.ids {
		srv := r.servers[id]
		owners = append(owners, srv.owner)
		if srv.primary && owner == "" {
			owner = srv.owner // a read goes to the primary
		}
	}
	r.sale.Finish(res, lab.Final{Owners: owners, Owner: owner, StopAfter: asyncStopAfter})
	r.story(res)
	return res, nil
}

func (r *asyncRun) onSold(srv *asyncServer, buyer string) {
	s := r.sale.Sim
	id := srv.env.ID()
	r.sales = append(r.sales, asyncSale{by: id, buyer: buyer, at: s.Now()})
	if len(r.sales) > 1 {
		r.sale.Broke(shopNode(id), "sells again: "+buyer)
		return
	}
	// The nemesis: crash the primary soon after it acknowledged a sale.
	s.After(shopBetween(s, time.Millisecond, 15*time.Millisecond), func() {
		r.crashAt = s.Now()
		s.Crash(id)
		s.After(shopBetween(s, 200*time.Millisecond, 500*time.Millisecond), func() {
			r.backAt = s.Now()
			s.Restart(id)
			r.over = true
		})
	})
}

func (r *asyncRun) onTakeover(srv *asyncServer) {
	r.takeAt, r.taker, r.takerHad = r.sale.Sim.Now(), srv.env.ID(), srv.owner
	r.sale.Mark(lab.Note, shopNode(r.taker), "takes over")
}

func (r *asyncRun) onReplaced(srv *asyncServer, owner string) {
	r.sale.Mark(lab.Note, shopNode(srv.env.ID()), fmt.Sprintf("drops %s for %s", srv.owner, owner))
}

func (r *asyncRun) story(res *lab.Result) {
	first := r.sales[0]
	res.Story = append(res.Story, fmt.Sprintf("At %s n%d told %s \"sold\"; at %s it crashed.",
		shopAt(first.at), first.by, first.buyer, shopAt(r.crashAt)))
	if r.takerHad == "" {
		res.Story = append(res.Story, fmt.Sprintf("No copy had carried the sale to n%d, which heard no copy "+
			"for over 150 ms and took over at %s with no owner on record.", r.taker, shopAt(r.takeAt)))
	} else {
		res.Story = append(res.Story, fmt.Sprintf("A copy had carried the sale to n%d before the crash: it took over "+
			"at %s knowing %s owned the phone.", r.taker, shopAt(r.takeAt), r.takerHad))
	}
	if len(r.sales) > 1 {
		second := r.sales[1]
		res.Story = append(res.Story, fmt.Sprintf("At %s n%d sold the phone again, to %s; n%d came back at %s as "+
			"the backup and took n%d's copy: %s's sale is gone.", shopAt(second.at), second.by, second.buyer,
			first.by, shopAt(r.backAt), second.by, first.buyer))
	} else {
		res.Story = append(res.Story, fmt.Sprintf("n%d came back at %s as the backup; no buyer was sold the phone twice.",
			first.by, shopAt(r.backAt)))
	}
}
