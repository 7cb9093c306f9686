package store

import (
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/raft"
)

// MaxMetaVoters bounds meta's voters (DESIGN.md §3): five survive two
// failures; more would slow every catalog change for no gain. Other nodes
// follow meta as learners, so every node holds the catalog.
const MaxMetaVoters = 5

// driveMeta is the placement driver's hand on meta's own membership, run
// by meta's leader on every tick: a node in the catalog but not in meta's
// configuration is added as a learner (it receives the log, so it learns
// the catalog, without slowing commits while it catches up); a learner
// that has caught up is promoted to voter while meta has fewer than
// MaxMetaVoters. One change at a time: Raft refuses a second one while
// the first is pending, and the next tick tries again.
func (s *Store) driveMeta() {
	r := s.Replicas[catalog.MetaRangeID]
	if r == nil || r.Role != consensus.RoleLeader {
		return
	}
	c := MetaCore(r)
	cs := c.RawNode.ConfState()
	if cs.Joint() {
		return // the leader leaves the joint configuration by itself
	}
	member := map[uint64]bool{}
	for _, v := range cs.Voters {
		member[v.ID] = true
	}
	for _, l := range cs.Learners {
		member[l] = true
	}
	ids := make([]uint64, 0, len(s.cat.Nodes))
	for id := range s.cat.Nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !member[id] {
			s.proposeMetaChange(c, raft.ConfChangeAddLearner, id)
			return
		}
	}
	if len(cs.Voters) >= MaxMetaVoters {
		return
	}
	progress := c.RawNode.Status().Progress
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		if pr, ok := progress[id]; ok && pr.Match >= c.Log.HardState.Commit {
			s.proposeMetaChange(c, raft.ConfChangeAddVoter, id)
			return
		}
	}
}

func (s *Store) proposeMetaChange(c *consensus.RaftCore, t raft.ConfChangeType, id uint64) {
	n := s.cat.Nodes[id]
	cc := raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: t, Member: raft.Member{ID: id, Zone: n.Zone, Weight: n.Weight}}}}
	if err := c.RawNode.ProposeConfChange(cc); err != nil {
		s.Logger.Debug("meta membership change refused for now", "change", t, "node", id, "err", err)
		return
	}
	s.Logger.Info("changing meta's membership", "change", t.String(), "node", n.Name, "id", id)
}
