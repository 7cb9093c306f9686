package store

import (
	"cmp"
	"errors"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// The paxos side of the range driver: the configuration of every paxos
// range this node leads follows the replicas the catalog gives it, through
// the range's log (paxos/reconfig.go).
//
// A paxos range has no learners: a replica the catalog adds joins as an
// acceptor that knows nothing (consensus.NewPaxosCore), counted in the
// new configuration at once, and the leader sends it a snapshot. So each
// configuration changes one replica at a time, adding one the catalog
// lists and removing one it dropped, and the next change waits until
// every replica added earlier has installed its snapshot
// (consensus.PaxosCore.Joined). A range thus never counts on two replicas
// that hold nothing, and the replicas that leave still hold the range
// while the ones that stay do not all hold it yet. One change at a time:
// none while another is proposed and not chosen, or chosen and not yet in
// force (the leader fills the slots up to it with no-ops). Joiners still
// catching up count against MaxCatchingUp, as Raft learners do, from the
// pass that proposes the configuration that adds them (paxosCatchingUp).
//
// A leader the configuration in force leaves out goes on proposing (Paxos
// needs no proposer to be an acceptor), but its own acceptances no longer
// count: it hands its leadership to a voter, so that a removed node does
// not lead for good.

// drivePaxos makes the configuration of the paxos ranges in led follow the
// catalog, adding joiners only while catchingUp, the replicas catching up
// in the ranges this node leads, leaves room for them (MaxCatchingUp).
// Loop only.
func (s *Store) drivePaxos(led []*replica, catchingUp int) {
	for _, r := range led {
		c := r.Core.(*consensus.PaxosCore)
		if !c.Voter(s.nodeID) {
			s.wake(r)
			if c.TransferLeader(s.nodeID, func(id uint64) bool { return s.mayLead(id) && c.Joined(id) }) {
				s.Logger.Info("handing the leadership of a range this node was removed from", "range", r.desc.ID)
			}
			continue
		}
		if len(paxosCatchingUp(r, c)) > 0 {
			// A quiesced leader sends a joiner nothing, not even the
			// heartbeat whose answer gets it its snapshot.
			s.wake(r)
		}
		m, added, ok := nextPaxosConfig(c, r.desc)
		if !ok {
			continue
		}
		if n := len(added); n > 0 && catchingUp > 0 && catchingUp+n > MaxCatchingUp {
			continue // a later pass adds them
		}
		s.wake(r)
		if err := c.ProposeConfig(m); err != nil {
			if !errors.Is(err, paxos.ErrConfigChangePending) {
				s.Logger.Warn("range configuration refused", "range", r.desc.ID, "config", m.String(), "err", err)
			}
			continue
		}
		for _, id := range added {
			r.startCatchUp(id)
		}
		catchingUp += len(added)
		s.Logger.Info("changing a range's membership to follow the catalog", "range", r.desc.ID, "keyspace", r.desc.Keyspace, "config", m.String())
	}
}

// nextPaxosConfig returns the next configuration that brings the paxos
// range's toward desc's replicas, and the replicas it adds, if there is
// one to propose now: it swaps one replica of the newest configuration
// (one the catalog dropped for one it added), or adds or removes one, in
// the catalog's geometry; if that step is not a valid configuration of
// the geometry (a grid needs its full size), the catalog's whole set.
func nextPaxosConfig(c *consensus.PaxosCore, desc *catalog.RangeDescriptor) (paxos.Membership, []uint64, bool) {
	cs := c.Configs()
	if len(cs) == 0 || c.ConfigChangePending() {
		return paxos.Membership{}, nil, false
	}
	cur := cs[len(cs)-1].Membership
	want := consensus.Membership(desc)
	if sameMembership(cur, want) {
		return paxos.Membership{}, nil, false
	}
	if joiningVoters(c, desc, cur) > 0 {
		return paxos.Membership{}, nil, false // the replicas added last must hold the range first
	}
	next := paxos.Membership{Geometry: want.Geometry}
	removed := false
	for _, v := range cur.Voters {
		if !removed && !hasVoter(want, v.ID) {
			removed = true
			continue
		}
		if i := slices.IndexFunc(want.Voters, func(n quorum.Node) bool { return n.ID == v.ID }); i >= 0 {
			v = want.Voters[i] // the catalog's zone and weight
		}
		next.Voters = append(next.Voters, v)
	}
	for _, v := range want.Voters {
		if !hasVoter(cur, v.ID) {
			next.Voters = append(next.Voters, v)
			break
		}
	}
	if _, err := next.System(); err != nil || len(next.Voters) == 0 {
		next = want
	}
	var added []uint64
	for _, v := range next.Voters {
		if !hasVoter(cur, v.ID) {
			added = append(added, v.ID)
		}
	}
	return next, added, true
}

// hasVoter reports whether id votes in m.
func hasVoter(m paxos.Membership, id uint64) bool {
	return slices.ContainsFunc(m.Voters, func(n quorum.Node) bool { return n.ID == id })
}

// joiningVoters counts the voters of m that desc lists as replicas added
// by a move (catalog.ReplicaDescriptor.Added) and that have not answered
// this leader as holding the range: joiners still waiting for their
// snapshot, or not heard from yet.
func joiningVoters(c *consensus.PaxosCore, desc *catalog.RangeDescriptor, m paxos.Membership) int {
	n := 0
	for _, rep := range desc.Replicas {
		if rep.Added && hasVoter(m, rep.NodeID) && !c.Joined(rep.NodeID) {
			n++
		}
	}
	return n
}

// sameMembership compares two configurations regardless of voter order.
func sameMembership(a, b paxos.Membership) bool {
	sorted := func(m paxos.Membership) string {
		m.Voters = slices.SortedFunc(slices.Values(m.Voters), func(x, y quorum.Node) int { return cmp.Compare(x.ID, y.ID) })
		return m.String()
	}
	return sorted(a) == sorted(b)
}

// paxosMembers returns the voters of every configuration of c that
// governs a slot after the applied one: the one in force for this
// replica's data and any chosen since.
func paxosMembers(c *consensus.PaxosCore) []uint64 {
	var ids []uint64
	for _, cs := range c.Configs() {
		for _, v := range cs.Membership.Voters {
			if !slices.Contains(ids, v.ID) {
				ids = append(ids, v.ID)
			}
		}
	}
	return ids
}

// paxosCatchingUp returns the replicas of paxos range r, which this node
// leads, that are catching up or may be, none of which has answered this
// leader as holding the range: the voters of the newest configuration
// that the catalog lists as added by a move (joiningVoters: a new leader
// counts every one it has not heard from yet), and the ones this leader
// added whose configuration is not chosen yet.
func paxosCatchingUp(r *replica, c *consensus.PaxosCore) []uint64 {
	cs := c.Configs()
	if len(cs) == 0 {
		return nil
	}
	newest := cs[len(cs)-1].Membership
	var ids []uint64
	for _, rep := range r.desc.Replicas {
		if c.Joined(rep.NodeID) {
			continue
		}
		if (rep.Added && hasVoter(newest, rep.NodeID)) || r.startedCatchUp(rep.NodeID) {
			ids = append(ids, rep.NodeID)
		}
	}
	return ids
}
