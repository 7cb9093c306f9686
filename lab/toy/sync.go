package toy

// Design 3 of the article: a primary with a backup, copied synchronously.
// The primary sends the sale to the backup, which syncs it and answers;
// only then does the primary sync it and tell the buyer "sold". No
// acknowledged sale can be lost, but the primary cannot finish a sale
// without the backup. The article's way out, someone (an engineer, an
// arbiter) who switches the primary to work alone, is a special node that
// can fail in turn; this design has none, so while the backup is gone the
// sale stops.

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	// syncResend is how often the primary sends a sale again to a backup
	// that has not acknowledged it.
	syncResend = 50 * time.Millisecond
	// syncBuyers race for the phone.
	syncBuyers = 5
	// syncRush is the window in which the buyers start asking.
	syncRush = 200 * time.Millisecond
	// syncStopAfter is the unavailability that counts as a stop: a few
	// timeouts, far less than the outage injected.
	syncStopAfter = 100 * time.Millisecond
)

// syncCopy asks the backup to store a sale; syncCopied acknowledges it.
type syncCopy struct{ Buyer string }

type syncCopied struct{ Buyer string }

func (m syncCopy) drawn() string   { return "copy: " + m.Buyer }
func (m syncCopied) drawn() string { return "stored: " + m.Buyer }

// syncServer is the primary (n1) or the backup (n2) of design 3.
type syncServer struct {
	env     *sim.Env
	primary bool
	backup  sim.NodeID
	owner   string
	// The primary's sale in progress: the buyer sent to the backup and
	// the requests that wait for the backup's answer.
	pending string
	waiters []shopWaiter
	resend  *sim.Timer
	// stored, on the backup, is the run's hook: called when a sale is on
	// the backup's disk and before the backup answers.
	stored func(buyer string)
}

func (srv *syncServer) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case shopBuy:
		srv.buy(from, m)
	case syncCopy:
		if srv.owner != m.Buyer {
			srv.owner = m.Buyer
			shopStoreOwner(srv.env.Disk(), m.Buyer)
		}
		srv.stored(m.Buyer)
		srv.env.Send(from, syncCopied(m))
	case syncCopied:
		if m.Buyer != srv.pending {
			return // a duplicate answer to a resent copy
		}
		srv.owner, srv.pending = m.Buyer, ""
		srv.resend.Stop()
		shopStoreOwner(srv.env.Disk(), m.Buyer)
		for _, w := range srv.waiters {
			out, trips := shopSoldOut, 0
			if w.buyer == srv.owner {
				out, trips = shopSold, 1
			}
			srv.env.Send(w.from, shopReply{Buyer: w.buyer, Try: w.try, Outcome: out, Trips: trips})
		}
		srv.waiters = nil
	}
}

func (srv *syncServer) buy(from sim.NodeID, m shopBuy) {
	if !srv.primary {
		srv.env.Send(from, shopReply{Buyer: m.Buyer, Try: m.Try, Outcome: shopElsewhere})
		return
	}
	if srv.owner != "" {
		srv.env.Send(from, shopAnswer(m, srv.owner, 0))
		return
	}
	srv.waiters = shopWait(srv.waiters, from, m)
	if srv.pending != "" {
		return // answered when the sale in progress resolves
	}
	srv.pending = m.Buyer
	srv.env.Send(srv.backup, syncCopy{Buyer: m.Buyer})
	srv.resend = srv.env.Every(syncResend, func() { srv.env.Send(srv.backup, syncCopy{Buyer: m.Buyer}) })
}

// SyncBackup runs design 3 with the backup dying (or being cut off from
// the primary) the moment the first sale reaches it, for 300-600 ms. The
// primary waits for it, and so does every buyer: lab.Stopped.
func SyncBackup(seed uint64) (*lab.Result, error) {
	sale := lab.NewSale(seed, sim.DefaultLink())
	shopDraw(sale)
	s := sale.Sim
	ids := shopServers(sale, 2)
	n1, n2 := ids[0], ids[1]
	var primary, backup *syncServer
	var (
		struck, over    bool
		cut             bool // the fault is a cut, not a crash
		strikeAt, endAt time.Duration
		firstCopy       string
	)
	// The nemesis: when the first sale reaches the backup, it crashes the
	// backup or cuts it off from the primary, at random, before the
	// backup answers; the fault lasts 300-600 ms.
	strike := func(buyer string) {
		if struck {
			return
		}
		struck, firstCopy, strikeAt = true, buyer, s.Now()
		cut = s.Rand().IntN(2) == 0
		lasts := shopBetween(s, 300*time.Millisecond, 600*time.Millisecond)
		if cut {
			heal := s.Net().Partition(sim.Isolate(ids, n2))
			sale.Broke(shopNode(n2), "cut off: no sale can finish")
			s.After(lasts, func() { heal(); endAt, over = s.Now(), true })
			return
		}
		s.Crash(n2)
		sale.Broke(shopNode(n2), "down: no sale can finish")
		s.After(lasts, func() { s.Restart(n2); endAt, over = s.Now(), true })
	}
	s.AddNode(n1, func(env *sim.Env) sim.Process {
		primary = &syncServer{env: env, primary: true, backup: n2, owner: shopLoadOwner(env.Disk())}
		return primary
	})
	s.AddNode(n2, func(env *sim.Env) sim.Process {
		backup = &syncServer{env: env, owner: shopLoadOwner(env.Disk()), stored: strike}
		return backup
	})
	buyers := shopBuyers(sale, syncBuyers, []sim.NodeID{n1}, func() time.Duration { return shopBetween(s, 0, syncRush) })
	if err := shopRun(sale, buyers, func() bool { return over }); err != nil {
		return nil, err
	}
	res := &lab.Result{
		Design: "A primary sends each sale to its backup and waits: the backup syncs the sale and acknowledges, " +
			"then the primary syncs it and tells the buyer \"sold\" (two round trips). Requests that arrive " +
			"meanwhile wait for the outcome. No one can switch the primary to work alone. Buyers know only " +
			"the primary and retry it after a timeout.",
		Fault:  "The backup crashes, or is cut off from the primary, when the first sale reaches it, for 300-600 ms.",
		Buyers: syncBuyers,
	}
	sale.Finish(res, lab.Final{Owners: []string{primary.owner, backup.owner}, Owner: primary.owner, StopAfter: syncStopAfter})
	what := "crashed"
	if cut {
		what = "was cut off from n1"
	}
	res.Story = append(res.Story, fmt.Sprintf("At %s %s's sale reached n2, which stored it and %s before it could "+
		"answer.", shopAt(strikeAt), firstCopy, what))
	res.Story = append(res.Story, fmt.Sprintf("n1 would neither finish the sale without n2 nor answer anyone "+
		"else meanwhile: until %s, %s later, every buyer's tries timed out (%s without answers in all).",
		shopAt(endAt), shopAt(endAt-strikeAt), shopAt(res.Unavailable)))
	if len(res.ToldSold) > 0 {
		res.Story = append(res.Story, fmt.Sprintf("Once n2 was back, %s was told \"sold\" and the others \"sold out\".",
			res.ToldSold[0]))
	}
	return res, nil
}
