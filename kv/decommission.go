package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
)

// The operator's side of the placement driver (placement.go):
// decommissioning a node, and seeing or forcing what it would move.

// Decommission marks node id decommissioning (catalog.CatalogOp.
// Decommission): the placement driver then moves its replicas away, meta's
// leader swaps it out of meta's voters, and once it holds nothing it is
// marked removed. It is refused, with nothing changed, when the other
// nodes could not take its replicas: a keyspace of N replicas with one
// on it needs N live nodes besides it that are not leaving too.
func (n *Node) Decommission(ctx context.Context, id uint64) error {
	cat := n.store.Catalog()
	nd, ok := cat.Nodes[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: node %d is not in the catalog (kvctl cluster members lists them)", catalog.ErrInvalidArgument, id)
	case nd.Removed:
		return fmt.Errorf("%w: node %d (%s) was removed already", catalog.ErrRemoved, id, nd.Name)
	}
	others := 0
	for _, c := range n.candidates() {
		if c.ID != id {
			others++
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		ks := cat.Keyspaces[name]
		holds := slices.ContainsFunc(cat.Ranges[name], func(r *catalog.RangeDescriptor) bool { return r.HasReplica(id) })
		switch {
		case !holds || name == catalog.MetaKeyspace:
		case others < ks.Replicas:
			return fmt.Errorf("%w: node %d (%s) holds replicas of keyspace %s (%d replicas per range), and only %d other live nodes "+
				"can take replicas: add a node first", catalog.ErrNotEnoughNodes, id, nd.Name, name, ks.Replicas, others)
		}
	}
	return n.proposeOp(ctx, catalog.CatalogOp{Decommission: id})
}

// PlannedMove is a move the placement driver would propose, and why.
type PlannedMove struct {
	catalog.MoveReplica
	Keyspace string
	// Reason is "dead" (for longer than DeadAfter, or removed),
	// "decommissioning", "rebalance", or "grow" (a replica added to a
	// keyspace growing to its GrowTo; From is 0).
	Reason string
}

// Rebalance returns the moves the placement driver would propose now on
// meta's leader (a store.NotLeaderError naming it elsewhere), and the
// moves in flight; unless dryRun, it proposes them.
func (n *Node) Rebalance(ctx context.Context, dryRun bool) ([]PlannedMove, int, error) {
	leader, err := n.store.LeaderOf(ctx, catalog.MetaRangeID)
	if err != nil {
		return nil, 0, err
	}
	if leader != n.store.NodeID() {
		return nil, 0, &store.NotLeaderError{RangeID: catalog.MetaRangeID, Leader: leader}
	}
	now := n.clock()
	ops := n.plan(now)
	cat := n.store.Catalog()
	keyspaceOf := map[uint64]string{}
	for name, ranges := range cat.Ranges {
		for _, r := range ranges {
			keyspaceOf[r.ID] = name
		}
	}
	var moves []PlannedMove
	for _, op := range ops {
		switch {
		case op.Move != nil:
			reason := "rebalance"
			switch from := op.Move.From; {
			case n.deadForGoodAt(from, now):
				reason = "dead"
			case cat.Nodes[from].Decommissioning:
				reason = "decommissioning"
			}
			moves = append(moves, PlannedMove{MoveReplica: *op.Move, Keyspace: keyspaceOf[op.Move.Range], Reason: reason})
		case op.Grow != nil:
			for _, add := range op.Grow.Add {
				for _, rep := range add.Replicas {
					moves = append(moves, PlannedMove{MoveReplica: catalog.MoveReplica{Range: add.Range, To: rep}, Keyspace: op.Grow.Keyspace, Reason: "grow"})
				}
			}
		}
	}
	if !dryRun {
		for _, op := range ops {
			n.proposePlaced(ctx, op)
		}
	}
	return moves, n.movesInFlight(), nil
}

// proposeOp proposes op to meta on this node, which must lead it.
// ChangeAuth changes users, roles or auth settings through meta.
func (n *Node) ChangeAuth(ctx context.Context, op catalog.AuthOp) error {
	return n.proposeOp(ctx, catalog.CatalogOp{Auth: &op})
}

func (n *Node) proposeOp(ctx context.Context, op catalog.CatalogOp) error {
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	return n.proposeCatalog(ctx, b)
}
