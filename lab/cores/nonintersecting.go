package cores

import (
	"fmt"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/quorum"
)

// Design 10d, the canary of design 10: a geometry whose quorums need not
// meet. "flexible:2,2" on five replicas takes any 2 nodes for phase 1 and
// any 2 for phase 2; package quorum builds it (quorum.New refuses only
// what cannot be laid out) and its proof rejects it with a counterexample,
// a phase-1 quorum and a phase-2 quorum that share no node. The Raft core
// refuses to start on it (raft checks the proof when it bootstraps); the
// Multi-Paxos core checks the proof on a proposed configuration change
// (ProposeConfig) but not on the founding configuration of
// paxos.Bootstrap, so the run starts Multi-Paxos on it. A partition then
// separates the counterexample's phase-1 quorum from the other nodes for
// the whole sale: each side elects a leader, phase 1 on one side never
// hears of what phase 2 chose on the other, and each sells the phone.
const (
	// nonFaults is how long the partition lasts.
	nonFaults = 2 * time.Second
	// nonArrive spreads the buyers over the first 1.5s, after both
	// sides have had time to elect a leader.
	nonArrive = 1500 * time.Millisecond
	// nonGeometry is the geometry of the canary.
	nonGeometry = "flexible:2,2"
)

// NonIntersecting is design 10d: quorums that do not intersect sell
// twice.
func NonIntersecting(seed uint64) (*lab.Result, error) {
	m := replsim.Majority(1, 2, 3, 4, 5)
	m.Geometry = nonGeometry
	sys, err := m.System()
	if err != nil {
		return nil, err
	}
	rep, err := quorum.Prove(sys)
	if err != nil {
		return nil, err
	}
	if rep.Intersect {
		return nil, fmt.Errorf("lab: %s was meant to fail the proof", m)
	}
	ce := rep.Counterexample
	var rest []uint64
	for _, id := range m.IDs() {
		if !contains(ce.A, id) {
			rest = append(rest, id)
		}
	}
	res := &lab.Result{
		Design: "Five replicas on the product's Multi-Paxos core with flexible:2,2 quorums: any 2 nodes are a phase-1 " +
			"quorum and any 2 a phase-2 quorum, so a leader needs only 2 promises and each slot only 2 acceptances. " +
			"Two such quorums can be disjoint, and then a new leader's phase 1 can miss a value phase 2 chose.",
		Fault: fmt.Sprintf("A partition splits %s from %s for %s, while the buyers ask.", nodes(ce.A), nodes(rest), ms(nonFaults)),
	}
	d := design{
		proto: paxosProtocol(),
		sc: replsim.Scenario{
			Name: "nonintersecting", Init: m, NoNemesis: true, Duration: nonFaults, KeepGoing: true,
		},
		arrive:    nonArrive,
		stopAfter: logStopAfter,
		broken:    true,
		faults: func(r *run) {
			r.sale.Sim.Net().Partition(sim.Split(ids(ce.A), ids(rest)))
		},
	}
	r, err := d.run(seed, res)
	if err != nil {
		return nil, err
	}
	res.Story = append(res.Story, fmt.Sprintf("Package quorum's proof rejects %s: phase-1 quorum %s and phase-2 quorum %s "+
		"share no node; the Multi-Paxos core took it as its founding configuration all the same.", m, nodes(ce.A), nodes(ce.B)))
	if len(res.ToldSold) > 1 {
		var who []string
		for _, a := range r.c.Answers() {
			if a.Sold {
				who = append(who, fmt.Sprintf("%s told %s \"sold\" at %s", node(a.Node), a.Buyer, ms(a.At)))
			}
		}
		res.Story = append(res.Story, fmt.Sprintf("Each side elected its own leader and sold the phone: %s.", join(who)))
	} else {
		res.Story = append(res.Story, r.saleLine(res))
	}
	if r.failure != nil {
		what, _, _ := strings.Cut(r.failure.Err.Error(), ":")
		res.Story = append(res.Story, fmt.Sprintf("The simulator's own checks caught it too (%s): %s.", r.failure.Kind, what))
	}
	res.Story = append(res.Story, r.endLine(res))
	return res, nil
}

func ids(xs []uint64) []sim.NodeID {
	out := make([]sim.NodeID, len(xs))
	for i, x := range xs {
		out[i] = sim.NodeID(x)
	}
	return out
}

func join(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	out := parts[0]
	for _, p := range parts[1 : len(parts)-1] {
		out += ", " + p
	}
	return out + " and " + parts[len(parts)-1]
}
