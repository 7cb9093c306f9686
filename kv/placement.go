package kv

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/store"
)

// The placement driver keeps every range's replicas on live nodes and
// spread over them. Meta's leader runs it (the catalog changes only
// through meta's log), once a second:
//
//  1. Moves off nodes that must give their replicas up: a node gossip has
//     seen dead for longer than DeadAfter, one an operator removed
//     (Node.RemoveNode), one being decommissioned (Node.Decommission). Each
//     replica goes to a live node the range does not use yet
//     (catalog.MoveReplica), chosen and proven as at keyspace creation.
//  2. Growth of the keyspaces whose N is below their GrowTo (the default
//     keyspace, as nodes join).
//  3. Rebalancing: while one live node holds two replicas of a keyspace
//     more than another, one moves (planRebalance).
//
// A move is only the catalog's intent. The old replica is kept as
// leaving (catalog.RangeDescriptor.Leaving) and keeps serving; the new
// node starts an empty replica, and the range's leader brings its Raft
// configuration to the catalog's (kv/store/rangedriver.go: a learner
// caught up by the log or a snapshot, then promoted while the old voter
// leaves, in one joint change); a paxos range's leader swaps the replica
// in its configuration through the range's log, and sends the new one,
// a joining acceptor, a snapshot (kv/store/paxosdriver.go); an eventual
// range's new replica gets its records by anti-entropy, the leaving one
// pushing its own, and counts toward reads only once it has
// (kv/eventual/fill.go: it answers fillAsks, and meta's leader proposes
// catalog.CatalogOp.Filled). Once the
// range has let the leaving replica go (letGo asks its replicas), meta's
// leader drops it (catalog.CatalogOp.Left) and its node deletes it. A
// decommissioned node that holds no replica and is not one of meta's
// voters (kv/store/metadriver.go swaps it out) is then marked removed.
//
// At most MaxMovesPerPass moves are in flight at once (leaving replicas
// not yet let go), one per range.

// Defaults of the placement driver.
const (
	// DefaultDeadAfter is how long a node must stay dead before its
	// replicas are moved: long enough that a restart or a short network
	// cut costs no data movement (CockroachDB's
	// server.time_until_store_dead is 5 minutes as well).
	DefaultDeadAfter = 5 * time.Minute
	// DefaultMaxMovesPerPass bounds the moves in flight (proposed, and
	// their leaving replicas not yet let go), so that a dead or
	// decommissioned node's replicas move a few at a time and their
	// snapshots do not starve client traffic.
	DefaultMaxMovesPerPass = 4
	// placementInterval is the time between two passes in kvd.
	placementInterval = time.Second
)

// placer is the placement driver's memory: when this node first saw each
// node dead (observeLiveness, on every pass of every node, leading meta
// or not, so that a node which died, came back and died again is counted
// from its last death).
type placer struct {
	deadAfter time.Duration
	maxMoves  int
	mu        struct {
		sync.Mutex
		deadSince map[uint64]int64 // node ID -> physical clock reading
	}
}

func newPlacer(deadAfter time.Duration, maxMoves int) *placer {
	p := &placer{deadAfter: cmp.Or(deadAfter, DefaultDeadAfter), maxMoves: cmp.Or(maxMoves, DefaultMaxMovesPerPass)}
	p.mu.deadSince = map[uint64]int64{}
	return p
}

// planGrowth returns the growth of a keyspace whose N is below its GrowTo
// (the default keyspace as nodes join), once GrowTo nodes are alive and
// none of its replicas is on a node that is not: every range gets its new
// replicas at once, each on a live node the range does not use, spread
// over the zones its replicas do not use yet, and proven for the
// keyspace. It never grows a range to two replicas, which stop when
// either fails where one stops only when it does: from one it goes
// straight to GrowTo. nil when there is nothing to grow.
func (n *Node) planGrowth() *catalog.GrowKeyspace {
	cat := n.store.Catalog()
	candidates := n.candidates()
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		ks := cat.Keyspaces[name]
		if ks.GrowTo <= ks.Replicas || len(candidates) < ks.GrowTo {
			continue
		}
		g := &catalog.GrowKeyspace{Keyspace: name, Replicas: ks.GrowTo}
		for _, r := range cat.Ranges[name] {
			if !n.allAlive(r) {
				return nil // repair comes first
			}
			grown := *r
			grown.Replicas = slices.Clone(r.Replicas)
			var add []catalog.ReplicaDescriptor
			for len(grown.Replicas) < ks.GrowTo {
				to, ok := pickReplacement(candidates, &grown, -1, false)
				if !ok {
					return nil
				}
				rep := catalog.ReplicaDescriptor{NodeID: to.ID, Zone: to.Zone, Weight: to.Weight}
				grown.Replicas = append(grown.Replicas, rep)
				add = append(add, rep)
				addLoad(candidates, to.ID)
			}
			if _, _, err := ks.ProveOn(asCandidates(grown.Replicas)); err != nil {
				n.store.Logger.Warn("the keyspace cannot grow: a new replica set would not be safe", "keyspace", name, "range", r.ID, "err", err)
				return nil
			}
			g.Add = append(g.Add, catalog.RangeReplicas{Range: r.ID, Replicas: add})
		}
		return g
	}
	return nil
}

// observeLiveness records, at time now, when this node first saw each
// catalog node dead, and forgets the ones seen alive (or gone from the
// catalog). Every pass runs it, on every node.
func (n *Node) observeLiveness(now int64) {
	p := n.placer
	cat := n.store.Catalog()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.mu.deadSince {
		if _, ok := cat.Nodes[id]; !ok {
			delete(p.mu.deadSince, id)
		}
	}
	for id, nd := range cat.Nodes {
		switch _, seen := p.mu.deadSince[id]; {
		case n.alive(nd):
			delete(p.mu.deadSince, id)
		case !seen:
			p.mu.deadSince[id] = now
		}
	}
}

// mustGoAt reports whether node id's replicas must move away at time now:
// it is dead for good, or decommissioning.
func (n *Node) mustGoAt(id uint64, now int64) bool {
	return n.store.Catalog().Nodes[id].Decommissioning || n.deadForGoodAt(id, now)
}

// deadForGood reports whether node id was removed, or has been seen dead
// for longer than DeadAfter (observeLiveness keeps the count).
func (n *Node) deadForGood(id uint64) bool { return n.deadForGoodAt(id, n.clock()) }

func (n *Node) deadForGoodAt(id uint64, now int64) bool {
	if n.store.Catalog().Nodes[id].Removed {
		return true // an operator said it is gone: no wait
	}
	p := n.placer
	p.mu.Lock()
	defer p.mu.Unlock()
	since, ok := p.mu.deadSince[id]
	return ok && time.Duration(now-since) >= p.deadAfter
}

// movesInFlight counts the catalog's leaving replicas on live nodes:
// moves proposed whose range has not let the old replica go yet, and
// whose old replica still runs. One on a dead node costs nothing more
// (the range leader's bound on learners, store.MaxCatchingUp, paces its
// snapshots), and may never be let go (a range whose only voter died
// while it grew), so it must not hold up the moves of others.
func (n *Node) movesInFlight() int {
	cat := n.store.Catalog()
	count := 0
	for _, ranges := range cat.Ranges {
		for _, r := range ranges {
			for _, l := range r.Leaving {
				if n.alive(cat.Nodes[l.NodeID]) {
					count++
				}
			}
		}
	}
	return count
}

// movable reports whether the placement driver may move a replica of r
// now: r is not meta's, and, unless the replica is on a node dead for
// good, has no move in flight.
// A dead node's replica moves even then: the move in flight may wait for
// that very replica (a learner on the dead node never catches up).
func movable(r *catalog.RangeDescriptor, dead bool) bool {
	return r.Keyspace != catalog.MetaKeyspace && (dead || len(r.Leaving) == 0)
}

// planMoves returns the moves of the replicas of the nodes that must give
// them up at time now (mustGoAt), at most budget of them and one per
// range; each new replica set is proven safe for its keyspace.
func (n *Node) planMoves(now int64, budget int) []catalog.MoveReplica {
	cat := n.store.Catalog()
	gone := map[uint64]bool{}
	for id := range cat.Nodes {
		if n.mustGoAt(id, now) {
			gone[id] = true
		}
	}
	if len(gone) == 0 || budget <= 0 {
		return nil
	}
	candidates := n.candidates()
	var moves []catalog.MoveReplica
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		ks := cat.Keyspaces[name]
		for _, r := range cat.Ranges[name] {
			if len(moves) >= budget {
				return moves
			}
			i := slices.IndexFunc(r.Replicas, func(rep catalog.ReplicaDescriptor) bool { return gone[rep.NodeID] })
			if i < 0 {
				continue
			}
			from := r.Replicas[i].NodeID
			if !movable(r, n.deadForGoodAt(from, now)) {
				continue
			}
			if len(r.Replicas) == 1 && !n.alive(cat.Nodes[from]) {
				// No replica is left to copy the range from: a new one would
				// stay empty, and the data comes back only with the node.
				n.store.Logger.Warn("the only replica of a range is on a dead node", "range", r.ID, "keyspace", name, "node-id", from)
				continue
			}
			to, ok := pickReplacement(candidates, r, i, true)
			if !ok {
				n.store.Logger.Warn("no live node can take a replica that must move", "range", r.ID, "keyspace", name, "from", from)
				continue
			}
			if m, ok := n.proveMove(ks, r, from, to); ok {
				moves = append(moves, m)
				addLoad(candidates, to.ID)
			}
		}
	}
	return moves
}

// proveMove returns the move of r's replica on node from to node to, if
// the replica set it makes is proven safe for keyspace ks.
func (n *Node) proveMove(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, from uint64, to catalog.Candidate) (catalog.MoveReplica, bool) {
	rest := slices.DeleteFunc(slices.Clone(r.Replicas), func(rep catalog.ReplicaDescriptor) bool { return rep.NodeID == from })
	if _, _, err := ks.ProveOn(append(asCandidates(rest), to)); err != nil {
		n.store.Logger.Warn("a replica cannot move: the new replica set would not be safe", "range", r.ID,
			"keyspace", ks.Name, "from", from, "to", to.ID, "err", err)
		return catalog.MoveReplica{}, false
	}
	return catalog.MoveReplica{Range: r.ID, From: from, To: catalog.ReplicaDescriptor{NodeID: to.ID, Zone: to.Zone, Weight: to.Weight}}, true
}

// planRebalance returns the moves, at most budget, that spread each
// keyspace's replicas over the live nodes that take replicas: while the
// most loaded holds at least two replicas of the keyspace more than the
// least loaded, one of its ranges that the least loaded does not hold
// moves there, if that keeps the range in as many zones and its new
// replica set is proven. It ends with no node more than one replica above
// another where such moves exist, so no node holds more than the
// rounded-up average plus one. A keyspace still to grow (GrowTo) waits
// for its growth. Leaderships are not balanced yet.
func (n *Node) planRebalance(budget int) []catalog.MoveReplica {
	cat := n.store.Catalog()
	candidates := n.candidates()
	if len(candidates) < 2 || budget <= 0 {
		return nil
	}
	var moves []catalog.MoveReplica
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		ks := cat.Keyspaces[name]
		if ks.GrowTo > ks.Replicas {
			continue // it grows once enough nodes are alive (planGrowth): spreading it first is wasted work
		}
		load := map[uint64]int{}
		for _, c := range candidates {
			load[c.ID] = 0
		}
		for _, r := range cat.Ranges[name] {
			for _, rep := range r.Replicas {
				if _, ok := load[rep.NodeID]; ok {
					load[rep.NodeID]++
				}
			}
		}
		moved := map[uint64]bool{} // ranges given a move this pass
		for len(moves) < budget {
			m, ok := n.rebalanceOne(ks, cat.Ranges[name], candidates, load, moved)
			if !ok {
				break
			}
			moves = append(moves, m)
			moved[m.Range] = true
			load[m.From]--
			load[m.To.NodeID]++
		}
	}
	return moves
}

// rebalanceOne finds one move of keyspace ks from its most loaded live
// node to a node holding two replicas fewer, trying the least loaded
// first.
func (n *Node) rebalanceOne(ks catalog.KeyspaceDescriptor, ranges []*catalog.RangeDescriptor, candidates []catalog.Candidate,
	load map[uint64]int, moved map[uint64]bool) (catalog.MoveReplica, bool) {
	byLoad := slices.Clone(candidates)
	slices.SortFunc(byLoad, func(a, b catalog.Candidate) int {
		return cmp.Or(cmp.Compare(load[a.ID], load[b.ID]), cmp.Compare(a.ID, b.ID))
	})
	from := byLoad[len(byLoad)-1]
	for _, to := range byLoad {
		if load[from.ID]-load[to.ID] < 2 {
			break
		}
		for _, r := range ranges {
			if moved[r.ID] || !movable(r, false) || !r.HasReplica(from.ID) || r.Holds(to.ID) || !n.allAlive(r) ||
				zoneCount(r.Replicas, from.ID, &to) < zoneCount(r.Replicas, 0, nil) {
				continue
			}
			if m, ok := n.proveMove(ks, r, from.ID, to); ok {
				return m, true
			}
		}
	}
	return catalog.MoveReplica{}, false
}

// allAlive reports whether gossip sees every replica of r alive: a range
// missing one is repaired (planMoves), never rebalanced.
func (n *Node) allAlive(r *catalog.RangeDescriptor) bool {
	cat := n.store.Catalog()
	return !slices.ContainsFunc(r.Replicas, func(rep catalog.ReplicaDescriptor) bool { return !n.alive(cat.Nodes[rep.NodeID]) })
}

// zoneCount counts the zones of reps without node without (0: none) and
// with add (nil: none).
func zoneCount(reps []catalog.ReplicaDescriptor, without uint64, add *catalog.Candidate) int {
	zones := map[string]bool{}
	for _, rep := range reps {
		if rep.NodeID != without {
			zones[rep.Zone] = true
		}
	}
	if add != nil {
		zones[add.Zone] = true
	}
	return len(zones)
}

// replicaAsk is a question the placement driver asks node To about a
// replica of a range: whether the range let it go, while it is leaving
// (letGoAsks), or whether it filled, while it is filling (fillAsks).
type replicaAsk struct {
	To      uint64
	Replica catalog.RangeReplica
	Fill    bool
}

// letGoAsks returns, for each leaving replica of the catalog, the
// replicas to ask whether its range has let it go: for a Raft or paxos
// range, every replica, any of which that applied a configuration without
// it says so (store.Store.LetGo); for an eventual range, the leaving node
// itself, once it handed its records off. A leaving eventual replica on
// a node dead for good has nothing left to hand: it is let go at once
// (gone).
func (n *Node) letGoAsks(now int64) (asks []replicaAsk, gone []catalog.RangeReplica) {
	cat := n.store.Catalog()
	for _, name := range slices.Sorted(maps.Keys(cat.Ranges)) {
		for _, r := range cat.Ranges[name] {
			for _, l := range r.Leaving {
				rr := catalog.RangeReplica{Range: r.ID, Node: l.NodeID}
				switch {
				case r.Mode != catalog.ModeEventual:
					for _, rep := range r.Replicas {
						asks = append(asks, replicaAsk{To: rep.NodeID, Replica: rr})
					}
				case n.deadForGoodAt(l.NodeID, now):
					gone = append(gone, rr)
				default:
					asks = append(asks, replicaAsk{To: l.NodeID, Replica: rr})
				}
			}
		}
	}
	return asks, gone
}

// fillAsks returns, for each filling replica of an eventual range on a
// live node, the question to its node: whether it filled
// (eventual.Coordinator.Filled).
func (n *Node) fillAsks() []replicaAsk {
	cat := n.store.Catalog()
	var asks []replicaAsk
	for _, name := range slices.Sorted(maps.Keys(cat.Ranges)) {
		for _, r := range cat.Ranges[name] {
			for _, rep := range r.Replicas {
				if rep.Filling && n.alive(cat.Nodes[rep.NodeID]) {
					asks = append(asks, replicaAsk{To: rep.NodeID, Replica: catalog.RangeReplica{Range: r.ID, Node: rep.NodeID}, Fill: true})
				}
			}
		}
	}
	return asks
}

// ask sends ask through the node's replica calls; answer gets its yes
// (false on an error), exactly once.
func (n *Node) ask(ask replicaAsk, answer func(bool)) {
	if ask.Fill {
		req := eventual.ReplicaRequest{Kind: eventual.ReqFilled, RangeID: ask.Replica.Range}
		n.ev.Net().Call(ask.To, req, func(a eventual.ReplicaAnswer) { answer(a.Err == nil && a.Filled) })
		return
	}
	req := eventual.ReplicaRequest{Kind: eventual.ReqLetGo, RangeID: ask.Replica.Range, Node: ask.Replica.Node}
	n.ev.Net().Call(ask.To, req, func(a eventual.ReplicaAnswer) { answer(a.Err == nil && a.LetGo) })
}

// askAll asks asks' questions and returns the replicas of those answered
// yes, with yes's, in order, once every answer came (each within the
// replica timeout) or ctx ended.
func (n *Node) askAll(ctx context.Context, asks []replicaAsk, yes ...catalog.RangeReplica) []catalog.RangeReplica {
	said := make(chan catalog.RangeReplica, len(asks))
	var wg sync.WaitGroup
	wg.Add(len(asks))
	for _, a := range asks {
		n.ask(a, func(ok bool) {
			if ok {
				said <- a.Replica
			}
			wg.Done()
		})
	}
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-ctx.Done():
	}
	set := map[catalog.RangeReplica]bool{}
	for _, rr := range yes {
		set[rr] = true
	}
	for len(said) > 0 {
		set[<-said] = true
	}
	return slices.SortedFunc(maps.Keys(set), func(a, b catalog.RangeReplica) int {
		return cmp.Or(cmp.Compare(a.Range, b.Range), cmp.Compare(a.Node, b.Node))
	})
}

// decommissioned returns the decommissioning nodes that hold no replica,
// leaving or not, and are not among meta's voters: the ones to mark
// removed.
func (n *Node) decommissioned() []uint64 {
	cat := n.store.Catalog()
	var out []uint64
	for _, id := range slices.Sorted(maps.Keys(cat.Nodes)) {
		if nd := cat.Nodes[id]; nd.Decommissioning && !nd.Removed && replicasHeld(cat, id) == 0 && !slices.Contains(n.store.MetaVoters(), id) {
			out = append(out, id)
		}
	}
	return out
}

// replicasHeld counts the replicas node id runs, leaving ones included
// (meta aside).
func replicasHeld(cat *store.CatalogView, id uint64) int {
	count := 0
	for name, ranges := range cat.Ranges {
		if name == catalog.MetaKeyspace {
			continue
		}
		for _, r := range ranges {
			if r.Holds(id) {
				count++
			}
		}
	}
	return count
}

// plan is one pass of the placement driver on meta's leader, at time now:
// the catalog changes to propose, in order (see the top of this file).
func (n *Node) plan(now int64) []catalog.CatalogOp {
	var ops []catalog.CatalogOp
	for _, id := range n.decommissioned() {
		ops = append(ops, catalog.CatalogOp{RemoveNode: id})
	}
	budget := n.placer.maxMoves - n.movesInFlight()

	moves := n.planMoves(now, budget)
	if len(moves) == 0 {
		if g := n.planGrowth(); g != nil {
			return append(ops, catalog.CatalogOp{Grow: g})
		}
		moves = n.planRebalance(budget)
	}
	for _, m := range moves {
		ops = append(ops, catalog.CatalogOp{Move: &m})
	}
	return ops
}

// asCandidates lays a replica set out as placement candidates, in its
// order, for ProveOn.
func asCandidates(reps []catalog.ReplicaDescriptor) []catalog.Candidate {
	out := make([]catalog.Candidate, len(reps))
	for i, rep := range reps {
		out[i] = catalog.Candidate{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight}
	}
	return out
}

// addLoad counts one more replica on node id among the candidates.
func addLoad(candidates []catalog.Candidate, id uint64) {
	for i := range candidates {
		if candidates[i].ID == id {
			candidates[i].Replicas++
		}
	}
}

// underReplicated counts the catalog's ranges (meta aside) that have a
// replica on a node gossip sees dead.
func (n *Node) underReplicated() int {
	cat := n.store.Catalog()
	alive := make(map[uint64]bool, len(cat.Nodes)) // once per node, not per replica
	for id, nd := range cat.Nodes {
		alive[id] = n.alive(nd)
	}
	count := 0
	for name, ranges := range cat.Ranges {
		if name == catalog.MetaKeyspace {
			continue
		}
		for _, r := range ranges {
			if slices.ContainsFunc(r.Replicas, func(rep catalog.ReplicaDescriptor) bool { return !alive[rep.NodeID] }) {
				count++
			}
		}
	}
	return count
}

// pickReplacement chooses the live node that takes range r's replica i
// (with i < 0, a replica added to r): one the range does not use, in a
// zone its other replicas do not use if there is one, then the least
// loaded, then the lowest ID. With reclaim, a node whose replica of r is
// still leaving may take it back, and comes first: it holds the range's
// data, and it may be the only node left (a move off it that has not
// finished, and the node that was to take its place died).
func pickReplacement(candidates []catalog.Candidate, r *catalog.RangeDescriptor, i int, reclaim bool) (catalog.Candidate, bool) {
	zones := map[string]bool{}
	for j, rep := range r.Replicas {
		if j != i {
			zones[rep.Zone] = true
		}
	}
	var best catalog.Candidate
	found := false
	for _, c := range candidates {
		if r.HasReplica(c.ID) || r.IsLeaving(c.ID) && !reclaim {
			continue
		}
		if !found || better(c, best, zones, r) {
			best, found = c, true
		}
	}
	return best, found
}

func better(a, b catalog.Candidate, usedZones map[string]bool, r *catalog.RangeDescriptor) bool {
	if la, lb := r.IsLeaving(a.ID), r.IsLeaving(b.ID); la != lb {
		return la
	}
	if ua, ub := usedZones[a.Zone], usedZones[b.Zone]; ua != ub {
		return !ua
	}
	return cmp.Or(cmp.Compare(a.Replicas, b.Replicas), cmp.Compare(a.ID, b.ID)) < 0
}

// StartPlacement starts the placement driver on this node: once a
// second it counts the dead nodes (observeLiveness) and, if this node
// leads meta, proposes plan's changes and drops the leaving replicas
// their ranges let go (letGo). Close stops it.
func (n *Node) StartPlacement() { n.stopPlacement = startLoop(placementInterval, n.placementPass) }

// startLoop runs pass every interval on a goroutine of its own, with a
// context that stop cancels; stop returns once the goroutine has.
func startLoop(interval time.Duration, pass func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pass(ctx)
		}
	}()
	return func() { cancel(); <-done }
}

// placementPass is one pass of StartPlacement's loop: it waits for the
// answers of letGo (a round trip each, in parallel) before it ends.
func (n *Node) placementPass(ctx context.Context) {
	m := n.store.Config.Metrics
	m.RangesUnderReplicated.Set(float64(n.underReplicated()))
	m.ReplicaMovesInFlight.Set(float64(n.movesInFlight()))
	now := n.clock()
	n.observeLiveness(now)
	if leads, err := n.store.Leads(ctx, catalog.MetaRangeID); err != nil || !leads {
		return
	}
	for _, op := range n.plan(now) {
		n.proposePlaced(ctx, op)
	}
	asks, gone := n.letGoAsks(now)
	for _, l := range n.askAll(ctx, asks, gone...) {
		n.proposePlaced(ctx, catalog.CatalogOp{Left: &l})
	}
	for _, f := range n.askAll(ctx, n.fillAsks()) {
		n.proposePlaced(ctx, catalog.CatalogOp{Filled: &f})
	}
}

// proposePlaced proposes one of the placement driver's changes and logs
// what became of it.
func (n *Node) proposePlaced(ctx context.Context, op catalog.CatalogOp) {
	err := n.proposeOp(ctx, op)
	log, moves := n.store.Logger, n.store.Config.Metrics.ReplicaMoves
	switch {
	case op.Move != nil && err != nil:
		moves.WithLabelValues("refused").Inc()
		log.Warn("moving a replica", "range", op.Move.Range, "from", op.Move.From, "to", op.Move.To.NodeID, "err", err)
	case op.Move != nil:
		moves.WithLabelValues("applied").Inc()
		log.Info("moved a replica", "range", op.Move.Range, "from", op.Move.From, "to", op.Move.To.NodeID)
	case err != nil:
		log.Warn("placement change refused", "op", string(catalog.MustJSON(op)), "err", err)
	default:
		log.Info("placement change applied", "op", string(catalog.MustJSON(op)))
	}
}
