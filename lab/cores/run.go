package cores

import (
	"fmt"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/replsim/paxoscore"
	"github.com/quorumkv/quorumkv/internal/replsim/raftcore"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

const (
	// buyers race for the phone in every run.
	buyers = 6
	// firstBuyer is the sim ID of the first buyer (replsim numbers its
	// clients from 101).
	firstBuyer = 101
)

// link is every link of every run: 1-10ms of delay, so messages
// reorder, 2% of them lost and 2% delivered twice.
var link = sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02}

// design is one run of a core: the protocol, the cluster, its faults.
type design struct {
	proto replsim.Protocol
	sc    replsim.Scenario
	// arrive spreads the buyers' first tries over [0, arrive).
	arrive time.Duration
	// faults, if set, schedules the faults the lab injects itself (a
	// crash set, a partition) before the run starts.
	faults func(r *run)
	// stopAfter is the unavailability that counts as a stop.
	stopAfter time.Duration
	// broken: the design is expected to break the simulator's checks
	// (replsim's invariants, porcupine, liveness after healing); the
	// failure is then part of the story, not an error of the run.
	broken bool
}

// run is one run in progress, and after.
type run struct {
	sale *lab.Sale
	c    *replsim.Cluster
	ids  []uint64
	// failure is what the simulator's checks found (broken designs only).
	failure *replsim.Failure
}

// protocols, as the lab runs them: the product's cores with the
// simulator suites' configuration and no planted bug.
func raftProtocol() replsim.Protocol  { return raftcore.Protocol(raftcore.Options{}) }
func paxosProtocol() replsim.Protocol { return paxoscore.Protocol(paxoscore.Options{}) }

// run runs d from seed and fills res from it; the caller writes the
// story.
func (d design) run(seed uint64, res *lab.Result) (r *run, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("seed %d: %s panicked: %v", seed, d.proto.Name, p)
		}
	}()
	sale := lab.NewSale(seed, link)
	names := lab.BuyerNames(buyers)
	sc := d.sc
	sc.Sale = &replsim.Sale{Buyers: names, Report: &report{Sale: sale}, Arrive: d.arrive}
	c, err := replsim.New(sale.Sim, d.proto, sc)
	if err != nil {
		return nil, fmt.Errorf("seed %d: %w", seed, err)
	}
	r = &run{sale: sale, c: c, ids: sc.Init.IDs()}
	for _, id := range r.ids {
		sale.Lane(sim.NodeID(id), node(id))
	}
	for i, name := range names {
		sale.Lane(sim.NodeID(firstBuyer+i), name)
	}
	sale.Matters(matters, label)
	if d.faults != nil {
		d.faults(r)
	}
	if f := c.Run(); f != nil {
		if !d.broken {
			return nil, fmt.Errorf("seed %d: the %s core failed the simulator's checks: %v", seed, d.proto.Name, f)
		}
		r.failure = f
	}
	owner, _ := c.FinalRead()
	res.Buyers = buyers
	sale.Finish(res, lab.Final{Owners: c.Owners(), Owner: owner, StopAfter: d.stopAfter})
	return r, nil
}

// report hears of the buyers' tries for the sale's bookkeeping, and
// marks the moment a second buyer is told "sold": the moment the design
// broke.
type report struct {
	*lab.Sale
	sold int
}

func (r *report) Answer(buyer string, sold bool, roundTrips int) {
	first := !r.Told(buyer)
	r.Sale.Answer(buyer, sold, roundTrips)
	if sold && first {
		if r.sold++; r.sold == 2 {
			r.Broke(buyer, "sold twice")
		}
	}
}

// node names a replica as its lane does.
func node(id uint64) string { return fmt.Sprintf("n%d", id) }

func nodes(ids []uint64) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = node(id)
	}
	return "{" + strings.Join(names, ",") + "}"
}

// matters keeps the arrows worth drawing: the buyers' requests and
// answers, elections, and the messages that carry or acknowledge entries;
// not heartbeats.
func matters(msg any) bool {
	switch m := replsim.Unwrap(msg).(type) {
	case replsim.Request, replsim.Reply:
		return true
	case paxos.Message:
		switch m.Type {
		case paxos.MsgPrepare, paxos.MsgPromise, paxos.MsgAccepted:
			return true
		case paxos.MsgAccept:
			return len(m.Entries) > 0
		}
		return false
	}
	if m, ok := raftcore.Message(replsim.Unwrap(msg)); ok {
		switch m.Type {
		case raft.MsgVote, raft.MsgVoteResp, raft.MsgAppResp:
			return true
		case raft.MsgApp:
			return len(m.Entries) > 0
		}
	}
	return false
}

// label names a drawn message in a few words.
func label(msg any) string {
	switch m := replsim.Unwrap(msg).(type) {
	case replsim.Request:
		if m.In.Op == sim.OpGet {
			return "read " + m.In.Key
		}
		return "buy"
	case replsim.Reply:
		switch {
		case m.NotLeader && m.Hint != 0:
			return "ask " + node(m.Hint)
		case m.NotLeader:
			return "no leader"
		case m.Out.Swapped:
			return "sold"
		}
		return "sold out"
	case paxos.Message:
		return m.Type.String()
	}
	if m, ok := raftcore.Message(replsim.Unwrap(msg)); ok {
		return strings.TrimPrefix(m.Type.String(), "Msg")
	}
	return fmt.Sprintf("%T", msg)
}

// ms prints a virtual time or span as people read it: 212ms, 1.43s.
func ms(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// winner is the first buyer told "sold", if any.
func (r *run) winner() (replsim.SaleAnswer, bool) {
	for _, a := range r.c.Answers() {
		if a.Sold {
			return a, true
		}
	}
	return replsim.SaleAnswer{}, false
}

// faultCounts counts, from the trace, the faults a run suffered.
type faultCounts struct {
	kills, crashes, pauses, partitions int
}

func (r *run) faults() faultCounts {
	var fc faultCounts
	for _, ev := range r.sale.Sim.Trace().Events() {
		switch {
		case ev.Kind == sim.EvNote && strings.Contains(ev.Text, "kill the leader"):
			fc.kills++
		case ev.Kind == sim.EvNote && strings.HasPrefix(ev.Text, "pause n"):
			fc.pauses++
		case ev.Kind == sim.EvCrash:
			fc.crashes++
		case ev.Kind == sim.EvPartition:
			fc.partitions++
		}
	}
	return fc
}

// saleLine tells who was told "sold", by whom and after how many round
// trips, and what the others were told.
func (r *run) saleLine(res *lab.Result) string {
	w, ok := r.winner()
	if !ok {
		return "No buyer was told \"sold\"."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "At %s %s told %s \"sold\" (slot %d), %d round trips after %s's first request, counted along the messages that led to the answer",
		ms(w.At), node(w.Node), w.Buyer, w.Index, w.RoundTrips, w.Buyer)
	out, sold := 0, 0
	for _, a := range r.c.Answers() {
		if a.Sold {
			sold++
		} else {
			out++
		}
	}
	fmt.Fprintf(&b, "; %d other buyers were told \"sold out\"", out)
	if sold > 1 {
		fmt.Fprintf(&b, ", and %d more were told \"sold\"", sold-1)
	}
	if res.Unavailable > 0 {
		fmt.Fprintf(&b, "; tries that got no answer cover %s", ms(res.Unavailable))
	}
	return b.String() + "."
}

// endLine tells what the final read and the replicas said.
func (r *run) endLine(res *lab.Result) string {
	owners := r.c.Owners()
	agree := true
	for _, o := range owners {
		agree = agree && o == owners[0]
	}
	read := "the final read through the leader got no answer"
	if _, ok := r.c.FinalRead(); ok {
		read = fmt.Sprintf("a read through the leader says %s owns the phone", ownerName(res.Owner))
	}
	if agree {
		return fmt.Sprintf("After healing, %s, and all %d replicas agree.", read, len(owners))
	}
	var parts []string
	for i, o := range owners {
		parts = append(parts, node(r.ids[i])+": "+ownerName(o))
	}
	return fmt.Sprintf("After healing, %s; the replicas say %s.", read, strings.Join(parts, ", "))
}

func ownerName(o string) string {
	if o == "" {
		return "no one"
	}
	return o
}
