package kv

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
)

// repairSeeds is the seed count of the tests in this file: n, or a
// quarter of it under the race detector, which slows the simulator
// tenfold (the plain run has the full count). QKV_SIM_SEEDS still sets
// the count exactly.
func repairSeeds(n int) int {
	if raceEnabled {
		return max(1, n/4)
	}
	return n
}

// simRepairKeyspaces are raft and eventual keyspaces of replication
// factor 3: the ones whose replicas the placement driver moves.
var simRepairKeyspaces = []catalog.KeyspaceDescriptor{
	{Name: "rk", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 16},
}

// A node that dies for good has its replicas moved: with 5 nodes and
// replication factor 3, every range is back to 3 replicas on live nodes,
// in the catalog and in each range's Raft configuration, while clients
// keep reading and writing; the history is linearizable and no
// acknowledged write is lost. Then a second node dies, and the cluster
// repairs again (issue 12).
func TestSimDeadNodeReplaced(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(16), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 5, simRepairKeyspaces, func(c *simCluster) {
			c.defaultGrowTo = 3
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) {
				cfg.DeadAfter = time.Second
				cfg.MaxMovesPerPass = 100 // every move at once: the stores' own bound holds
			}
		})
		// A lossy network, as under the nemesis: moves and snapshots must
		// survive lost, duplicated and reordered messages.
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
		c.growDefault()
		c.startClients()
		if err := c.s.RunFor(500 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// The first victim holds replicas of rk and leads meta, so the
		// placement driver it ran must be taken over by meta's next
		// leader; the second is another node.
		first, second := uint64(2), uint64(5)
		if l := c.metaLeader(); l.id != first {
			rn := store.MetaCore(l.store.Replicas[catalog.MetaRangeID]).RawNode
			if err := rn.TransferLeader(first); err != nil {
				t.Fatal(err)
			}
			l.round()
			c.require(fmt.Sprintf("n%d to lead meta", first), 5*time.Second, func() bool {
				l := c.metaLeader()
				return l != nil && l.id == first
			})
		}
		for _, victim := range []uint64{first, second} {
			c.s.Tracef("n%d dies for good", victim)
			c.s.Crash(sim.NodeID(victim))
			died := c.s.Now()
			catchingUp := 0 // the most catch-ups one node started running at once
			c.require(fmt.Sprintf("every range back to 3 live replicas after n%d died", victim), 20*time.Second, func() bool {
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
			moved := 0
			for _, rd := range c.catalog().Ranges["rk"] {
				for _, rep := range rd.Replicas {
					if rep.Added {
						moved++
					}
				}
			}
			t.Logf("n%d died; repaired %v later; %d replicas of rk added by moves so far; at most %d catch-ups started by one node running at once",
				victim, c.s.Now()-died, moved, catchingUp)
		}
		c.check()
	})
}

// growDefault makes the clients use the default keyspace too, and waits
// until it has grown to three replicas (the simCluster's defaultGrowTo
// must say 3): a node that dies while default has one replica, or grows,
// may take a range's only voter with it.
func (c *simCluster) growDefault() {
	c.keyspaces = append(c.keyspaces, catalog.KeyspaceDescriptor{Name: "default", Mode: catalog.ModeRaft})
	c.require("the default keyspace to grow to 3 replicas", 20*time.Second, func() bool {
		return c.catalog().Keyspaces["default"].Replicas == 3 && c.repaired()
	})
}

// repaired reports whether every range of the clients' keyspaces has its
// replicas on live nodes only, a leader, and every raft range's replicas
// have exactly those as their voters, out of any joint configuration,
// and no range keeps a leaving replica.
func (c *simCluster) repaired() bool {
	c.unrepaired = c.whyUnrepaired()
	return c.unrepaired == ""
}

// whyUnrepaired says why repaired is false, or "" when it is true.
func (c *simCluster) whyUnrepaired() string {
	cat := c.catalog()
	for _, ks := range c.keyspaces {
		for _, rd := range cat.Ranges[ks.Name] {
			if len(rd.Leaving) > 0 {
				return fmt.Sprintf("range %d has leaving replicas %v", rd.ID, rd.Leaving)
			}
			var want []uint64
			for _, rep := range rd.Replicas {
				if c.node(rep.NodeID) == nil || !c.s.Up(sim.NodeID(rep.NodeID)) {
					return fmt.Sprintf("range %d has a replica on n%d, down", rd.ID, rep.NodeID)
				}
				want = append(want, rep.NodeID)
			}
			if ks.Mode == catalog.ModePaxos {
				if why := c.whyPaxosUnrepaired(rd, want); why != "" {
					return why
				}
				continue
			}
			if ks.Mode != catalog.ModeRaft {
				continue
			}
			if c.rangeLeader(rd.ID) == 0 {
				return fmt.Sprintf("range %d has no leader", rd.ID)
			}
			// Every replica, not only the leader, must have applied the
			// final configuration: a follower still joint needs the old
			// voters' majority too, so a second death before then could
			// stop the range (a window Raft's apply-time configurations
			// leave open).
			slices.Sort(want)
			for _, id := range want {
				r := c.node(id).store.Replicas[rd.ID]
				if r == nil {
					return fmt.Sprintf("range %d has no replica on n%d yet", rd.ID, id)
				}
				rc, ok := r.Core.(*consensus.RaftCore)
				if !ok {
					return fmt.Sprintf("range %d runs %s", rd.ID, r.Core.Protocol())
				}
				cs := rc.RawNode.ConfState()
				var voters []uint64
				for _, v := range cs.Voters {
					voters = append(voters, v.ID)
				}
				slices.Sort(voters)
				if cs.Joint() || len(cs.Learners) > 0 || !slices.Equal(voters, want) {
					return fmt.Sprintf("range %d on n%d has configuration %+v, the catalog replicas %v", rd.ID, id, cs, want)
				}
			}
		}
	}
	return ""
}

// Meta's voters follow the same repair: with 6 nodes, meta has 5 voters
// and a learner; when the voter that leads meta dies for good, it is
// swapped for the learner in one joint change, so meta is back to 5 live
// voters; a second dead voter, with no learner left, stays a voter rather
// than shrink meta.
func TestSimDeadMetaVoterSwapped(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 6, simRepairKeyspaces, func(c *simCluster) {
			c.defaultGrowTo = 3
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Second }
		})
		metaVoters := func() []uint64 {
			l := c.metaLeader()
			if l == nil {
				return nil
			}
			var ids []uint64
			for _, v := range store.MetaCore(l.store.Replicas[catalog.MetaRangeID]).RawNode.ConfState().Voters {
				ids = append(ids, v.ID)
			}
			slices.Sort(ids)
			return ids
		}
		c.growDefault()
		c.startClients()
		victim := c.metaLeader().id
		c.s.Tracef("n%d, meta's leader, dies for good", victim)
		c.s.Crash(sim.NodeID(victim))
		c.require("meta's dead voter swapped for the learner", 20*time.Second, func() bool {
			v := metaVoters()
			return len(v) == store.MaxMetaVoters && !slices.Contains(v, victim)
		})
		// The ranges are repaired too before another node dies: a range
		// that lost two of its three replicas could not be.
		c.require("every range back to 3 live replicas", 20*time.Second, c.repaired)
		second := metaVoters()[0]
		if second == 1 {
			second = metaVoters()[1] // keep node 1 up: the clients' first window
		}
		c.s.Tracef("n%d dies for good too", second)
		c.s.Crash(sim.NodeID(second))
		c.require("every range back to 3 live replicas", 20*time.Second, c.repaired)
		if v := metaVoters(); len(v) != store.MaxMetaVoters || !slices.Contains(v, second) {
			t.Fatalf("meta's voters %v after n%d died with no learner to take its place; want it kept, meta not shrunk", v, second)
		}
		c.check()
	})
}

// A node an operator removed has its replicas moved at once, without
// waiting for DeadAfter (an hour here), and is listed as removed.
func TestSimRemovedNodeReplaced(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(4), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 5, simRepairKeyspaces, func(c *simCluster) {
			c.defaultGrowTo = 3
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Hour }
		})
		c.growDefault()
		c.startClients()
		const victim = 5
		c.s.Crash(sim.NodeID(victim))
		if err := c.s.RunFor(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		if c.repaired() {
			t.Fatal("the ranges were repaired before the node was removed: DeadAfter is an hour")
		}
		l := c.metaLeader()
		op, err := json.Marshal(catalog.CatalogOp{RemoveNode: victim})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.store.StartPropose(catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: op}, func(command.Result) {}); err != nil {
			t.Fatal(err)
		}
		l.round()
		c.require("every range back to 3 live replicas after n5 was removed", 10*time.Second, c.repaired)
		for _, m := range c.node(1).node.Members() {
			if m.ID == victim && m.State != "removed" {
				t.Errorf("the removed node is listed %q", m.State)
			}
		}
		c.check()
	})
}

// The default keyspace, founded with one replica on node 1, grows to three
// once three nodes are alive: every range at once, straight from one
// voter to three, in the catalog and in every replica's Raft
// configuration, while clients use another keyspace.
func TestSimDefaultKeyspaceGrows(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 3, simRepairKeyspaces, func(c *simCluster) { c.defaultGrowTo = 3 })
		c.keyspaces = append(c.keyspaces, catalog.KeyspaceDescriptor{Name: "default", Mode: catalog.ModeRaft})
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
		c.startClients()
		twoVoters := ""
		c.require("the default keyspace to grow to 3 replicas", 20*time.Second, func() bool {
			for _, rd := range c.catalog().Ranges["default"] {
				for _, id := range c.ids {
					if r := c.node(id).store.Replicas[rd.ID]; r != nil {
						cs := r.Core.(*consensus.RaftCore).RawNode.ConfState()
						if !cs.Joint() && len(cs.Voters) == 2 && twoVoters == "" {
							twoVoters = fmt.Sprintf("n%d's replica of range %d has voters %v", id, rd.ID, cs.Voters)
						}
					}
				}
			}
			return c.catalog().Keyspaces["default"].Replicas == 3 && c.repaired()
		})
		if twoVoters != "" {
			t.Fatalf("a range grew through two voters: %s", twoVoters)
		}
		for _, rd := range c.catalog().Ranges["default"] {
			if len(rd.Replicas) != 3 {
				t.Fatalf("range %d of default has replicas %v", rd.ID, rd.Replicas)
			}
		}
		c.check()
	})
}

// With no live node the range does not use, nothing moves: on 3 nodes
// with replication factor 3, a dead node's replicas stay where they are,
// and the ranges serve on the two replicas left.
func TestSimNoNodeToMoveTo(t *testing.T) {
	c := newSimClusterWith(t, 1, 3, simRepairKeyspaces, func(c *simCluster) {
		c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Second }
	})
	before := string(catalog.MustJSON(c.catalog().Ranges["rk"]))
	c.startClients()
	c.s.Crash(3)
	if err := c.s.RunFor(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if after := string(catalog.MustJSON(c.catalog().Ranges["rk"])); after != before {
		t.Fatalf("replicas moved with no node to take them:\nbefore %s\nafter  %s", before, after)
	}
	c.s.Restart(3) // the final check reads from every replica
	c.check()
}

// A draining node hands away every leadership it holds and every one it
// gains after, while clients go on: within a few seconds it leads no
// range, meta included, and stays so.
func TestSimDrain(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 3, simRepairKeyspaces)
		c.startClients()
		victim := c.metaLeader()
		victim.store.SetDraining(true)
		// The ranges it leads that have another replica to lead them (the
		// default keyspace has one replica, on node 1).
		leads := func() int {
			n := 0
			for id, r := range victim.store.Replicas {
				if r.Role == consensus.RoleLeader && (id == catalog.MetaRangeID || replicasOf(c, id) > 1) {
					n++
				}
			}
			return n
		}
		c.require(fmt.Sprintf("n%d to lead nothing", victim.id), 10*time.Second, func() bool { return leads() == 0 })
		if err := c.s.RunFor(3 * time.Second); err != nil {
			t.Fatal(err)
		}
		if n := leads(); n != 0 {
			t.Fatalf("the draining n%d leads %d ranges again", victim.id, n)
		}
		// Another node crashes: the elections of its ranges may go to the
		// draining node, which hands them away again to the one left.
		other := uint64(3)
		if other == victim.id {
			other = 2
		}
		c.s.Crash(sim.NodeID(other))
		c.require(fmt.Sprintf("n%d to lead nothing after n%d crashed", victim.id, other), 10*time.Second, func() bool {
			if n := leads(); n != 0 {
				c.unrepaired = fmt.Sprintf("n%d leads %d ranges", victim.id, n)
				for id, r := range victim.store.Replicas {
					if r.Role == consensus.RoleLeader {
						c.unrepaired += fmt.Sprintf("; range %d: %+v", id, r.Core.(*consensus.RaftCore).RawNode.Status())
					}
				}
				return false
			}
			for id := range victim.store.Replicas {
				if replicasOf(c, id) > 1 && c.rangeLeader(id) == 0 {
					c.unrepaired = fmt.Sprintf("range %d has no leader", id)
					return false // not led yet: an election is under way
				}
			}
			return true
		})
		c.s.Restart(sim.NodeID(other))
		c.check()
	})
}

// replicasOf is how many replicas the catalog gives range id.
func replicasOf(c *simCluster, id uint64) int {
	for _, ranges := range c.catalog().Ranges {
		for _, rd := range ranges {
			if rd.ID == id {
				return len(rd.Replicas)
			}
		}
	}
	return 0
}

// A node that died, came back and died again is counted dead from its
// last death, even by a node that was not meta's leader in between (the
// count used to be kept by the leader's passes alone, and a node that
// led meta again later found the first death and moved at once).
func TestDeadCountsFromTheLastDeath(t *testing.T) {
	c := newSimClusterWith(t, 1, 3, simRepairKeyspaces, func(c *simCluster) {
		c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = 10 * time.Second }
	})
	n := c.node(1).node
	const sec = int64(time.Second)
	c.s.Crash(3)
	n.observeLiveness(0)
	c.s.Restart(3)
	if c.node(3) == nil {
		t.Fatal("n3 did not restart")
	}
	n.observeLiveness(5 * sec)
	c.s.Crash(3)
	n.observeLiveness(20 * sec)
	if n.deadForGoodAt(3, 25*sec) {
		t.Fatal("n3, dead again for 5 s, counts as dead for good (10 s): counted from its first death")
	}
	if !n.deadForGoodAt(3, 31*sec) {
		t.Fatal("n3, dead for 11 s, does not count as dead for good (10 s)")
	}
}

// A node decommissioned while it runs and clients write hands every
// replica it holds to other nodes, keeping its own until each range has
// let it go, leaves meta's voters, and is then marked removed; nothing
// acknowledged is lost and the history is linearizable. The keyspace of
// one replica per range is the sharp case: the decommissioned node's
// replica is the range's only voter until the new one takes over, so
// deleting it a moment early loses the range (Canary.LetGoEarly).
func TestSimDecommission(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) { simDecommission(t, seed, store.Canary{}) })
}

// The decommission test catches a range that deletes a moved replica it
// still counts on.
func TestDecommissionCanary(t *testing.T) {
	huntCanary(t, 8, func(tb testing.TB, seed uint64) { simDecommission(tb, seed, store.Canary{LetGoEarly: true}) })
}

func simDecommission(t testing.TB, seed uint64, canary store.Canary) {
	{
		ks := append(slices.Clone(simRepairKeyspaces), catalog.KeyspaceDescriptor{Name: "r1", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 8})
		c := newSimClusterWith(t, seed, 4, ks, func(c *simCluster) { c.defaultGrowTo, c.canary = 3, canary })
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
		c.growDefault()
		c.startClients()
		if err := c.s.RunFor(500 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// Half the seeds decommission meta's leader, which must hand meta
		// and the placement driver over first.
		victim := uint64(4)
		if seed%2 == 0 {
			victim = c.metaLeader().id
		}
		held := replicasHeld(c.catalog(), victim)
		c.s.Tracef("n%d is decommissioned, holding %d replicas", victim, held)
		c.proposeCatalog(catalog.CatalogOp{Decommission: victim})
		start := c.s.Now()
		c.require(fmt.Sprintf("n%d decommissioned and every range repaired", victim), 30*time.Second, func() bool {
			nd := c.catalog().Nodes[victim]
			if !nd.Removed || replicasHeld(c.catalog(), victim) > 0 {
				c.unrepaired = fmt.Sprintf("n%d removed %v, holding %d replicas", victim, nd.Removed, replicasHeld(c.catalog(), victim))
				return false
			}
			if l := c.metaLeader(); l == nil || slices.Contains(l.store.MetaVoters(), victim) {
				c.unrepaired = "no meta leader, or the victim is one of meta's voters"
				return false
			}
			return c.repaired()
		})
		t.Logf("n%d decommissioned %v after the command, %d replicas moved off it", victim, c.s.Now()-start, held)
		c.check()
	}
}

// proposeCatalog proposes op through meta's leader, waiting for a leader
// if there is none.
func (c *simCluster) proposeCatalog(op catalog.CatalogOp) {
	c.require("meta to have a leader", 5*time.Second, func() bool { return c.metaLeader() != nil })
	l := c.metaLeader()
	l.proposeCatalog(op)
	l.round()
}

// A node that joins a running cluster gets its share of every keyspace:
// the placement driver moves replicas to it until no node holds two
// replicas of a keyspace more than another, while clients go on, and
// the history is linearizable. Right after the join, the plan (what
// kvctl cluster rebalance --dry-run shows) lists moves to the new node
// only.
func TestSimRebalance(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 3, simRepairKeyspaces, func(c *simCluster) { c.defaultGrowTo = 3 })
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
		c.growDefault()
		c.startClients()
		if err := c.s.RunFor(300 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, 4)
		c.join(4)
		plan := c.metaLeader().node.planRebalance(100)
		if len(plan) == 0 {
			t.Fatal("no rebalancing planned right after n4 joined")
		}
		for _, m := range plan {
			if m.To.NodeID != 4 {
				t.Fatalf("planned %+v right after n4 joined: every move should go to n4", m)
			}
		}
		start := c.s.Now()
		c.require("every keyspace spread over the 4 nodes", 30*time.Second, func() bool {
			if !c.repaired() {
				return false
			}
			for _, ks := range c.keyspaces {
				load := map[uint64]int{}
				for _, r := range c.catalog().Ranges[ks.Name] {
					for _, rep := range r.Replicas {
						load[rep.NodeID]++
					}
				}
				if counts := slices.Collect(maps.Values(load)); len(load) != 4 || slices.Max(counts)-slices.Min(counts) > 1 {
					c.unrepaired = fmt.Sprintf("keyspace %s has replicas per node %v", ks.Name, load)
					return false
				}
			}
			return true
		})
		t.Logf("n4 joined; %d moves planned at once, spread %v later", len(plan), c.s.Now()-start)
		if plan := c.metaLeader().node.planRebalance(100); len(plan) != 0 {
			t.Fatalf("still planning %v once spread", plan)
		}
		c.check()
	})
}

// A range whose only replica is on a dead node is not moved: no replica
// is left to copy it from, and a new one would stay empty. It serves
// again when the node comes back.
func TestSimLoneReplicaStays(t *testing.T) {
	r1 := catalog.KeyspaceDescriptor{Name: "r1", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 6}
	c := newSimClusterWith(t, 1, 3, []catalog.KeyspaceDescriptor{r1}, func(c *simCluster) {
		c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Second }
	})
	victim := c.catalog().Ranges["r1"][0].Replicas[0].NodeID
	if victim == 1 {
		victim = c.catalog().Ranges["r1"][1].Replicas[0].NodeID // keep node 1, the catalog's window, up
	}
	// The ranges on the victim (others may be rebalanced meanwhile).
	onVictim := func() string {
		var out []*catalog.RangeDescriptor
		for _, r := range c.catalog().Ranges["r1"] {
			if r.Holds(victim) {
				out = append(out, r)
			}
		}
		return string(catalog.MustJSON(out))
	}
	before := onVictim()
	c.s.Crash(sim.NodeID(victim))
	if err := c.s.RunFor(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if after := onVictim(); after != before {
		t.Fatalf("ranges whose only replica died were moved:\nbefore %s\nafter  %s", before, after)
	}
	c.s.Restart(sim.NodeID(victim))
	c.startClients()
	c.check()
}

// Leaderships spread over the nodes by themselves: with every node a
// voter of every range, once one node leads them all (the others were
// draining), the stores hand leaderships over until no node leads two
// ranges more than another, and it stays so, while clients go on.
func TestSimLeadersSpread(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(8), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 3, simRepairKeyspaces)
		c.startClients()
		for _, id := range []uint64{2, 3} {
			c.node(id).store.SetDraining(true)
		}
		// leads counts the ranges of rk each node leads.
		leads := func() map[uint64]int {
			out := map[uint64]int{}
			for _, rd := range c.catalog().Ranges["rk"] {
				if l := c.rangeLeader(rd.ID); l != 0 {
					out[l]++
				}
			}
			return out
		}
		c.require("n1 to lead every range of rk", 10*time.Second, func() bool { return leads()[1] == len(c.catalog().Ranges["rk"]) })
		for _, id := range []uint64{2, 3} {
			c.node(id).store.SetDraining(false)
		}
		spread := func() bool {
			l := leads()
			counts := []int{l[1], l[2], l[3]}
			c.unrepaired = fmt.Sprintf("leaders per node %v", l)
			return l[1]+l[2]+l[3] == len(c.catalog().Ranges["rk"]) && slices.Max(counts)-slices.Min(counts) <= 1
		}
		start := c.s.Now()
		c.require("the leaderships of rk spread", 20*time.Second, spread)
		t.Logf("spread %v after the drains ended: %s", c.s.Now()-start, c.unrepaired)
		for range 10 {
			if err := c.s.RunFor(500 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if l := leads(); !spread() && l[1]+l[2]+l[3] == len(c.catalog().Ranges["rk"]) {
				t.Fatalf("the leaderships moved apart again: %v", l)
			}
		}
		c.check()
	})
}

// A move whose new replica's node dies before the move finishes is
// undone: with 4 nodes and replication factor 3, a range moving from n1
// to n4 loses n4 at once; no other node can take the replica, so the
// placement driver gives it back to n1, whose replica was still leaving
// (it holds the range's data and its place in the log), and the range
// ends on its three live nodes with nothing leaving.
func TestSimMoveTargetDies(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(4), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 4, simRepairKeyspaces, func(c *simCluster) {
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Second }
			c.pinLeaders, c.defaultGrowTo = true, 3
		})
		c.growDefault()
		c.startClients()
		var rd *catalog.RangeDescriptor
		for _, r := range c.catalog().Ranges["rk"] {
			if r.HasReplica(1) && !r.HasReplica(4) {
				rd = r
				break
			}
		}
		if rd == nil {
			t.Fatal("no range of rk on n1 and not on n4")
		}
		c.proposeCatalog(catalog.CatalogOp{Move: &catalog.MoveReplica{Range: rd.ID, From: 1, To: catalog.ReplicaDescriptor{NodeID: 4, Zone: "z4", Weight: 1}}})
		c.require("the move in the catalog", time.Second, func() bool {
			return c.catalog().Ranges["rk"][slices.IndexFunc(c.catalog().Ranges["rk"], func(r *catalog.RangeDescriptor) bool { return r.ID == rd.ID })].IsLeaving(1)
		})
		c.s.Tracef("n4, the new replica's node, dies for good")
		c.s.Crash(4)
		c.require("the range back on its three live nodes, nothing leaving", 20*time.Second, c.repaired)
		for _, r := range c.catalog().Ranges["rk"] {
			if r.ID == rd.ID && (!r.HasReplica(1) || r.Holds(4)) {
				t.Fatalf("range %d ends with replicas %v, leaving %v; want n1 back and n4 gone", r.ID, r.Replicas, r.Leaving)
			}
		}
		c.check()
	})
}

// A learner added right after the range's leader sent a lagging follower
// a snapshot gets a snapshot of its own. The leader sends the snapshot it
// still holds again only while the configuration is the one it carries:
// one taken before the learner was added does not name it, the learner
// refuses it, and the leader sent it again and again (found on real
// processes: a 1 GiB range's move never finished).
func TestSimLearnerAfterSnapshot(t *testing.T) {
	sim.RunSeeds(t, repairSeeds(4), func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 4, []catalog.KeyspaceDescriptor{{Name: "rk", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 1}},
			func(c *simCluster) { c.pinLeaders = true })
		c.startClients()
		rd := c.catalog().Ranges["rk"][0]
		c.require("a leader of the range", 5*time.Second, func() bool { return c.rangeLeader(rd.ID) != 0 })
		lead := c.rangeLeader(rd.ID)
		var follower, outside uint64
		for _, id := range c.ids {
			switch {
			case !rd.HasReplica(id):
				outside = id
			case id != lead && follower == 0:
				follower = id
			}
		}
		var all []sim.NodeID
		for _, id := range c.ids {
			all = append(all, sim.NodeID(id))
		}
		// The follower misses more than a log's worth of writes, then gets
		// a snapshot; the leader holds it, and with the clients stopped the
		// log is not truncated past it.
		heal := c.s.Net().Partition(sim.Isolate(all, sim.NodeID(follower)))
		if err := c.s.RunFor(3 * time.Second); err != nil {
			t.Fatal(err)
		}
		for _, cl := range c.clients {
			cl.stopped = true
		}
		heal()
		if err := c.s.RunFor(time.Second); err != nil {
			t.Fatal(err)
		}
		c.s.Tracef("n%d's replica moves to n%d, a learner first", follower, outside)
		c.proposeCatalog(catalog.CatalogOp{Move: &catalog.MoveReplica{Range: rd.ID, From: follower,
			To: catalog.ReplicaDescriptor{NodeID: outside, Zone: fmt.Sprintf("z%d", outside), Weight: 1}}})
		c.require("the move done: the learner caught up and promoted, the old replica let go", 20*time.Second, c.repaired)
		c.check()
	})
}
