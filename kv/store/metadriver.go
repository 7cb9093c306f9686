package store

import (
	"maps"
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
// by meta's leader on every tick:
//
//   - a node in the catalog but not in meta's configuration is added as a
//     learner (it receives the log, so it learns the catalog, without
//     slowing commits while it catches up), unless it is dead for good
//     (SetDeadForGood);
//   - a voter dead for good or decommissioning is swapped for a caught-up
//     live learner, in one joint change, so meta keeps its number of
//     voters. With no such learner, a dead voter stays (meta never
//     shrinks for it), and a decommissioning one is removed alone if at
//     least three voters remain (three tolerate one failure as four do);
//     it then follows as a learner until it is removed;
//   - caught-up learners are promoted while meta has fewer than
//     MaxMetaVoters voters, never from one voter to two: two voters stop
//     when either fails, where one stops only when it does, so a lone voter
//     waits for two caught-up learners and takes both at once;
//   - a learner dead for good is removed.
//
// One change at a time: Raft refuses a second one while the first is
// pending, and the next tick tries again.
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
	dead := func(id uint64) bool {
		f := s.deadForGood.Load()
		return id != s.nodeID && f != nil && (*f)(id)
	}
	// A decommissioning node stays a learner, so that it learns the
	// catalog until it is removed; its leadership, if it holds it, moves
	// away first (Draining).
	leaving := func(id uint64) bool { return dead(id) || id != s.nodeID && s.cat.Nodes[id].Decommissioning }
	member := map[uint64]bool{}
	for _, v := range cs.Voters {
		member[v.ID] = true
	}
	for _, l := range cs.Learners {
		member[l] = true
	}
	for _, id := range slices.Sorted(maps.Keys(s.cat.Nodes)) {
		if !member[id] && !dead(id) {
			s.proposeMetaChange(c, raft.ConfChange{Changes: []raft.ConfChangeSingle{s.metaChange(raft.ConfChangeAddLearner, id)}})
			return
		}
	}
	progress := c.RawNode.Status().Progress
	var ready []uint64 // caught-up learners that are not dead for good
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		if pr, ok := progress[id]; ok && pr.Match >= c.Log.HardState.Commit && !leaving(id) {
			ready = append(ready, id)
		}
	}
	for _, v := range cs.Voters {
		if !leaving(v.ID) {
			continue
		}
		remove := raft.ConfChangeSingle{Type: raft.ConfChangeRemove, Member: raft.Member{ID: v.ID}}
		switch {
		case len(ready) > 0:
			s.proposeMetaChange(c, raft.ConfChange{Changes: []raft.ConfChangeSingle{s.metaChange(raft.ConfChangeAddVoter, ready[0]), remove}})
			return
		case len(cs.Voters) > 3 && !dead(v.ID):
			s.proposeMetaChange(c, raft.ConfChange{Changes: []raft.ConfChangeSingle{remove}})
			return
		}
	}
	if n := len(cs.Voters); n < MaxMetaVoters && len(ready) > 0 {
		take := ready[:1]
		if n == 1 {
			if len(ready) < 2 {
				return // one to two voters would make meta more fragile
			}
			take = ready[:2]
		}
		var cc raft.ConfChange
		for _, id := range take {
			cc.Changes = append(cc.Changes, s.metaChange(raft.ConfChangeAddVoter, id))
		}
		s.proposeMetaChange(c, cc)
		return
	}
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		if dead(id) {
			s.proposeMetaChange(c, raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeRemove, Member: raft.Member{ID: id}}}})
			return
		}
	}
}

// metaChange is a change of kind t for node id, with its zone and weight.
func (s *Store) metaChange(t raft.ConfChangeType, id uint64) raft.ConfChangeSingle {
	n := s.cat.Nodes[id]
	return raft.ConfChangeSingle{Type: t, Member: raft.Member{ID: id, Zone: n.Zone, Weight: n.Weight}}
}

func (s *Store) proposeMetaChange(c *consensus.RaftCore, cc raft.ConfChange) {
	if err := c.RawNode.ProposeConfChange(cc); err != nil {
		s.Logger.Debug("meta membership change refused for now", "change", cc.String(), "err", err)
		return
	}
	s.Logger.Info("changing meta's membership", "change", cc.String())
}

// SetDeadForGood gives the store the placement driver's verdict on nodes:
// f reports whether a node has been dead long enough that its replicas
// move (kv's DeadAfter). driveMeta then swaps such a voter of meta for a
// live learner. f is called on the store's goroutine and must not block.
func (s *Store) SetDeadForGood(f func(nodeID uint64) bool) { s.deadForGood.Store(&f) }
