// Package lab runs the designs of the article quorumkv grows out of
// ("Paxos从入门到学会Raft") as a flash sale, breaks them with the faults
// that break them, and counts the damage: one phone, B buyers with unique
// names racing to buy it, and the question every design must answer
// truthfully: who bought the phone?
//
// A [Scenario] is one design of the article's road. It runs in the
// deterministic simulator (internal/sim), so every anomaly it shows
// replays from its seed, and some scenarios also run against a real
// cluster through the Go client. Either way the run ends in a [Result]:
// the counts (phones sold, buyers told "sold", double sales, acknowledged
// sales lost, time unavailable, messages, round trips per sale), a
// [Verdict], a short story, and a [Timeline] that [SVG] draws.
//
// The toy designs live in lab/toy, the runs of the product's own cores in
// lab/cores, the runs against a cluster in lab/cluster, and the list of
// every scenario in lab/road.
package lab

import (
	"context"
	"time"
)

// Verdict is what a run showed, worst first: a design that sold twice is
// broken whatever else it did.
type Verdict string

// The verdicts, in the order Worst ranks them.
const (
	// SoldTwice: more than one buyer was told "sold".
	SoldTwice Verdict = "sells twice"
	// LostSale: a buyer was told "sold", and the system later says the
	// phone is someone else's, or no one's.
	LostSale Verdict = "loses a sale"
	// Diverged: the replicas disagree about the owner at the end, after
	// every fault healed, and nothing will reconcile them.
	Diverged Verdict = "replicas disagree"
	// Stopped: the system could not sell (buyers got no answer) for a
	// noticeable time while a fault lasted that the design is meant to
	// survive.
	Stopped Verdict = "stops selling"
	// Correct: exactly one buyer told "sold", that sale kept, the replicas
	// agree, and the system kept selling.
	Correct Verdict = "correct"
)

// rank orders verdicts from worst (0) to best.
func (v Verdict) rank() int {
	switch v {
	case SoldTwice:
		return 0
	case LostSale:
		return 1
	case Diverged:
		return 2
	case Stopped:
		return 3
	default:
		return 4
	}
}

// Result is what one run of a scenario showed. Times are virtual in the
// simulator and wall-clock against a cluster.
type Result struct {
	Scenario string `json:"scenario"`          // the scenario's Name
	Number   int    `json:"number"`            // its place on the road, 1-11
	Variant  string `json:"variant,omitempty"` // "a", "b" ... when a design has several faults
	Title    string `json:"title"`
	Where    string `json:"where"` // "sim" or "cluster"
	Seed     uint64 `json:"seed,string"`
	Design   string `json:"design"` // what the design does, one paragraph
	Fault    string `json:"fault"`  // the fault injected, one sentence

	Buyers int `json:"buyers"`
	// PhonesSold is how many distinct buyers the replicas name as the
	// owner at the end (after the faults healed): more than 1 is a phone
	// sold twice in the records, 0 with a buyer told "sold" a lost sale.
	// On a cluster, whose replicas a client cannot ask one by one, it is
	// 1 if the final read names an owner and 0 if not.
	PhonesSold int `json:"phones_sold"`
	// ToldSold are the buyers told "sold", in the order they were told.
	ToldSold []string `json:"told_sold"`
	// DoubleSales counts the buyers told "sold" beyond the first.
	DoubleSales int `json:"double_sales"`
	// LostSales counts the buyers told "sold" whom the system, read after
	// the faults healed, does not name as the owner.
	LostSales int `json:"lost_sales"`
	// Owner is the owner a final read after healing returned ("" if none).
	Owner string `json:"owner"`
	// Unavailable is the time during which buyers asked and got no answer
	// (an error or a timeout): the union of their failed attempts.
	Unavailable time.Duration `json:"unavailable_ns,string"`
	// Messages is every message sent between nodes and buyers.
	Messages int `json:"messages"`
	// RoundTrips is the mean number of sequential network round trips a
	// buyer's successful attempt waited for (0 when no one was told
	// "sold").
	RoundTrips float64 `json:"round_trips_per_sale"`
	// Duration is how long the run lasted.
	Duration time.Duration `json:"duration_ns,string"`

	Verdict Verdict `json:"verdict"`
	// Story is the account of the run, a few sentences, naming what broke.
	Story []string `json:"story"`
	// Timeline is the picture's data.
	Timeline Timeline `json:"timeline"`
}

// Judge sets Verdict from the counts: double sales first, then lost sales,
// then replicas that disagree, then unavailability of at least stopAfter
// (0: any). Scenarios that expect a stop call it with the fault's length
// in mind.
func (r *Result) Judge(diverged bool, stopAfter time.Duration) {
	r.DoubleSales = max(0, len(r.ToldSold)-1)
	switch {
	case r.DoubleSales > 0:
		r.Verdict = SoldTwice
	case r.LostSales > 0:
		r.Verdict = LostSale
	case diverged:
		r.Verdict = Diverged
	case r.Unavailable > stopAfter || (len(r.ToldSold) == 0 && r.Owner == ""):
		r.Verdict = Stopped
	default:
		r.Verdict = Correct
	}
}

// Worst returns the worse of two verdicts.
func Worst(a, b Verdict) Verdict {
	if a.rank() <= b.rank() {
		return a
	}
	return b
}

// Timeline is a run as the picture draws it: one lane per node and buyer,
// the messages that mattered as arrows, and the moments that mattered.
type Timeline struct {
	Lanes  []string      `json:"lanes"` // top to bottom: servers, then buyers
	End    time.Duration `json:"end_ns,string"`
	Events []Event       `json:"events"`
}

// EventKind says how an Event is drawn.
type EventKind string

// The kinds of timeline events.
const (
	// Message: an arrow from Lane at At to To at Arrive (Arrive 0: lost).
	Message EventKind = "message"
	// Crash, Restart: a node died or came back; Pause, Resume likewise.
	Crash   EventKind = "crash"
	Restart EventKind = "restart"
	Pause   EventKind = "pause"
	Resume  EventKind = "resume"
	// Cut and Heal: a network fault began or ended (Lane empty: all).
	Cut  EventKind = "cut"
	Heal EventKind = "heal"
	// Sold: a buyer was told "sold"; Refused: told "sold out"; NoAnswer:
	// an attempt ended in an error or timeout.
	Sold     EventKind = "sold"
	Refused  EventKind = "refused"
	NoAnswer EventKind = "no-answer"
	// Broke: the moment the design broke (Label says how).
	Broke EventKind = "broke"
	// Note: anything else worth a mark.
	Note EventKind = "note"
)

// Event is one mark on the timeline.
type Event struct {
	At     time.Duration `json:"at_ns,string"`
	Kind   EventKind     `json:"kind"`
	Lane   string        `json:"lane,omitempty"`
	To     string        `json:"to,omitempty"`     // Message: the receiver's lane
	Arrive time.Duration `json:"arrive_ns,string"` // Message: delivery time, 0 if lost
	Label  string        `json:"label,omitempty"`
}

// Scenario is one design of the article's road.
type Scenario struct {
	Number  int
	Variant string // "a", "b" ... when one design is run under several faults
	Name    string // the command-line name: kvctl lab NAME
	Title   string
	Article string // the article's section it makes real
	// Expect is the verdict the design earns under its fault on most
	// seeds: Correct for the designs that are.
	Expect Verdict
	// Sim runs the design in the simulator from seed.
	Sim func(seed uint64) (*Result, error)
	// Cluster, if set, runs the design against a real cluster.
	Cluster func(ctx context.Context, t Target) (*Result, error)
}

// Target is a real cluster to run against.
type Target struct {
	Endpoints []string
	// Token and TLS settings come with the client the caller built.
	Client any // *client.Client; any keeps this package free of the client
	// Buyers is how many buyers race (0: the scenario's default).
	Buyers int
	// Nemesis, if set, can hurt the cluster's nodes: nil means the
	// environment allows no faults, and the run says so.
	Nemesis Nemesis
	// Logf reports progress; nil is quiet.
	Logf func(format string, args ...any)
}

// Nemesis hurts the nodes of a real cluster, for runs whose environment
// allows it (nodes the lab started itself).
type Nemesis interface {
	// Nodes names the nodes that can be hurt, in order.
	Nodes() []string
	// Kill stops a node at once (SIGKILL); Restart starts it again.
	Kill(node string) error
	Restart(node string) error
	// Pause freezes a node (SIGSTOP) and Resume thaws it (SIGCONT).
	Pause(node string) error
	Resume(node string) error
}
