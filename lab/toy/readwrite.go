package toy

// Design 7 of the article: read, then write. Three replicas keep the owner
// and a version number. A buyer first reads two of them; if both name the
// same owner, the phone is sold (to it, or to someone else). Otherwise no
// owner is on a majority as far as it can see, so it writes its own name
// to every replica with a condition, a check-and-set without consensus:
// "store this as version v+1 only if you hold nothing newer than v", v
// being the newest version it read. A replica that holds a name at
// version v may still be overwritten: that is how the design lets a buyer
// erase a name that never reached a majority, which it must do to sell
// the phone at all. A buyer whose write two replicas accept is told
// "sold"; one that gets two refusals reads again.
//
// The read's conclusion does not hold until the write: between the two,
// another buyer's write can land. A buyer that read one replica naming
// ann and one naming nobody cannot tell "ann is on a majority" from "ann
// is on one replica", so it may overwrite a sale already told.

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

const (
	rtwN = 3
	rtwR = 2 // replicas read before deciding
	rtwW = 2 // acceptances that make a sale
	// rtwBuyers click within rtwRush of each other.
	rtwBuyers = 4
	rtwRush   = 5 * time.Millisecond
	// rtwMaxRounds bounds a buyer's read-write rounds; rtwBackoffMax
	// bounds the pause before the next round.
	rtwMaxRounds  = 30
	rtwBackoffMax = 30 * time.Millisecond
)

const rtwDesign = "Three replicas keep the owner and a version. A buyer reads two replicas; if both name the same owner, " +
	"the phone is sold. Otherwise it writes its name to every replica with a condition (store it as version v+1 only " +
	"if you hold nothing newer than v, the newest version read), a check-and-set without consensus that may overwrite " +
	"a name no majority was seen to hold; two acceptances make a sale, two refusals send the buyer back to reading."

// rtwState is a replica's state: the owner ("" for none) and its version.
type rtwState struct {
	Owner   string
	Version uint64
}

// Messages between buyers and replicas; Round names the buyer's round.
type (
	rtwRead      struct{ Round int }
	rtwReadReply struct {
		Round int
		State rtwState
	}
	rtwWrite struct {
		Round int
		Owner string
		Seen  uint64 // the newest version the buyer read
	}
	rtwWriteReply struct {
		Round int
		OK    bool
	}
)

func (rtwRead) drawn() string { return "" }
func (m rtwReadReply) drawn() string {
	if m.State.Owner == "" {
		return ""
	}
	return fmt.Sprintf("%s v%d", m.State.Owner, m.State.Version)
}
func (m rtwWrite) drawn() string { return fmt.Sprintf("%s if <=v%d", m.Owner, m.Seen) }
func (m rtwWriteReply) drawn() string {
	if m.OK {
		return "ok"
	}
	return "refused"
}

// rtwReplica keeps the owner and version on its disk.
type rtwReplica struct {
	env   *sim.Env
	state rtwState
	// replaced, if set, is told when a write replaces an owner.
	replaced func(r *rtwReplica, old rtwState)
}

func (r *rtwReplica) Receive(from sim.NodeID, msg any) {
	switch m := msg.(type) {
	case rtwRead:
		r.env.Send(from, rtwReadReply{Round: m.Round, State: r.state})
	case rtwWrite:
		if r.state.Version > m.Seen {
			r.env.Send(from, rtwWriteReply{Round: m.Round})
			return
		}
		old := r.state
		r.state = rtwState{Owner: m.Owner, Version: m.Seen + 1}
		r.env.Disk().Set("owner", []byte(r.state.Owner))
		r.env.Disk().Set("version", []byte(fmt.Sprint(r.state.Version)))
		r.env.Disk().Sync()
		if old.Owner != "" && old.Owner != m.Owner && r.replaced != nil {
			r.replaced(r, old)
		}
		r.env.Send(from, rtwWriteReply{Round: m.Round, OK: true})
	}
}

// rtwBuyer runs the read-then-write rounds itself.
type rtwBuyer struct {
	sale     *lab.Sale
	env      *sim.Env
	name     string
	replicas []sim.NodeID
	round    int
	writing  bool
	read     []rtwState
	ok, no   int
	trips    int
	done     bool
}

func (b *rtwBuyer) start() {
	b.sale.Begin(b.name)
	b.next()
}

// next starts a round by reading every replica (the first rtwR answers
// count).
func (b *rtwBuyer) next() {
	if b.round == rtwMaxRounds {
		b.done = true
		b.sale.NoAnswer(b.name, fmt.Sprintf("no sale after %d rounds", b.round))
		return
	}
	b.round++
	b.writing, b.read, b.ok, b.no = false, nil, 0, 0
	b.trips++
	for _, id := range b.replicas {
		b.env.Send(id, rtwRead{Round: b.round})
	}
}

func (b *rtwBuyer) Receive(from sim.NodeID, msg any) {
	if b.done {
		return
	}
	switch m := msg.(type) {
	case rtwReadReply:
		if m.Round != b.round || b.writing || len(b.read) == rtwR {
			return
		}
		b.read = append(b.read, m.State)
		if len(b.read) == rtwR {
			b.decide()
		}
	case rtwWriteReply:
		if m.Round != b.round || !b.writing {
			return
		}
		if m.OK {
			b.ok++
			if b.ok == rtwW {
				b.done = true
				b.sale.Answer(b.name, true, b.trips)
			}
			return
		}
		b.no++
		if b.no == rtwN-rtwW+1 {
			b.writing = false
			b.env.After(shopBetween(b.env, 0, rtwBackoffMax), b.next)
		}
	}
}

// decide ends a round's read: an owner both replicas name ends the
// purchase; anything else is written over.
func (b *rtwBuyer) decide() {
	if b.read[0].Owner != "" && b.read[0].Owner == b.read[1].Owner {
		b.done = true
		b.sale.Answer(b.name, b.read[0].Owner == b.name, b.trips)
		return
	}
	seen := max(b.read[0].Version, b.read[1].Version)
	b.writing = true
	b.trips++
	for _, id := range b.replicas {
		b.env.Send(id, rtwWrite{Round: b.round, Owner: b.name, Seen: seen})
	}
}

// ReadThenWrite runs design 7 with buyers who click within the same few
// milliseconds. Per-replica conditional writes keep two buyers from both
// writing over the same version, but a buyer who reads one replica with
// the first sale and one without overwrites it with the next version: on
// most seeds two buyers are told "sold" (lab.SoldTwice).
func ReadThenWrite(seed uint64) (*lab.Result, error) {
	sale := lab.NewSale(seed, sim.DefaultLink())
	shopDraw(sale)
	s := sale.Sim
	servers := shopServers(sale, rtwN)
	replicas := map[sim.NodeID]*rtwReplica{}
	type erasure struct {
		at       time.Duration
		node     sim.NodeID
		old, new rtwState
	}
	var erased []erasure
	for _, id := range servers {
		s.AddNode(id, func(env *sim.Env) sim.Process {
			r := &rtwReplica{env: env, replaced: func(r *rtwReplica, old rtwState) {
				if sale.Told(old.Owner) {
					erased = append(erased, erasure{s.Now(), r.env.ID(), old, r.state})
					sale.Broke(shopNode(r.env.ID()), fmt.Sprintf("%s v%d replaces %s v%d", r.state.Owner, r.state.Version, old.Owner, old.Version))
				}
			}}
			replicas[id] = r
			return r
		})
	}
	var buyers []*rtwBuyer
	for i, name := range lab.BuyerNames(rtwBuyers) {
		b := &rtwBuyer{sale: sale, name: name, replicas: servers}
		at := shopBetween(s, 0, rtwRush)
		id := sim.NodeID(101 + i)
		s.AddNode(id, func(env *sim.Env) sim.Process {
			b.env = env
			env.After(at, b.start)
			return b
		})
		sale.Lane(id, name)
		buyers = append(buyers, b)
	}
	done := func() bool {
		for _, b := range buyers {
			if !b.done {
				return false
			}
		}
		return true
	}
	if err := quorumRun(sale, done, 50*time.Millisecond); err != nil {
		return nil, err
	}
	// The final read asks every replica and returns an owner a majority
	// names.
	var owners []string
	count := map[string]int{}
	owner := ""
	for _, id := range servers {
		o := replicas[id].state.Owner
		owners = append(owners, o)
		count[o]++
		if o != "" && count[o] == quorumMajority(rtwN) {
			owner = o
		}
	}
	res := &lab.Result{
		Design: rtwDesign,
		Fault:  fmt.Sprintf("No failure: %d buyers click within the same %v, as in a flash sale.", rtwBuyers, rtwRush),
		Buyers: rtwBuyers,
	}
	sale.Finish(res, lab.Final{Owners: owners, Owner: owner})
	story := []string{fmt.Sprintf("%d buyers clicked within %v; a buyer whose two replies did not name the same owner wrote its name with a condition on the newest version it had read.", rtwBuyers, rtwRush)}
	if len(res.ToldSold) > 0 {
		story = append(story, quorumToldLine(res)+", each when two replicas had accepted its write.")
	}
	if len(erased) > 0 {
		e := erased[0]
		story = append(story, fmt.Sprintf("At %s %s accepted %s's write as version %d over %s's version %d: %s's read had not found %s on both replicas it asked, and a read of two replicas cannot tell a name on one replica from a name on a majority.",
			shopAt(e.at), shopNode(e.node), e.new.Owner, e.new.Version, e.old.Owner, e.old.Version, e.new.Owner, e.old.Owner))
	}
	story = append(story, fmt.Sprintf("At the end the replicas name %v; the final read returns %q.", owners, owner))
	res.Story = story
	return res, nil
}
