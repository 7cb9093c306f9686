package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/quorum"
)

// geometry is one round of Geometries: a quorum geometry and the
// replicas its keyspace needs, or why the cluster cannot carry it.
type geometry struct {
	spec     string
	replicas int
	skip     string // why the round is skipped ("" if it runs)
}

// geometries lists the rounds for a cluster of live nodes: weighted votes
// on every node (3 at least), zones on every node when 3 zones hold 2
// nodes each at least, and a 3x3 grid on 9 nodes.
func geometries(live []*v1.Member) []geometry {
	n := len(live)
	weighted := geometry{spec: "weighted", replicas: n}
	if n < 3 {
		weighted.skip = fmt.Sprintf("weighted needs 3 nodes, the cluster has %d", n)
	}
	perZone := map[string]int{}
	var zones []string
	for _, m := range live {
		if perZone[m.Zone] == 0 {
			zones = append(zones, m.Zone)
		}
		perZone[m.Zone]++
	}
	zoned := geometry{spec: "zones", replicas: n}
	if len(zones) < 3 || slices.ContainsFunc(zones, func(z string) bool { return perZone[z] < 2 }) {
		var counts []string
		for _, z := range zones {
			counts = append(counts, fmt.Sprintf("%s %d", z, perZone[z]))
		}
		zoned.skip = fmt.Sprintf("zones needs 3 zones of 2 nodes at least, the cluster's zones hold %s", strings.Join(counts, ", "))
	}
	grid := geometry{spec: "grid:3x3", replicas: 9}
	if n < 9 {
		grid.skip = fmt.Sprintf("grid:3x3 needs 9 nodes, the cluster has %d", n)
	}
	return []geometry{weighted, zoned, grid}
}

// Geometries runs design 10 against a cluster: one paxos keyspace per
// quorum geometry the cluster can carry (geometries), each with one
// range. With a nemesis, each round kills the largest set of the range's
// replicas whose loss leaves both a phase-1 and a phase-2 quorum
// (survivable, computed with package quorum), the range's leader among
// them when such a set of that size holds it, sells the phone to buyers
// who start together, then restarts the killed nodes and reads the owner.
// Without a nemesis the rounds run without faults.
//
// Each round sells its own phone. The result's counts are those of the
// worst round (the first of those equally bad); the story gives every
// round and every geometry skipped, and the timeline holds every round,
// its events labelled with the geometry.
func Geometries(ctx context.Context, t lab.Target) (res *lab.Result, err error) {
	cl, err := clientOf(t)
	if err != nil {
		return nil, err
	}
	live, err := members(ctx, cl)
	if err != nil {
		return nil, err
	}
	buyers := buyersOf(t)
	r := newRun(t)
	var shops []*shop
	var story, skipped []string
	for _, g := range geometries(live) {
		if g.skip != "" {
			skipped = append(skipped, g.skip)
			continue
		}
		s, line, err := geometryRound(ctx, cl, t, r, live, g, buyers)
		if err != nil {
			return nil, err
		}
		shops = append(shops, s)
		story = append(story, line)
	}
	if len(shops) == 0 {
		return nil, fmt.Errorf("lab/cluster: no geometry fits this cluster: %s", strings.Join(skipped, "; "))
	}
	if t.Nemesis == nil {
		story = append(story, noFaults+".")
	}
	if len(skipped) > 0 {
		story = append(story, "Skipped: "+strings.Join(skipped, "; ")+".")
	}
	res = &lab.Result{
		Design: "One paxos keyspace per quorum geometry the cluster can carry: weighted votes (more than half of all votes), " +
			"zones (phase 1 a node in every zone, phase 2 every node of one zone), a 3x3 grid (phase 1 a row, phase 2 a column). " +
			"Any phase-1 quorum meets any phase-2 quorum, so a new leader always hears of a sale; each geometry trades quorum size against the failures it survives. " +
			"Buyers order with compare-and-swap if absent.",
		Fault:  "In each round, the largest set of replicas whose loss leaves a phase-1 and a phase-2 quorum is killed (SIGKILL) before the sale opens, the leader among them when it can be, and restarted after it.",
		Buyers: len(buyers),
	}
	if t.Nemesis == nil {
		res.Fault = "No fault: this environment cannot hurt the nodes."
	}
	lanes := append(nodeLanes(t.Nemesis, live), buyers...)
	return r.finish(res, lanes, shops, story), nil
}

// geometryRound runs one round of Geometries and says in a sentence what
// happened.
func geometryRound(ctx context.Context, cl *client.Client, t lab.Target, r *run, live []*v1.Member, g geometry, buyers []string) (s *shop, line string, err error) {
	ks := keyspaceName("geo-" + strings.NewReplacer(":", "", "x", "by").Replace(g.spec))
	if err := createKeyspace(ctx, cl, &v1.Keyspace{Name: ks, Mode: v1.Mode_MODE_PAXOS, Replicas: uint32(g.replicas), Quorum: g.spec}); err != nil {
		return nil, "", err
	}
	defer func() { err = errors.Join(err, dropKeyspace(ctx, cl, ks)) }()
	rg, err := firstRange(ctx, cl, ks)
	if err != nil {
		return nil, "", err
	}
	sys, voters, err := systemOf(g.spec, rg, live)
	if err != nil {
		return nil, "", err
	}
	s = newShop(r, g.spec, ks)
	line = fmt.Sprintf("Geometry %s on %s (phase 1: %s; phase 2: %s)", g.spec, strings.Join(voters, ", "), sys.Describe(quorum.Phase1), sys.Describe(quorum.Phase2))

	var f *faults
	if t.Nemesis != nil {
		f = &faults{run: r, nem: t.Nemesis}
		leader := slices.Index(voters, rg.Leader) + 1 // quorum IDs are 1..n in replica order; 0: unknown
		var dead []string
		for _, id := range survivable(sys, uint64(leader)) {
			dead = append(dead, voters[id-1])
		}
		for _, n := range dead {
			if err := f.kill(n); err != nil {
				return nil, "", errors.Join(err, f.heal())
			}
		}
		line += fmt.Sprintf(": killed %s", names(dead))
		if slices.Contains(dead, rg.Leader) {
			line += fmt.Sprintf(" (%s led the range)", rg.Leader)
		}
	}
	race(ctx, buyers, nil, func(ctx context.Context, buyer string) { s.buyCAS(ctx, cl, buyer, impatient) })
	if f != nil {
		if err := f.heal(); err != nil {
			return nil, "", err
		}
	}
	if s.owner, err = readOwner(ctx, cl, ks, client.Quorum{}, time.Now().Add(15*time.Second)); err != nil {
		return nil, "", err
	}
	s.resolve()
	return s, line + "; " + s.tally(len(buyers)) + ".", nil
}

// systemOf builds the range's geometry as the servers do: its replicas in
// order, with their zones and weights, as quorum IDs 1..n. It returns the
// replicas' names too, by ID-1.
func systemOf(spec string, rg *v1.Range, live []*v1.Member) (quorum.System, []string, error) {
	byName := map[string]*v1.Member{}
	for _, m := range live {
		byName[m.NodeId] = m
	}
	var nodes []quorum.Node
	var voters []string
	for i, rep := range rg.Replicas {
		m, ok := byName[rep.NodeId]
		if !ok {
			return nil, nil, fmt.Errorf("lab/cluster: replica %s of %s is not a live member", rep.NodeId, rg.Keyspace)
		}
		nodes = append(nodes, quorum.Node{ID: uint64(i + 1), Zone: m.Zone, Weight: int(max(m.Weight, 1))})
		voters = append(voters, rep.NodeId)
	}
	sys, err := quorum.Parse(spec, nodes)
	if err != nil {
		return nil, nil, fmt.Errorf("lab/cluster: geometry %s on %v: %w", spec, voters, err)
	}
	return sys, voters, nil
}

// survivable returns the largest set of sys's voters whose failure leaves
// both a phase-1 quorum (to elect a leader) and a phase-2 quorum (to
// accept) among the others; of the sets of that size, one that holds
// prefer when there is one. It returns nil when no voter can fail. It enumerates every subset: sys has at most
// quorum.MaxProofVoters voters, as every geometry a keyspace was created
// with has (the servers proved it).
func survivable(sys quorum.System, prefer uint64) []uint64 {
	voters := sys.Voters()
	pos := map[uint64]int{}
	for i, id := range voters {
		pos[id] = i
	}
	var best uint64
	size, holds := 0, false
	for m := uint64(1); m < 1<<len(voters); m++ {
		alive := func(id uint64) bool { return m&(1<<pos[id]) == 0 }
		if !sys.IsQuorum(quorum.Phase1, alive) || !sys.IsQuorum(quorum.Phase2, alive) {
			continue
		}
		p, voter := pos[prefer]
		n, h := bits.OnesCount64(m), voter && m&(1<<p) != 0
		if n > size || (n == size && h && !holds) {
			best, size, holds = m, n, h
		}
	}
	var dead []uint64
	for i, id := range voters {
		if best&(1<<i) != 0 {
			dead = append(dead, id)
		}
	}
	return dead
}
