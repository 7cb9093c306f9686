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

// MaxCatchingUp bounds the learners this node's ranges are catching up at
// once: each may need a snapshot of its whole range from this node, read
// and sent while clients are served, so a dead node's replicas are
// rebuilt a few at a time (CockroachDB and TiKV bound their snapshots the
// same way).
const MaxCatchingUp = 4

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
// first is pending, and a later pass tries again. A learner is added only
// while the ranges this node leads have fewer than MaxCatchingUp learners
// still catching up. The catalog is the
// intent and the range's log the fact; each pass moves one step toward
// the intent, so a leader change or a restart in the middle resumes where
// the new leader finds the range.
func (s *Store) driveRanges() {
	if s.Quiesce.ticks%driveRangesEveryTicks != 0 {
		return
	}
	var led []*replica
	catchingUp := 0
	for _, r := range s.sortedReplicas() {
		if r.desc.ID == catalog.MetaRangeID || r.Role != consensus.RoleLeader {
			continue
		}
		if c, ok := r.Core.(*consensus.RaftCore); ok {
			led = append(led, r)
			catchingUp += laggingLearners(c)
		}
	}
	for _, r := range led {
		c := r.Core.(*consensus.RaftCore)
		cc, ok := nextRangeChange(c, r.desc)
		if !ok {
			continue
		}
		if isAddLearner(cc) {
			if catchingUp >= MaxCatchingUp {
				continue // a later pass adds it
			}
			catchingUp++
		}
		s.wake(r)
		if err := c.RawNode.ProposeConfChange(cc); err != nil {
			s.Logger.Debug("range membership change refused for now", "range", r.desc.ID, "change", cc.String(), "err", err)
			continue
		}
		s.Logger.Info("changing a range's membership to follow the catalog", "range", r.desc.ID, "keyspace", r.desc.Keyspace, "change", cc.String())
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

// laggingLearners counts c's learners that do not hold its committed log.
func laggingLearners(c *consensus.RaftCore) int {
	learners := c.RawNode.ConfState().Learners
	if len(learners) == 0 {
		return 0
	}
	progress := c.RawNode.Status().Progress
	n := 0
	for _, id := range learners {
		if pr, ok := progress[id]; !ok || pr.Match < c.Log.HardState.Commit {
			n++
		}
	}
	return n
}

func isAddLearner(cc raft.ConfChange) bool {
	return len(cc.Changes) == 1 && cc.Changes[0].Type == raft.ConfChangeAddLearner
}

// CatchingUp counts the learners still catching up in the ranges this
// node leads (the bound MaxCatchingUp holds). Loop only.
func (s *Store) CatchingUp() int {
	n := 0
	for _, r := range s.Replicas {
		if c, ok := r.Core.(*consensus.RaftCore); ok && r.Role == consensus.RoleLeader && r.desc.ID != catalog.MetaRangeID {
			n += laggingLearners(c)
		}
	}
	return n
}
