package kv

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
)

// simPaxosRepairKeyspaces is a paxos keyspace of replication factor 3,
// whose replicas the placement driver moves like raft ones (issue 12).
var simPaxosRepairKeyspaces = []catalog.KeyspaceDescriptor{
	{Name: "pk", Mode: catalog.ModePaxos, Replicas: 3, Ranges: 8},
}

// whyPaxosUnrepaired says why paxos range rd is not yet back on the
// catalog's replicas want, or "": one of them leads it, and each holds
// the range (it is no joiner any more) and has the catalog's replicas as
// the one configuration governing the slots after its applied one.
func (c *simCluster) whyPaxosUnrepaired(rd *catalog.RangeDescriptor, want []uint64) string {
	slices.Sort(want)
	led := false
	for _, id := range want {
		r := c.node(id).store.Replicas[rd.ID]
		if r == nil {
			return fmt.Sprintf("range %d has no replica on n%d yet", rd.ID, id)
		}
		pc, ok := r.Core.(*consensus.PaxosCore)
		if !ok {
			return fmt.Sprintf("range %d runs %s", rd.ID, r.Core.Protocol())
		}
		led = led || r.Role == consensus.RoleLeader
		if pc.Status().Joining {
			return fmt.Sprintf("range %d on n%d still waits for its snapshot", rd.ID, id)
		}
		cs := pc.Configs()
		var voters []uint64
		if len(cs) == 1 {
			for _, v := range cs[0].Membership.Voters {
				voters = append(voters, v.ID)
			}
		}
		slices.Sort(voters)
		if !slices.Equal(voters, want) {
			return fmt.Sprintf("range %d on n%d has configurations %+v, the catalog replicas %v", rd.ID, id, cs, want)
		}
	}
	if !led {
		return fmt.Sprintf("range %d is led by none of its replicas %v", rd.ID, want)
	}
	return ""
}

// A node that dies for good has its paxos replicas replaced: with 5 nodes
// and replication factor 3, each range's leader swaps the dead replica
// for a joiner in its configuration, through the range's log, and sends
// the joiner a snapshot; every range is back to 3 live replicas that
// hold it, while clients keep reading and writing; the history is
// linearizable and no acknowledged write is lost, and no node has more
// than MaxCatchingUp catch-ups it started running at once. Then a second
// node dies, and the ranges, which now count on the joiners, repair
// again.
func TestSimPaxosDeadNodeReplaced(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 5, simPaxosRepairKeyspaces, func(c *simCluster) {
			c.defaultGrowTo = 3
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) {
				cfg.DeadAfter = time.Second
				cfg.MaxMovesPerPass = 100 // every move at once: the stores' own bound holds
			}
		})
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
		c.growDefault()
		c.startClients()
		if err := c.s.RunFor(500 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		for _, victim := range []uint64{2, 5} {
			held := replicasHeld(c.catalog(), victim)
			c.s.Tracef("n%d dies for good", victim)
			c.s.Crash(sim.NodeID(victim))
			died := c.s.Now()
			catchingUp := 0 // the most catch-ups one node started running at once
			c.require(fmt.Sprintf("every range back to 3 live replicas after n%d died", victim), 30*time.Second, func() bool {
				for _, id := range c.ids {
					if n := c.node(id); n != nil && c.s.Up(sim.NodeID(id)) {
						catchingUp = max(catchingUp, n.store.CatchingUp())
					}
				}
				return c.repaired()
			})
			if catchingUp > store.MaxCatchingUp {
				t.Fatalf("a node ran %d catch-ups it started at once, more than %d", catchingUp, store.MaxCatchingUp)
			}
			t.Logf("n%d died holding %d replicas; repaired %v later; at most %d catch-ups started by one node running at once",
				victim, held, c.s.Now()-died, catchingUp)
		}
		c.check()
	})
}

// A node decommissioned while it runs and clients write hands its paxos
// replicas to other nodes, keeping each until its range has let it go
// (the leader that was removed hands its leadership on), and is then
// marked removed; nothing acknowledged is lost and the history is
// linearizable.
func TestSimPaxosDecommission(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(6), func(t *testing.T, seed uint64) { simPaxosDecommission(t, seed, store.Canary{}) })
}

func simPaxosDecommission(t testing.TB, seed uint64, canary store.Canary) {
	c := newSimClusterWith(t, seed, 4, simPaxosRepairKeyspaces, func(c *simCluster) { c.defaultGrowTo, c.canary = 3, canary })
	c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
	c.growDefault()
	c.startClients()
	if err := c.s.RunFor(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The victim leads some of pk's ranges: those leaders must hand
	// their leadership on once the range no longer counts on them.
	victim := uint64(4)
	if seed%2 == 0 {
		victim = c.metaLeader().id
	}
	held := replicasHeld(c.catalog(), victim)
	c.s.Tracef("n%d is decommissioned, holding %d replicas", victim, held)
	c.proposeCatalog(catalog.CatalogOp{Decommission: victim})
	start := c.s.Now()
	c.require(fmt.Sprintf("n%d decommissioned and every range repaired", victim), 40*time.Second, func() bool {
		nd := c.catalog().Nodes[victim]
		if !nd.Removed || replicasHeld(c.catalog(), victim) > 0 {
			c.unrepaired = fmt.Sprintf("n%d removed %v, holding %d replicas", victim, nd.Removed, replicasHeld(c.catalog(), victim))
			return false
		}
		return c.repaired()
	})
	t.Logf("n%d decommissioned %v after the command, %d replicas moved off it", victim, c.s.Now()-start, held)
	c.check()
}

// A node that takes over the leadership of a paxos range has started none
// of the range's catch-ups, and CatchingUp, the count MaxCatchingUp
// bounds, does not charge it any: here the replica a move added holds the
// range and is down, so the new leader never hears from it. A new leader
// used to count every replica a move had added that had not answered it
// yet, whether it held the range or not: in TestSimPaxosDeadNodeReplaced
// (seed 193), n4 ran the four catch-ups it had started, won range 12's
// leadership back, and counted the range's two added replicas, which had
// held it for a second, as two more.
func TestSimPaxosTakenOverCatchUpsNotStarted(t *testing.T) {
	c := newSimClusterWith(t, 1, 4, simPaxosRepairKeyspaces, func(c *simCluster) {
		c.pinLeaders = true
		c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Hour }
	})
	c.require("every range on its replicas", 10*time.Second, c.repaired)
	rd := c.catalog().Ranges["pk"][0]
	leader := c.rangeLeader(rd.ID)
	var others []uint64
	for _, rep := range rd.Replicas {
		if rep.NodeID != leader {
			others = append(others, rep.NodeID)
		}
	}
	from, stays, to := others[0], others[1], uint64(0)
	for _, id := range c.ids {
		if !rd.HasReplica(id) {
			to = id
		}
	}
	c.s.Tracef("range %d: n%d's replica moves to n%d", rd.ID, from, to)
	self := simSelf(to)
	c.metaLeader().proposeCatalog(catalog.CatalogOp{Move: &catalog.MoveReplica{Range: rd.ID, From: from,
		To: catalog.ReplicaDescriptor{NodeID: to, Zone: self.Zone, Weight: self.Weight}}})
	c.require(fmt.Sprintf("range %d moved from n%d to n%d", rd.ID, from, to), 10*time.Second, func() bool {
		return c.catalog().Ranges["pk"][0].HasReplica(to) && c.repaired()
	})
	if n := c.node(leader).store.CatchingUp(); n != 0 {
		t.Fatalf("n%d counts %d catch-ups it started running, its joiner n%d caught up", leader, n, to)
	}

	c.s.Tracef("n%d, holding range %d, goes down; n%d hands the range to n%d", to, rd.ID, leader, stays)
	c.s.Crash(sim.NodeID(to))
	if !c.node(leader).store.Replicas[rd.ID].Core.TransferLeader(leader, func(id uint64) bool { return id == stays }) {
		t.Fatalf("n%d did not hand range %d to n%d", leader, rd.ID, stays)
	}
	c.node(leader).round()
	c.require(fmt.Sprintf("n%d to lead range %d", stays, rd.ID), 5*time.Second, func() bool { return c.rangeLeader(rd.ID) == stays })
	if err := c.s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if l := c.rangeLeader(rd.ID); l != stays {
		t.Fatalf("n%d leads range %d, not n%d", l, rd.ID, stays)
	}
	if n := c.node(stays).store.CatchingUp(); n != 0 {
		t.Fatalf("n%d counts %d catch-ups it started running, having started none (n%d, added by the move, holds range %d)", stays, n, to, rd.ID)
	}
	t.Logf("range %d: n%d moved to n%d, which went down; n%d leads, having started no catch-up", rd.ID, from, to, stays)
}
