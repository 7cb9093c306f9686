package toy

// Design 5 of the article: multi-write, no leader. Each buyer sends its
// request to all three replicas; a replica keeps the first buyer it hears,
// syncs it, and says OK to that buyer only. A buyer with two OKs of three
// has the phone. Two buyers cannot both collect two OKs from three
// replicas that each give one (the pigeonhole principle), so the phone is
// never sold twice; but when the three replicas hear three different
// buyers first, nobody collects two, nobody buys the phone, and nothing
// ever lets a replica give up the buyer it took.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	// multiBuyers race for the phone. Their requests leave within
	// multiSkew of each other and each link delays them by 1-10 ms, so
	// each replica's first buyer is close to a uniform draw among them,
	// and the three replicas take three different first buyers with
	// probability about (B-1)(B-2)/B²: 0.74 for 11 buyers (the tests see
	// 0.70-0.80 over seeds 1..1000). Fewer buyers make the split rarer.
	multiBuyers = 11
	// multiOpen is when the sale opens; each buyer's clock is off by up
	// to multiSkew.
	multiOpen = 10 * time.Millisecond
	multiSkew = 1 * time.Millisecond
	// multiStopAfter is the unavailability that counts as a stop.
	multiStopAfter = 100 * time.Millisecond
)

// multiWrite asks a replica to take Buyer as the owner; multiVote is its
// answer: OK if the replica's owner is Buyer.
type multiWrite struct {
	Buyer string
	Try   int
}

type multiVote struct {
	Buyer string
	Try   int
	OK    bool
}

func (m multiWrite) drawn() string { return "write " + m.Buyer }

func (m multiVote) drawn() string {
	if m.OK {
		return "OK " + m.Buyer
	}
	return "taken"
}

// multiReplica is one of design 5's three replicas.
type multiReplica struct {
	env   *sim.Env
	owner string
	took  func(r *multiReplica) // the run's hook: a first buyer taken
}

func (r *multiReplica) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(multiWrite)
	if !ok {
		return
	}
	if r.owner == "" {
		r.owner = m.Buyer
		shopStoreOwner(r.env.Disk(), m.Buyer)
		r.took(r)
	}
	r.env.Send(from, multiVote{Buyer: m.Buyer, Try: m.Try, OK: r.owner == m.Buyer})
}

// multiBuyer writes to every replica at once and counts their votes: two
// OKs is "sold", two refusals "sold out" (it can no longer collect two
// OKs). Without either by the timeout, it writes to all again, up to
// shopMaxTries times.
type multiBuyer struct {
	sale     *lab.Sale
	env      *sim.Env
	name     string
	replicas []sim.NodeID
	try      int
	votes    map[sim.NodeID]bool // this try's votes by replica
	timer    *sim.Timer
	done     bool
}

func (b *multiBuyer) ask() {
	if b.try == shopMaxTries {
		b.done = true
		b.sale.Mark(lab.Note, b.name, fmt.Sprintf("gives up after %d tries", b.try))
		return
	}
	b.try++
	b.votes = map[sim.NodeID]bool{}
	b.sale.Begin(b.name)
	for _, id := range b.replicas {
		b.env.Send(id, multiWrite{Buyer: b.name, Try: b.try})
	}
	b.timer = b.env.After(shopTimeout, func() {
		b.sale.NoAnswer(b.name, "no majority answered")
		b.env.After(shopBetween(b.env, shopBackoffMin, shopBackoffMax), b.ask)
	})
}

func (b *multiBuyer) Receive(from sim.NodeID, msg any) {
	m, ok := msg.(multiVote)
	if !ok || b.done || m.Try != b.try {
		return
	}
	b.votes[from] = m.OK
	oks, refusals := 0, 0
	for _, id := range b.replicas {
		if v, ok := b.votes[id]; ok && v {
			oks++
		} else if ok {
			refusals++
		}
	}
	majority := len(b.replicas)/2 + 1
	if oks < majority && refusals <= len(b.replicas)-majority {
		return
	}
	b.timer.Stop()
	b.done = true
	b.sale.Answer(b.name, oks >= majority, 1)
}

// MultiWrite runs design 5: eleven buyers write to three replicas when the
// sale opens, and the links' random delays decide which request each
// replica hears first. On most seeds the three hear three different
// buyers first: no buyer is told "sold", the replicas name three owners
// forever, and the verdict is lab.Diverged. The phone is never sold twice.
func MultiWrite(seed uint64) (*lab.Result, error) {
	sale := lab.NewSale(seed, sim.DefaultLink())
	shopDraw(sale)
	s := sale.Sim
	ids := shopServers(sale, 3)
	replicas := map[sim.NodeID]*multiReplica{}
	var firsts []string // each replica's first buyer, in the order they took them
	var firstBy []sim.NodeID
	took := func(r *multiReplica) {
		firsts, firstBy = append(firsts, r.owner), append(firstBy, r.env.ID())
		sale.Mark(lab.Note, shopNode(r.env.ID()), "takes "+r.owner)
		if len(firsts) == len(ids) && firsts[0] != firsts[1] && firsts[1] != firsts[2] && firsts[0] != firsts[2] {
			sale.Broke(shopNode(r.env.ID()), "three replicas, three first buyers: no majority for anyone")
		}
	}
	for _, id := range ids {
		s.AddNode(id, func(env *sim.Env) sim.Process {
			r := &multiReplica{env: env, owner: shopLoadOwner(env.Disk()), took: took}
			replicas[id] = r
			return r
		})
	}
	var buyers []*multiBuyer
	for i, name := range lab.BuyerNames(multiBuyers) {
		b := &multiBuyer{sale: sale, name: name, replicas: ids}
		at := multiOpen + shopBetween(s, 0, multiSkew)
		id := sim.NodeID(101 + i)
		s.AddNode(id, func(env *sim.Env) sim.Process {
			b.env = env
			env.After(at, b.ask)
			return b
		})
		sale.Lane(id, name)
		buyers = append(buyers, b)
	}
	done := func() bool {
		return !slices.ContainsFunc(buyers, func(b *multiBuyer) bool { return !b.done })
	}
	if err := s.RunUntil(done, shopRunLimit); err != nil {
		return nil, fmt.Errorf("toy: seed %d: %w", seed, err)
	}
	if err := s.RunFor(shopSettle); err != nil {
		return nil, fmt.Errorf("toy: seed %d: %w", seed, err)
	}
	res := &lab.Result{
		Design: "No leader: each buyer sends its request to all three replicas. A replica keeps the first buyer " +
			"it hears, syncs it, and answers OK to that buyer and \"taken\" to the others. A buyer with two OKs " +
			"is told \"sold\", one with two refusals \"sold out\" (one round trip). A read asks every replica " +
			"and returns the owner two of them name.",
		Fault:  "No node fails: eleven buyers write at once and the links' 1-10 ms delays reorder their requests.",
		Buyers: multiBuyers,
	}
	var owners []string
	count := map[string]int{}
	for _, id := range ids {
		o := replicas[id].owner
		owners = append(owners, o)
		count[o]++
	}
	owner := ""
	for _, o := range owners {
		if o != "" && count[o] > len(ids)/2 {
			owner = o
		}
	}
	sale.Finish(res, lab.Final{Owners: owners, Owner: owner, StopAfter: multiStopAfter})
	var took3 []string
	for i, o := range firsts {
		took3 = append(took3, fmt.Sprintf("n%d %s", firstBy[i], o))
	}
	res.Story = append(res.Story, fmt.Sprintf("At %s the sale opened and %d buyers wrote to all three replicas; "+
		"the first requests each replica heard were: %s.", shopAt(multiOpen), multiBuyers, strings.Join(took3, ", ")))
	if owner == "" {
		res.Story = append(res.Story, "No buyer collected two OKs, so every buyer was told \"sold out\" and "+
			"nobody bought the phone; each replica keeps its first buyer, and nothing in the design lets it "+
			"give that buyer up.")
	} else {
		res.Story = append(res.Story, fmt.Sprintf("%s collected two OKs and was told \"sold\"; the others were "+
			"refused. The phone was sold once.", owner))
		if res.PhonesSold > 1 {
			res.Story = append(res.Story, "The third replica still names its own first buyer, and nothing in "+
				"the design makes it change: the replicas disagree, though reads that ask all three find the owner.")
		}
	}
	return res, nil
}
