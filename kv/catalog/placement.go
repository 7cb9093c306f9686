package catalog

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/quorum"
)

// Candidate is a live node placement may put a replica on.
type Candidate struct {
	ID     uint64
	Zone   string
	Weight int
	// Replicas is how many replicas the node holds already: placement
	// prefers the least loaded.
	Replicas int
}

// ErrNotEnoughNodes marks a placement that needs more live nodes than
// there are; the API maps it to FailedPrecondition.
var ErrNotEnoughNodes = fmt.Errorf("not enough live nodes")

// Place picks n of the candidates for one range: zones are taken in turn,
// so that replicas spread over as many zones as there are, and within a
// zone the least loaded node goes first (ties by ID, so every node that
// runs placement on the same input picks the same nodes). The result is
// in the order a geometry lays voters out: round by round across zones,
// which puts one zone's nodes in different grid rows.
//
// Place does not modify candidates.
func Place(candidates []Candidate, n int) ([]Candidate, error) {
	if n > len(candidates) {
		return nil, fmt.Errorf("%w: %d replicas need %d live nodes, the cluster has %d", ErrNotEnoughNodes, n, n, len(candidates))
	}
	byZone := map[string][]Candidate{}
	for _, c := range candidates {
		byZone[c.Zone] = append(byZone[c.Zone], c)
	}
	zones := make([]string, 0, len(byZone))
	for z, cs := range byZone {
		slices.SortFunc(cs, func(a, b Candidate) int {
			return cmp.Or(cmp.Compare(a.Replicas, b.Replicas), cmp.Compare(a.ID, b.ID))
		})
		zones = append(zones, z)
	}
	// The least loaded zones lead, so that load evens out across zones too.
	load := func(z string) int { return byZone[z][0].Replicas }
	slices.SortFunc(zones, func(a, b string) int { return cmp.Or(cmp.Compare(load(a), load(b)), cmp.Compare(a, b)) })

	out := make([]Candidate, 0, n)
	for round := 0; len(out) < n; round++ {
		for _, z := range zones {
			if round < len(byZone[z]) && len(out) < n {
				out = append(out, byZone[z][round])
			}
		}
	}
	return out, nil
}

// ProveOn builds the keyspace's geometry on the chosen replicas and proves
// it safe for the keyspace's mode. The error carries the counterexample.
func (d *KeyspaceDescriptor) ProveOn(replicas []Candidate) (quorum.System, *quorum.Report, error) {
	nodes := make([]quorum.Node, len(replicas))
	for i, r := range replicas {
		nodes[i] = quorum.Node{ID: r.ID, Zone: r.Zone, Weight: r.Weight}
	}
	geometry := d.Quorum
	if d.Mode == ModeEventual && d.W > 0 {
		// Size-based eventual keyspaces read R and write W replicas.
		geometry = fmt.Sprintf("flexible:%d,%d", d.R, d.W)
	}
	sys, err := quorum.Parse(geometry, nodes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: keyspace %s: %v", ErrInvalidArgument, d.Name, err)
	}
	report, err := quorum.Prove(sys)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: keyspace %s: %v", ErrInvalidArgument, d.Name, err)
	}
	if ok, why := report.Safe(quorum.Protocol(d.Mode)); !ok {
		c := report.Counterexample
		return nil, report, fmt.Errorf("%w: keyspace %s: geometry %s is unsafe for %s on nodes %v: %s: phase-1 quorum %v and phase-2 quorum %v share no node",
			ErrInvalidArgument, d.Name, d.Quorum, d.Mode, report.Voters, why, c.A, c.B)
	}
	return sys, report, nil
}
