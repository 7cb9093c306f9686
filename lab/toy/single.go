package toy

// Design 1 of the article: one server. It keeps the first buyer it hears
// as the owner, syncs that to disk, and says "sold" to that buyer and
// "sold out" to everyone else. It cannot survive its own failure: while it
// is down nobody can buy (1a), and when its disk is lost it no longer
// knows it sold the phone (1b).

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	// singleBuyers race for the phone in both runs of design 1.
	singleBuyers = 5
	// singleRush is the window in which the buyers start asking.
	singleRush = 300 * time.Millisecond
	// singleStopAfter is the unavailability that counts as a stop: a few
	// buyer timeouts, far less than the outages injected.
	singleStopAfter = 100 * time.Millisecond
)

const singleDesign = "One server sells the phone: it keeps the first buyer it hears as the owner, " +
	"syncs the owner to its disk, then answers \"sold\" to that buyer and \"sold out\" to everyone else. " +
	"Buyers know only this server; they retry it after a timeout."

// singleServer is the only server of design 1.
type singleServer struct {
	env   *sim.Env
	owner string
	// sold is the run's hook, told of each sale once it is on disk.
	sold func(buyer string)
}

func (srv *singleServer) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(shopBuy)
	if !ok {
		return
	}
	if srv.owner == "" {
		srv.owner = m.Buyer
		shopStoreOwner(srv.env.Disk(), m.Buyer)
		srv.sold(m.Buyer)
	}
	srv.env.Send(from, shopAnswer(m, srv.owner, 0))
}

// singleRun is one run of design 1: the server n1, its buyers, and what
// the nemesis did, for the story.
type singleRun struct {
	sale   *lab.Sale
	n1     sim.NodeID
	srv    *singleServer // the running incarnation
	buyers []*shopBuyer

	wipe bool // the next start gets a new, empty disk
	// afterFirst, if set, is the nemesis's hook: called once the first
	// sale is on disk.
	afterFirst func()
	firstSale  string
	firstAt    time.Duration
	secondAt   time.Duration
	second     string
	crashAt    time.Duration
	backAt     time.Duration
	over       bool // the fault has healed
}

func newSingleRun(seed uint64) *singleRun {
	r := &singleRun{sale: lab.NewSale(seed, sim.DefaultLink())}
	shopDraw(r.sale)
	r.n1 = shopServers(r.sale, 1)[0]
	r.sale.Sim.AddNode(r.n1, func(env *sim.Env) sim.Process {
		if r.wipe {
			// The failed disk was replaced by a new one: nothing on it.
			for _, k := range env.Disk().Keys("") {
				env.Disk().Delete(k)
			}
			env.Disk().Sync()
			r.wipe = false
		}
		r.srv = &singleServer{env: env, owner: shopLoadOwner(env.Disk()), sold: r.onSold}
		return r.srv
	})
	r.buyers = shopBuyers(r.sale, singleBuyers, []sim.NodeID{r.n1}, func() time.Duration {
		return shopBetween(r.sale.Sim, 0, singleRush)
	})
	return r
}

func (r *singleRun) onSold(buyer string) {
	if r.firstSale == "" {
		r.firstSale, r.firstAt = buyer, r.sale.Sim.Now()
		if r.afterFirst != nil {
			r.afterFirst()
		}
		return
	}
	r.second, r.secondAt = buyer, r.sale.Sim.Now()
	r.sale.Broke(shopNode(r.n1), "sells again: "+buyer)
}

// outage crashes n1 after wait, keeps it down for a time drawn from
// [downMin, downMax], and restarts it (with an empty disk if wipe).
func (r *singleRun) outage(wait, downMin, downMax time.Duration, wipe bool, how string) {
	s := r.sale.Sim
	s.After(wait, func() {
		r.crashAt = s.Now()
		s.Crash(r.n1)
		r.sale.Broke(shopNode(r.n1), how)
		s.After(shopBetween(s, downMin, downMax), func() {
			r.backAt = s.Now()
			r.wipe = wipe
			s.Restart(r.n1)
			r.over = true
		})
	})
}

func (r *singleRun) finish(res *lab.Result) (*lab.Result, error) {
	if err := shopRun(r.sale, r.buyers, func() bool { return r.over }); err != nil {
		return nil, err
	}
	owner := r.srv.owner
	return r.sale.Finish(res, lab.Final{Owners: []string{owner}, Owner: owner, StopAfter: singleStopAfter}), nil
}

// SingleCrash runs design 1 with its server crashing for a while during
// the sale (1a). What it synced survives, so it sells once, but while it
// is down no buyer gets an answer: the verdict is lab.Stopped.
func SingleCrash(seed uint64) (*lab.Result, error) {
	r := newSingleRun(seed)
	s := r.sale.Sim
	r.outage(shopBetween(s, 20*time.Millisecond, 120*time.Millisecond),
		300*time.Millisecond, 600*time.Millisecond, false, "down: nobody can buy")
	res := &lab.Result{
		Design: singleDesign,
		Fault: "The server crashes 20-120 ms into the sale, while buyers arrive over its first 300 ms, and " +
			"restarts 300-600 ms later with its disk intact.",
		Buyers: singleBuyers,
	}
	if _, err := r.finish(res); err != nil {
		return nil, err
	}
	down := r.backAt - r.crashAt
	if r.firstSale != "" && r.firstAt < r.crashAt {
		res.Story = append(res.Story, fmt.Sprintf("At %s n1 sold the phone to %s and synced the sale to disk.",
			shopAt(r.firstAt), r.firstSale))
		res.Story = append(res.Story, fmt.Sprintf("At %s n1 crashed; for %s nobody got an answer, "+
			"not even \"sold out\", and the buyers' tries timed out (%s without answers in all).",
			shopAt(r.crashAt), shopAt(down), shopAt(res.Unavailable)))
		res.Story = append(res.Story, fmt.Sprintf("At %s n1 restarted, read %s's sale from its disk and "+
			"answered \"sold out\" to every buyer who asked after that.", shopAt(r.backAt), r.firstSale))
	} else {
		res.Story = append(res.Story, fmt.Sprintf("At %s, before anyone had bought, n1 crashed; for %s "+
			"nobody could buy and the buyers' tries timed out (%s without answers in all).",
			shopAt(r.crashAt), shopAt(down), shopAt(res.Unavailable)))
		if r.firstSale != "" {
			res.Story = append(res.Story, fmt.Sprintf("At %s n1 restarted; at %s it sold the phone to %s.",
				shopAt(r.backAt), shopAt(r.firstAt), r.firstSale))
		}
	}
	return res, nil
}

// SingleDiskLoss runs design 1 with its disk failing after the sale (1b):
// the server comes back on a new, empty disk, has forgotten the sale, and
// sells the phone again to a buyer still trying. The verdict is
// lab.SoldTwice, and the first buyer's sale is lost.
func SingleDiskLoss(seed uint64) (*lab.Result, error) {
	r := newSingleRun(seed)
	s := r.sale.Sim
	r.afterFirst = func() {
		r.outage(shopBetween(s, 5*time.Millisecond, 40*time.Millisecond),
			100*time.Millisecond, 300*time.Millisecond, true, "disk lost: the sale is forgotten")
	}
	res := &lab.Result{
		Design: singleDesign,
		Fault: "5-40 ms after the first sale the server's disk fails; it comes back 100-300 ms later on a " +
			"new, empty disk.",
		Buyers: singleBuyers,
	}
	if _, err := r.finish(res); err != nil {
		return nil, err
	}
	res.Story = append(res.Story, fmt.Sprintf("At %s n1 sold the phone to %s and synced the sale to disk.",
		shopAt(r.firstAt), r.firstSale))
	res.Story = append(res.Story, fmt.Sprintf("At %s its disk failed; at %s n1 came back on an empty disk, "+
		"with no trace of the sale.", shopAt(r.crashAt), shopAt(r.backAt)))
	if r.second != "" {
		res.Story = append(res.Story, fmt.Sprintf("At %s it sold the phone again, to %s: "+
			"%s's sale is lost and the phone is promised twice.", shopAt(r.secondAt), r.second, r.firstSale))
	} else {
		res.Story = append(res.Story, "No buyer asked again after the disk was replaced, so nobody noticed the sale was forgotten.")
	}
	return res, nil
}
