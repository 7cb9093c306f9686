package kv

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// The placement driver repairs the cluster after a node dies for good.
// Meta's leader runs it (the catalog changes only through meta's log): a
// node that gossip has seen dead for longer than DeadAfter has each of its
// replicas moved to a live node the range does not use yet
// (catalog.MoveReplica), chosen and proven as at keyspace creation. The
// move is only the catalog's intent: the new node starts an empty replica,
// and the range's leader brings its Raft configuration to the catalog's
// (kv/store/rangedriver.go: a learner caught up by the log or a snapshot,
// then promoted while the dead voter leaves, in one joint change). An
// eventual range needs nothing more: anti-entropy copies its records to
// the new replica.
//
// A node an operator removed (Node.RemoveNode) counts as dead for good
// at once. Meta's own voters are repaired by meta's leader
// (kv/store/metadriver.go). Not yet: paxos ranges (an acceptor cannot join
// a running range empty) and decommissioning a live node.

// Defaults of the placement driver.
const (
	// DefaultDeadAfter is how long a node must stay dead before its
	// replicas are moved: long enough that a restart or a short network
	// cut costs no data movement (CockroachDB's
	// server.time_until_store_dead is 5 minutes as well).
	DefaultDeadAfter = 5 * time.Minute
	// DefaultMaxMovesPerPass bounds the moves one pass proposes, so that a
	// dead node's replicas move a few at a time and their snapshots do
	// not starve client traffic.
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
		if ks.GrowTo <= ks.Replicas || len(candidates) < ks.GrowTo || ks.Mode == catalog.ModePaxos {
			continue
		}
		g := &catalog.GrowKeyspace{Keyspace: name, Replicas: ks.GrowTo}
		for _, r := range cat.Ranges[name] {
			if slices.ContainsFunc(r.Replicas, func(rep catalog.ReplicaDescriptor) bool { return !n.alive(cat.Nodes[rep.NodeID]) }) {
				return nil // repair comes first
			}
			grown := *r
			grown.Replicas = slices.Clone(r.Replicas)
			var add []catalog.ReplicaDescriptor
			for len(grown.Replicas) < ks.GrowTo {
				to, ok := pickReplacement(candidates, &grown, -1)
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

// planMoves returns the moves that replace the replicas of the nodes dead
// for longer than DeadAfter at time now, at most maxMoves of them and one
// per range; each new replica set is proven safe for its keyspace.
func (n *Node) planMoves(now int64) []catalog.MoveReplica {
	p := n.placer
	cat := n.store.Catalog()
	dead := map[uint64]bool{}
	for id := range cat.Nodes {
		if n.deadForGoodAt(id, now) {
			dead[id] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	candidates := n.candidates()
	var moves []catalog.MoveReplica
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		ks := cat.Keyspaces[name]
		if name == catalog.MetaKeyspace || ks.Mode == catalog.ModePaxos {
			continue
		}
		for _, r := range cat.Ranges[name] {
			if len(moves) >= p.maxMoves {
				return moves
			}
			i := slices.IndexFunc(r.Replicas, func(rep catalog.ReplicaDescriptor) bool { return dead[rep.NodeID] })
			if i < 0 {
				continue
			}
			to, ok := pickReplacement(candidates, r, i)
			if !ok {
				n.store.Logger.Warn("no live node can take a dead node's replica", "range", r.ID, "keyspace", name,
					"dead_node", r.Replicas[i].NodeID)
				continue
			}
			next := append(asCandidates(slices.Delete(slices.Clone(r.Replicas), i, i+1)), to)
			if _, _, err := ks.ProveOn(next); err != nil {
				n.store.Logger.Warn("a dead node's replica cannot move: the new replica set would not be safe", "range", r.ID,
					"keyspace", name, "dead_node", r.Replicas[i].NodeID, "to", to.ID, "err", err)
				continue
			}
			moves = append(moves, catalog.MoveReplica{Range: r.ID, From: r.Replicas[i].NodeID,
				To: catalog.ReplicaDescriptor{NodeID: to.ID, Zone: to.Zone, Weight: to.Weight}})
			addLoad(candidates, to.ID)
		}
	}
	return moves
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
// loaded, then the lowest ID.
func pickReplacement(candidates []catalog.Candidate, r *catalog.RangeDescriptor, i int) (catalog.Candidate, bool) {
	zones := map[string]bool{}
	for j, rep := range r.Replicas {
		if j != i {
			zones[rep.Zone] = true
		}
	}
	var best catalog.Candidate
	found := false
	for _, c := range candidates {
		if r.HasReplica(c.ID) {
			continue
		}
		if !found || better(c, best, zones) {
			best, found = c, true
		}
	}
	return best, found
}

func better(a, b catalog.Candidate, usedZones map[string]bool) bool {
	if ua, ub := usedZones[a.Zone], usedZones[b.Zone]; ua != ub {
		return !ua
	}
	return cmp.Or(cmp.Compare(a.Replicas, b.Replicas), cmp.Compare(a.ID, b.ID)) < 0
}

// StartPlacement starts the placement driver on this node: once a
// second, if this node leads meta, it moves the replicas of the nodes
// dead for longer than NodeConfig.DeadAfter, and then grows the keyspaces
// whose N is below their GrowTo (planGrowth). Close stops it.
func (n *Node) StartPlacement() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.stopPlacement = func() { cancel(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(placementInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n.store.Config.Metrics.RangesUnderReplicated.Set(float64(n.underReplicated()))
			n.observeLiveness(n.clock())
			if leads, err := n.store.Leads(ctx, catalog.MetaRangeID); err != nil || !leads {
				continue
			}
			moves := n.planMoves(n.clock())
			for _, m := range moves {
				op, err := json.Marshal(catalog.CatalogOp{Move: &m})
				if err == nil {
					err = n.proposeCatalog(ctx, op)
				}
				if err != nil {
					n.store.Config.Metrics.ReplicaMoves.WithLabelValues("refused").Inc()
					n.store.Logger.Warn("moving a dead node's replica", "range", m.Range, "from", m.From, "to", m.To.NodeID, "err", err)
					continue
				}
				n.store.Config.Metrics.ReplicaMoves.WithLabelValues("applied").Inc()
				n.store.Logger.Info("moved a dead node's replica", "range", m.Range, "from", m.From, "to", m.To.NodeID)
			}
			if len(moves) > 0 {
				continue // growth waits for the repairs
			}
			if g := n.planGrowth(); g != nil {
				op, err := json.Marshal(catalog.CatalogOp{Grow: g})
				if err == nil {
					err = n.proposeCatalog(ctx, op)
				}
				if err != nil {
					n.store.Logger.Warn("growing a keyspace", "keyspace", g.Keyspace, "replicas", g.Replicas, "err", err)
					continue
				}
				n.store.Logger.Info("grew a keyspace as nodes joined", "keyspace", g.Keyspace, "replicas", g.Replicas)
			}
		}
	}()
}
