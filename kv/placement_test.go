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

// simRepairKeyspaces are raft and eventual keyspaces of replication
// factor 3: the ones whose replicas the placement driver moves.
var simRepairKeyspaces = []catalog.KeyspaceDescriptor{
	{Name: "rk", Mode: catalog.ModeRaft, Replicas: 3, Ranges: 6},
}

// A node that dies for good has its replicas moved: with 5 nodes and
// replication factor 3, every range is back to 3 replicas on live nodes,
// in the catalog and in each range's Raft configuration, while clients
// keep reading and writing; the history is linearizable and no
// acknowledged write is lost. Then a second node dies, and the cluster
// repairs again (issue 12).
func TestSimDeadNodeReplaced(t *testing.T) {
	sim.RunSeeds(t, 16, func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 5, simRepairKeyspaces, func(c *simCluster) {
			c.nodeConfig = func(_ uint64, cfg *NodeConfig) { cfg.DeadAfter = time.Second }
		})
		// A lossy network, as under the nemesis: moves and snapshots must
		// survive lost, duplicated and reordered messages.
		c.s.Net().SetDefault(sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond, DropRate: 0.02, DupRate: 0.02})
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
			c.require(fmt.Sprintf("every range back to 3 live replicas after n%d died", victim), 20*time.Second, c.repaired)
			moved := 0
			for _, rd := range c.catalog().Ranges["rk"] {
				for _, rep := range rd.Replicas {
					if rep.Added {
						moved++
					}
				}
			}
			t.Logf("n%d died; repaired %v later; %d replicas of rk added by moves so far", victim, c.s.Now()-died, moved)
		}
		c.check()
	})
}

// repaired reports whether every range of the clients' keyspaces has its
// replicas on live nodes only, and every raft range's leader has exactly
// those as its voters, out of any joint configuration.
func (c *simCluster) repaired() bool {
	cat := c.catalog()
	for _, ks := range c.keyspaces {
		for _, rd := range cat.Ranges[ks.Name] {
			var want []uint64
			for _, rep := range rd.Replicas {
				if c.node(rep.NodeID) == nil || !c.s.Up(sim.NodeID(rep.NodeID)) {
					return false
				}
				want = append(want, rep.NodeID)
			}
			if ks.Mode != catalog.ModeRaft {
				continue
			}
			l := c.rangeLeader(rd.ID)
			if l == 0 {
				return false
			}
			rc, ok := c.node(l).store.Replicas[rd.ID].Core.(*consensus.RaftCore)
			if !ok {
				return false
			}
			cs := rc.RawNode.ConfState()
			var voters []uint64
			for _, v := range cs.Voters {
				voters = append(voters, v.ID)
			}
			slices.Sort(voters)
			slices.Sort(want)
			if cs.Joint() || len(cs.Learners) > 0 || !slices.Equal(voters, want) {
				return false
			}
		}
	}
	return true
}
