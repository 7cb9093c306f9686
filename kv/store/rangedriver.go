package store

import (
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/raft"
)

// driveRangesEveryTicks is how often the store checks the configurations
// of the Raft and paxos ranges it leads against the catalog: every second at the
// usual 100 ms tick, a small cost next to the moves it drives.
const driveRangesEveryTicks = 10

// MaxCatchingUp bounds the catch-ups a node starts: the learners (raft)
// and joiners (paxos) its range driver adds to the ranges it leads. Each
// may need a snapshot of its whole range from this node, read and sent
// while clients are served, so a dead node's replicas are rebuilt a few
// at a time (CockroachDB and TiKV bound their snapshots the same way).
//
// The driver proposes a change that adds replicas only while those it
// adds and the replicas already catching up in the ranges this node leads
// come to at most MaxCatchingUp, or none is catching up (a change may add
// more than one: a paxos range whose geometry cannot swap one replica at
// a time takes the catalog's whole replica set at once). A replica counts
// as catching up from the pass that proposes the change that adds it,
// applied or not, until the leader hears that it holds the range. So the
// catch-ups a node started and that still run (CatchingUp) never exceed
// MaxCatchingUp, or what one change adds if that is more.
//
// That is all a node can promise. A range it comes to lead (an election,
// a leadership transfer) brings the catch-ups under way in it, which
// another leader started and this one cannot refuse without refusing to
// lead. They count against the catch-ups it starts next (a new leader
// counts every replica added to the range that it has not heard from
// yet), but the replicas catching up in the ranges a node leads may be
// more than MaxCatchingUp until they finish.
//
// Too low rebuilds a dead node's replicas one or two at a time, so its
// ranges stay under-replicated longer; too high lets snapshots crowd out
// the leader's disk, network and CPU while clients are served.
const MaxCatchingUp = 4

// driveRanges makes the Raft configuration of every range this node leads
// (meta aside, see driveMeta) follow the replicas the catalog gives it,
// after a move (catalog.MoveReplica):
//
//  1. a learner the catalog no longer lists is removed (a move took it
//     off a node that died before it caught up: it never would);
//  2. a replica the catalog added and the configuration lacks joins as a
//     learner: it gets the range's log or a snapshot without counting for
//     commit, so the range keeps its quorum while it catches up;
//  3. once every such learner holds the leader's whole committed log, they
//     become voters and the voters the catalog no longer lists leave, in
//     one joint change, which the leader leaves by itself once applied.
//
// One change at a time per range: Raft refuses a second one while the
// first is pending, and a later pass tries again. A learner is added only
// while the ranges this node leads have fewer than MaxCatchingUp replicas
// catching up (MaxCatchingUp says what that bounds). The catalog is the
// intent and the range's log the fact; each pass moves one step toward
// the intent, so a leader change or a restart in the middle resumes where
// the new leader finds the range. Paxos ranges follow the catalog too,
// one replica at a time (paxosdriver.go), under the same MaxCatchingUp.
func (s *Store) driveRanges() {
	if s.Quiesce.ticks%driveRangesEveryTicks != 0 {
		return
	}
	s.publishMembers()
	s.balanceLeaders()
	var led, ledPaxos []*replica
	catchingUp := 0
	for _, r := range s.sortedReplicas() {
		if r.desc.ID == catalog.MetaRangeID || r.Role != consensus.RoleLeader {
			r.catchUps = nil // started under a leadership that is over
			continue
		}
		ids := catchingUpReplicas(r)
		r.keepCatchUps(ids)
		catchingUp += len(ids)
		switch r.Core.(type) {
		case *consensus.RaftCore:
			led = append(led, r)
		case *consensus.PaxosCore:
			ledPaxos = append(ledPaxos, r)
		}
	}
	for _, r := range led {
		c := r.Core.(*consensus.RaftCore)
		cc, ok := nextRangeChange(c, r.desc)
		if !ok {
			continue
		}
		learner, adds := addedLearner(cc)
		if adds && r.startedCatchUp(learner) {
			adds = false // counted already: proposed, not applied yet
		}
		if adds && catchingUp >= MaxCatchingUp {
			continue // a later pass adds it
		}
		s.wake(r)
		if err := c.RawNode.ProposeConfChange(cc); err != nil {
			s.Logger.Debug("range membership change refused for now", "range", r.desc.ID, "change", cc.String(), "err", err)
			continue
		}
		if adds {
			r.startCatchUp(learner)
			catchingUp++
		}
		s.Logger.Info("changing a range's membership to follow the catalog", "range", r.desc.ID, "keyspace", r.desc.Keyspace, "change", cc.String())
	}
	s.drivePaxos(ledPaxos, catchingUp)
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
	// 1. Learners the catalog dropped leave.
	for _, id := range slices.Sorted(slices.Values(cs.Learners)) {
		if _, ok := want[id]; !ok {
			return raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeRemove, Member: raft.Member{ID: id}}}}, true
		}
	}
	// 2. Missing replicas join as learners.
	for _, rep := range desc.Replicas {
		if !voter[rep.NodeID] && !learner[rep.NodeID] {
			return raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfChangeAddLearner, Member: member(rep)}}}, true
		}
	}
	// 3. Caught-up learners become voters; the voters the catalog dropped
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
	return raft.ConfChange{}, false
}

// catchingUpReplicas returns the replicas of r, a range this node leads,
// that are catching up, or may be, in the catalog's order: the ones
// MaxCatchingUp counts (raftCatchingUp, paxosCatchingUp).
func catchingUpReplicas(r *replica) []uint64 {
	switch c := r.Core.(type) {
	case *consensus.RaftCore:
		return raftCatchingUp(r, c)
	case *consensus.PaxosCore:
		return paxosCatchingUp(r, c)
	}
	return nil
}

// raftCatchingUp returns the replicas of raft range r, which this node
// leads, that are catching up: the learners the catalog lists that do not
// hold the committed log (a new leader counts every one it has not heard
// from yet), and the replicas this leader added whose change is not
// applied yet. A learner the catalog dropped is on its way out, not
// catching up.
func raftCatchingUp(r *replica, c *consensus.RaftCore) []uint64 {
	cs := c.RawNode.ConfState()
	var progress map[uint64]raft.Progress
	var ids []uint64
	for _, rep := range r.desc.Replicas {
		id := rep.NodeID
		switch {
		case slices.Contains(cs.Learners, id):
			if progress == nil {
				progress = c.RawNode.Status().Progress
			}
			if pr, ok := progress[id]; ok && pr.Match >= c.Log.HardState.Commit {
				continue
			}
		case slices.ContainsFunc(cs.Voters, func(v raft.Member) bool { return v.ID == id }):
			continue
		case !r.startedCatchUp(id):
			continue // not added yet
		}
		ids = append(ids, id)
	}
	return ids
}

// addedLearner returns the learner cc adds, if it adds one.
func addedLearner(cc raft.ConfChange) (uint64, bool) {
	if len(cc.Changes) == 1 && cc.Changes[0].Type == raft.ConfChangeAddLearner {
		return cc.Changes[0].Member.ID, true
	}
	return 0, false
}

// startCatchUp records that this node's range driver added replica id to
// r, which it leads.
func (r *replica) startCatchUp(id uint64) {
	if r.catchUps == nil {
		r.catchUps = map[uint64]uint64{}
	}
	r.catchUps[id] = r.Core.Status().Term
}

// startedCatchUp reports whether this node's range driver added replica
// id to r while leading r as it does now (in the same term or ballot
// round): a catch-up this node started, not one it took over with the
// leadership.
func (r *replica) startedCatchUp(id uint64) bool {
	term, ok := r.catchUps[id]
	return ok && r.Role == consensus.RoleLeader && term == r.Core.Status().Term
}

// keepCatchUps forgets the catch-ups r's record holds that are over: not
// in ids (catchingUpReplicas), or started under an earlier leadership.
func (r *replica) keepCatchUps(ids []uint64) {
	for id := range r.catchUps {
		if !slices.Contains(ids, id) || !r.startedCatchUp(id) {
			delete(r.catchUps, id)
		}
	}
}

// CatchingUp counts the catch-ups this node started that still run: the
// replicas its range driver added, as learners or paxos joiners, to the
// ranges it leads, while leading them as it does now, that are catching
// up or may be (catchingUpReplicas). MaxCatchingUp bounds it; the ranges
// a node took over may have more replicas catching up (see there). Loop
// only.
func (s *Store) CatchingUp() int {
	n := 0
	for _, r := range s.Replicas {
		if r.Role != consensus.RoleLeader || r.desc.ID == catalog.MetaRangeID {
			continue
		}
		for _, id := range catchingUpReplicas(r) {
			if r.startedCatchUp(id) {
				n++
			}
		}
	}
	return n
}

// rangeMembers are the applied configurations of the Raft and paxos
// ranges on this node, as publishMembers last saw them.
type rangeMembers struct {
	// ranges are the members of each range but meta whose configuration
	// has this node as a voter: voters and learners, old and new while
	// joint (LetGo); for a paxos range, the voters of the configuration
	// in force at the applied slot and of every one chosen since.
	ranges map[uint64][]uint64
	// metaVoters are meta's voters, old and new while joint (MetaVoters).
	metaVoters []uint64
}

// publishMembers publishes the members of every Raft and paxos range here, on the
// range driver's cadence: a configuration LetGo or MetaVoters reads is at
// most that old, which only delays a Left or a removal. Loop only.
func (s *Store) publishMembers() {
	m := rangeMembers{ranges: make(map[uint64][]uint64, len(s.Replicas))}
	for id, r := range s.Replicas {
		if pc, ok := r.Core.(*consensus.PaxosCore); ok {
			if ids := paxosMembers(pc); slices.Contains(ids, s.nodeID) || s.Config.Canary.LetGoEarly {
				// The leader this replica follows still proposes, removed
				// or not: its replica goes only once another leads, or
				// the range's followers, deferring to it, would wait on
				// a leader that is gone while its node still beacons.
				m.ranges[id] = append(ids, r.Leader)
			}
			continue
		}
		c, ok := r.Core.(*consensus.RaftCore)
		if !ok {
			continue
		}
		cs := c.RawNode.ConfState()
		var ids []uint64
		for _, v := range slices.Concat(cs.Voters, cs.VotersOutgoing) {
			ids = append(ids, v.ID)
		}
		switch {
		case id == catalog.MetaRangeID:
			m.metaVoters = ids
		case slices.Contains(ids, s.nodeID) || s.Config.Canary.LetGoEarly:
			m.ranges[id] = append(append(ids, cs.Learners...), cs.LearnersNext...)
		}
	}
	s.members.Store(&m)
}

// MetaVoters returns meta's voters, old and new while joint, as this
// node's replica of meta last applied them (publishMembers). Safe on any
// goroutine.
func (s *Store) MetaVoters() []uint64 {
	if p := s.members.Load(); p != nil {
		return p.metaVoters
	}
	return nil
}

// LetGo reports whether this node's replica of Raft range rangeID has
// applied a configuration that has this node as a voter and leaves node
// out, joint or not: one a quorum committed, so the range never counts
// node's vote again, and node's replica may be deleted
// (catalog.CatalogOp.Left). For a paxos range: the configuration in
// force at this replica's applied slot, and every one chosen since, has
// this node as a voter and leaves node out, and node is not the leader
// this replica follows (a removed leader hands its leadership on first,
// paxosdriver.go). False when this node holds no
// replica of it, or one not a voter yet (a new replica, before its first
// snapshot, has no configuration at all). Safe on any goroutine.
func (s *Store) LetGo(rangeID, node uint64) bool {
	p := s.members.Load()
	if p == nil {
		return false
	}
	ids, ok := p.ranges[rangeID]
	return ok && !slices.Contains(ids, node)
}
