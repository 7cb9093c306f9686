package store

import (
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/raft"
)

// driveRangesEveryTicks is how often the store checks the configurations
// of the Raft ranges it leads against the catalog: every second at the
// usual 100 ms tick, a small cost next to the moves it drives.
const driveRangesEveryTicks = 10

// driveRanges makes the Raft configuration of every range this node leads
// (meta aside, see driveMeta) follow the replicas the catalog gives it,
// after a move (catalog.MoveReplica):
//
//  1. a replica the catalog added and the configuration lacks joins as a
//     learner: it gets the range's log or a snapshot without counting for
//     commit, so the range keeps its quorum while it catches up;
//  2. once every such learner holds the leader's whole committed log, they
//     become voters and the voters the catalog no longer lists leave, in
//     one joint change, which the leader leaves by itself once applied;
//  3. a learner the catalog no longer lists is removed.
//
// One change at a time per range: Raft refuses a second one while the
// first is pending, and a later pass tries again. The catalog is the
// intent and the range's log the fact; each pass moves one step toward
// the intent, so a leader change or a restart in the middle resumes where
// the new leader finds the range.
func (s *Store) driveRanges() {
	if s.Quiesce.ticks%driveRangesEveryTicks != 0 {
		return
	}
	for _, r := range s.sortedReplicas() {
		if r.desc.ID == catalog.MetaRangeID || r.Role != consensus.RoleLeader {
			continue
		}
		c, ok := r.Core.(*consensus.RaftCore)
		if !ok {
			continue
		}
		if cc, ok := nextRangeChange(c, r.desc); ok {
			s.wake(r)
			if err := c.RawNode.ProposeConfChange(cc); err != nil {
				s.Logger.Debug("range membership change refused for now", "range", r.desc.ID, "change", cc.String(), "err", err)
				continue
			}
			s.Logger.Info("changing a range's membership to follow the catalog", "range", r.desc.ID, "keyspace", r.desc.Keyspace, "change", cc.String())
		}
	}
}

// nextRangeChange returns the next configuration change that brings the
// range's Raft configuration toward desc's replicas, if there is one now.
func nextRangeChange(c *consensus.RaftCore, desc *catalog.RangeDescriptor) (raft.ConfChange, bool) {
	cs := c.RawNode.ConfState()
	if cs.Joint() {
		return raft.ConfChange{}, false // the leader leaves it by itself
	}
	want := map[uint64]catalog.ReplicaDescriptor{}
	for _, rep := range desc.Replicas {
		want[rep.NodeID] = rep
	}
	voter := map[uint64]bool{}
	for _, v := range cs.Voters {
		voter[v.ID] = true
	}
	learner := map[uint64]bool{}
	for _, l := range cs.Learners {
		learner[l] = true
	}
	member := func(rep catalog.ReplicaDescriptor) raft.Member {
		return raft.Member{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight}
	}
	// 1. Missing replicas join as learners.
	for _, rep := range desc.Replicas {
		if !voter[rep.NodeID] && !learner[rep.NodeID] {
			return raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeAddLearner, Member: member(rep)}}}, true
		}
	}
	// 2. Caught-up learners become voters; the voters the catalog dropped
	// leave with them. Until every new one has caught up, nobody leaves.
	var promote []raft.ConfChangeSingle
	progress := c.RawNode.Status().Progress
	commit := c.Log.HardState.Commit
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		rep, ok := want[id]
		if !ok {
			continue
		}
		if pr, ok := progress[id]; !ok || pr.Match < commit {
			return raft.ConfChange{}, false
		}
		promote = append(promote, raft.ConfChangeSingle{Type: raft.ConfChangeAddVoter, Member: member(rep)})
	}
	if len(promote) > 0 {
		for _, v := range cs.Voters {
			if _, ok := want[v.ID]; !ok {
				promote = append(promote, raft.ConfChangeSingle{Type: raft.ConfChangeRemove, Member: raft.Member{ID: v.ID}})
			}
		}
		return raft.ConfChange{Changes: promote}, true
	}
	// 3. Learners the catalog dropped leave.
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		if _, ok := want[id]; !ok {
			return raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeRemove, Member: raft.Member{ID: id}}}}, true
		}
	}
	return raft.ConfChange{}, false
}
