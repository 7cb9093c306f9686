package toy

// Design 6 of the article: W/R/N quorums, as Dynamo and Cassandra use
// them. N=3 replicas each keep one record, the owner and the timestamp
// its writer stamped it with, and keep whichever record has the larger
// timestamp (last writer wins). A buyer asks any replica to coordinate
// its purchase: the coordinator reads R=2 replicas (itself and the first
// peer to answer) and, if none names an owner, writes the buyer's name
// stamped with its own clock to W=2 replicas (itself and the first peer
// to acknowledge). Replicas push their record to each other every
// wrnGossipEvery, so they converge on the largest timestamp.
//
// W+R>N only promises that a read overlaps every completed write. It does
// not order two writes that overlap in time (6a: both buyers read "no
// owner" and both write), nor writes stamped by clocks that disagree (6b:
// a write stamped by a slow clock loses to an older one).

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	wrnN = 3
	wrnW = 2
	wrnR = 2
	// wrnGossipEvery is how often a replica pushes its record to the
	// others (anti-entropy). Shorter converges sooner and costs more
	// messages.
	wrnGossipEvery = 200 * time.Millisecond
	// wrnConcurrentBuyers click within wrnRush of each other in 6a.
	wrnConcurrentBuyers = 4
	wrnRush             = 5 * time.Millisecond
	// wrnSkewMin and wrnSkewMax bound how far n3's clock runs behind in 6b.
	wrnSkewMin = time.Second
	wrnSkewMax = 5 * time.Second
	// wrnDown is how long n1 stays down in 6b.
	wrnDown = 300 * time.Millisecond
	// wrnStopAfter: in 6b one buyer's first attempt times out; that is the
	// crash's cost, not a stop.
	wrnStopAfter = time.Second
)

// wrnPatience: an attempt is a buyer-coordinator round trip plus a read
// and a write round trip, 60 ms at worst with 10 ms links; the timeout
// leaves room for that.
var wrnPatience = shopPatience{Timeout: 200 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 30 * time.Millisecond, MaxTries: 5}

const wrnDesign = "Three replicas keep the owner with a timestamp and keep the record with the larger timestamp " +
	"(last writer wins). A buyer asks any replica to coordinate: it reads R=2 replicas and, if none names an owner, " +
	"writes the buyer's name stamped with its own clock to W=2 replicas, then says \"sold\"; W+R>N, so a read " +
	"overlaps every completed write. Replicas push their record to each other every 200ms."

// wrnRecord is a replica's record: the owner ("" for none) and the time on
// the writing coordinator's clock when it wrote.
type wrnRecord struct {
	Owner string
	Stamp time.Duration
}

// newer reports whether a wins over b under last-writer-wins: any record
// wins over none, a larger stamp over a smaller, and equal stamps are
// broken by the owner's name, so every replica picks the same.
func (a wrnRecord) newer(b wrnRecord) bool {
	if a.Owner == "" || b.Owner == "" {
		return b.Owner == "" && a.Owner != ""
	}
	return a.Stamp > b.Stamp || (a.Stamp == b.Stamp && a.Owner > b.Owner)
}

func (a wrnRecord) String() string {
	if a.Owner == "" {
		return "no owner"
	}
	return a.Owner + "@" + wrnWall(a.Stamp)
}

// Messages between replicas. Op names a coordinator's request; replies
// carry it back.
type (
	wrnRead      struct{ Op uint64 }
	wrnReadReply struct {
		Op  uint64
		Rec wrnRecord
	}
	wrnWrite struct {
		Op  uint64
		Rec wrnRecord
	}
	wrnWriteAck struct{ Op uint64 }
	wrnGossip   struct{ Rec wrnRecord }
)

func (wrnRead) drawn() string        { return "read" }
func (m wrnReadReply) drawn() string { return m.Rec.String() }
func (m wrnWrite) drawn() string     { return "write " + m.Rec.String() }
func (wrnWriteAck) drawn() string    { return "ok" }
func (wrnGossip) drawn() string      { return "" }

// wrnReplica is a replica and, for the buyers who ask it, a coordinator.
type wrnReplica struct {
	env   *sim.Env
	peers []sim.NodeID
	skew  time.Duration // its clock reads virtual time + skew
	rec   wrnRecord
	ops   map[uint64]*wrnOp // requests it coordinates, by Op
	last  uint64
	// stored, if set, is called once the replica has stored a record it
	// coordinated, before it sends the record to its peers (the nemesis's
	// hook); overwrote is called when a pushed record replaced its own.
	stored    func(r *wrnReplica)
	overwrote func(r *wrnReplica, old wrnRecord)
}

// wrnOp is one purchase a replica coordinates.
type wrnOp struct {
	buyer sim.NodeID
	req   shopBuy
	write bool // in the write phase
	count int  // answers in this phase, its own included
	best  wrnRecord
	rec   wrnRecord // the record written
}

func (r *wrnReplica) clock() time.Duration { return r.env.Now() + r.skew }

func (r *wrnReplica) load() {
	if v, ok := r.env.Disk().Get("owner"); ok {
		r.rec.Owner = string(v)
		stamp, _ := r.env.Disk().Get("stamp")
		d, err := time.ParseDuration(string(stamp))
		if err != nil {
			panic(err) // we wrote it
		}
		r.rec.Stamp = d
	}
}

// keep stores rec if it wins over the replica's record, and syncs.
func (r *wrnReplica) keep(rec wrnRecord) bool {
	if !rec.newer(r.rec) {
		return false
	}
	r.rec = rec
	r.env.Disk().Set("owner", []byte(rec.Owner))
	r.env.Disk().Set("stamp", []byte(rec.Stamp.String()))
	r.env.Disk().Sync()
	return true
}

func (r *wrnReplica) gossip() {
	if r.rec.Owner == "" {
		return
	}
	for _, p := range r.peers {
		r.env.Send(p, wrnGossip{Rec: r.rec})
	}
}

func (r *wrnReplica) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case shopBuy:
		r.last++
		op := &wrnOp{buyer: from, req: m, count: 1, best: r.rec}
		r.ops[r.last] = op
		for _, p := range r.peers {
			r.env.Send(p, wrnRead{Op: r.last})
		}
	case wrnRead:
		r.env.Send(from, wrnReadReply{Op: m.Op, Rec: r.rec})
	case wrnWrite:
		r.keep(m.Rec)
		// Last writer wins: a write that loses to a newer record is
		// acknowledged all the same, as Dynamo-style stores do.
		r.env.Send(from, wrnWriteAck{Op: m.Op})
	case wrnGossip:
		old := r.rec
		if r.keep(m.Rec) && r.overwrote != nil {
			r.overwrote(r, old)
		}
	case wrnReadReply:
		op := r.ops[m.Op]
		if op == nil || op.write {
			return
		}
		op.count++
		if m.Rec.newer(op.best) {
			op.best = m.Rec
		}
		if op.count == wrnR {
			r.decide(m.Op, op)
		}
	case wrnWriteAck:
		op := r.ops[m.Op]
		if op == nil || !op.write {
			return
		}
		op.count++
		if op.count == wrnW {
			delete(r.ops, m.Op)
			r.env.Send(op.buyer, shopReply{Buyer: op.req.Buyer, Try: op.req.Try, Outcome: shopSold, Trips: 2})
		}
	}
}

// decide ends the read phase: an owner seen ends the purchase, no owner
// starts the write.
func (r *wrnReplica) decide(id uint64, op *wrnOp) {
	if op.best.Owner != "" {
		delete(r.ops, id)
		r.env.Send(op.buyer, shopAnswer(op.req, op.best.Owner, 1))
		return
	}
	op.write, op.count = true, 1
	op.rec = wrnRecord{Owner: op.req.Buyer, Stamp: r.clock()}
	r.keep(op.rec)
	if r.stored != nil {
		r.stored(r)
		if !r.env.Alive() {
			return
		}
	}
	for _, p := range r.peers {
		r.env.Send(p, wrnWrite{Op: id, Rec: op.rec})
	}
}

// wrnRun is one run of design 6.
type wrnRun struct {
	sale     *lab.Sale
	servers  []sim.NodeID
	replicas map[sim.NodeID]*wrnReplica // running incarnations
	buyers   []*shopBuyer
}

func newWRNRun(seed uint64) *wrnRun {
	w := &wrnRun{sale: lab.NewSale(seed, sim.DefaultLink()), replicas: map[sim.NodeID]*wrnReplica{}}
	shopDraw(w.sale)
	w.servers = shopServers(w.sale, wrnN)
	return w
}

// start adds the replicas, with skews[i] the skew of replica i+1's clock;
// hook, if set, may set hooks on each incarnation.
func (w *wrnRun) start(skews []time.Duration, hook func(r *wrnReplica)) {
	for i, id := range w.servers {
		var peers []sim.NodeID
		for _, p := range w.servers {
			if p != id {
				peers = append(peers, p)
			}
		}
		w.sale.Sim.AddNode(id, func(env *sim.Env) sim.Process {
			r := &wrnReplica{env: env, peers: peers, skew: skews[i], ops: map[uint64]*wrnOp{}}
			r.load()
			if hook != nil {
				hook(r)
			}
			env.Every(wrnGossipEvery, r.gossip)
			w.replicas[id] = r
			return r
		})
	}
}

// finish heals, lets gossip settle, and reads every replica: the final
// read returns the record that wins under last-writer-wins.
func (w *wrnRun) finish(res *lab.Result, faultsOver func() bool) (*lab.Result, error) {
	done := func() bool { return shopAllDone(w.buyers) && faultsOver() }
	if err := quorumRun(w.sale, done, 2*wrnGossipEvery+50*time.Millisecond); err != nil {
		return nil, err
	}
	var owners []string
	var best wrnRecord
	for _, id := range w.servers {
		rec := w.replicas[id].rec
		owners = append(owners, rec.Owner)
		if rec.newer(best) {
			best = rec
		}
	}
	return w.sale.Finish(res, lab.Final{Owners: owners, Owner: best.Owner, StopAfter: wrnStopAfter}), nil
}

// wrnWall formats a clock reading as a wall-clock time, the sale starting
// at 12:00:00.
func wrnWall(d time.Duration) string {
	return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).Add(d).Format("15:04:05.000")
}

// WRNConcurrent runs design 6 with buyers who click within the same few
// milliseconds (6a). Each coordinator reads "no owner" before any write
// lands and writes its buyer's name; every such buyer is told "sold", and
// last-writer-wins keeps one of them: the verdict is lab.SoldTwice.
func WRNConcurrent(seed uint64) (*lab.Result, error) {
	w := newWRNRun(seed)
	w.start(make([]time.Duration, wrnN), nil)
	s := w.sale.Sim
	// A load balancer spreads the buyers over the coordinators in turn.
	first := s.Rand().IntN(wrnN)
	w.buyers = patientBuyers(w.sale, lab.BuyerNames(wrnConcurrentBuyers), wrnPatience,
		func(i int) []sim.NodeID { return quorumRotated(w.servers, first+i) },
		func(int) time.Duration { return shopBetween(s, 0, wrnRush) })
	res := &lab.Result{
		Design: wrnDesign,
		Fault:  fmt.Sprintf("No failure: %d buyers click within the same %v, as in a flash sale.", wrnConcurrentBuyers, wrnRush),
		Buyers: wrnConcurrentBuyers,
	}
	if _, err := w.finish(res, func() bool { return true }); err != nil {
		return nil, err
	}
	story := []string{fmt.Sprintf("%d buyers asked within %v; each coordinator read R=%d replicas, and every read that found no owner led to a write.",
		len(w.buyers), wrnRush, wrnR)}
	if len(res.ToldSold) > 0 {
		story = append(story, quorumToldLine(res)+fmt.Sprintf(", each once its name had reached W=%d replicas.", wrnW))
	}
	if res.Owner != "" {
		story = append(story, fmt.Sprintf("Last writer wins: the replicas settled on %s, the write with the largest timestamp; "+
			"W+R>N made no read miss a finished write, but nothing ordered the writes that overlapped.", res.Owner))
	}
	res.Story = story
	return res, nil
}

// WRNClockSkew runs design 6 with n3's clock running seconds behind (6b):
// bob's coordinator n1 stores bob's name and crashes before forwarding it;
// ann's coordinator n3 finds no owner, writes ann with its slow clock's
// stamp and tells her "sold"; when n1 returns, bob's record, older in real
// time but stamped later, replaces ann's everywhere. The verdict is
// lab.LostSale.
func WRNClockSkew(seed uint64) (*lab.Result, error) { return wrnClockSkew(seed, true) }

// wrnClockSkew runs 6b; with skewed false every clock is right, the
// control in which the same crash loses nothing.
func wrnClockSkew(seed uint64, skewed bool) (*lab.Result, error) {
	w := newWRNRun(seed)
	s := w.sale.Sim
	var behind time.Duration
	if skewed {
		behind = shopBetween(s, wrnSkewMin, wrnSkewMax).Round(time.Millisecond)
	}
	var (
		bobRec       wrnRecord
		crashAt      time.Duration
		back         bool
		overwritten  bool
		overwriteAt  time.Duration
		overwriteOld wrnRecord
	)
	n1, n3 := w.servers[0], w.servers[2]
	w.start([]time.Duration{0, 0, -behind}, func(r *wrnReplica) {
		if r.env.ID() == n1 && r.env.Incarnation() == 0 {
			r.stored = func(r *wrnReplica) {
				bobRec, crashAt = r.rec, s.Now()
				s.Crash(n1)
				w.sale.Broke(shopNode(n1), "crashed before forwarding "+r.rec.Owner)
				s.After(wrnDown, func() { s.Restart(n1); back = true })
			}
		}
		r.overwrote = func(r *wrnReplica, old wrnRecord) {
			// The moment that matters: a record a buyer was told "sold"
			// for is replaced.
			if old.Owner != r.rec.Owner && w.sale.Told(old.Owner) && !overwritten {
				overwritten, overwriteAt, overwriteOld = true, s.Now(), old
				w.sale.Broke(shopNode(r.env.ID()), fmt.Sprintf("%s replaces %s", r.rec, old))
			}
		}
	})
	names := lab.BuyerNames(2) // ann, bob
	lists := [][]sim.NodeID{{n3, w.servers[1], n1}, {n1, w.servers[1], n3}}
	w.buyers = patientBuyers(w.sale, names, wrnPatience,
		func(i int) []sim.NodeID { return lists[i] },
		func(i int) time.Duration {
			if i == 0 {
				return shopBetween(s, 40*time.Millisecond, 60*time.Millisecond)
			}
			return 0
		})
	fault := "n1 crashes right after storing the first name it coordinates, before forwarding it, and is back 300ms later"
	if skewed {
		fault += fmt.Sprintf("; n3's clock runs %v behind.", behind)
	} else {
		fault += "; every clock is right (the control)."
	}
	res := &lab.Result{Design: wrnDesign, Fault: fault, Buyers: len(names)}
	if _, err := w.finish(res, func() bool { return back }); err != nil {
		return nil, err
	}
	res.Story = wrnSkewStory(res, bobRec, crashAt, behind, overwritten, overwriteAt, overwriteOld)
	return res, nil
}

func wrnSkewStory(res *lab.Result, bob wrnRecord, crashAt, behind time.Duration, overwritten bool, at time.Duration, old wrnRecord) []string {
	sold := quorumSoldAt(res)
	var story []string
	if bob.Owner != "" {
		story = append(story, fmt.Sprintf("n1 coordinated %s's purchase: it read no owner, stored %s stamped %s by its clock, and crashed at %s before forwarding it.",
			bob.Owner, bob.Owner, wrnWall(bob.Stamp), shopAt(crashAt)))
	}
	for _, b := range res.ToldSold {
		line := fmt.Sprintf("At %s %s was told \"sold\"", shopAt(sold[b]), b)
		if behind > 0 && b != bob.Owner {
			line += fmt.Sprintf(" by n3, whose clock runs %v behind", behind)
		}
		story = append(story, line+".")
	}
	if overwritten {
		story = append(story, fmt.Sprintf("At %s n1, back up, pushed %s's record; last writer wins kept its later stamp and silently replaced %s, the sale acknowledged to %s.",
			shopAt(at), bob.Owner, old, old.Owner))
	}
	switch {
	case res.LostSales > 0:
		story = append(story, fmt.Sprintf("The final read names %s: an acknowledged sale is lost, because timestamps from clocks that disagree do not order writes.", res.Owner))
	case res.Owner != "":
		story = append(story, fmt.Sprintf("The final read names %s, the buyer told \"sold\".", res.Owner))
	}
	return story
}
