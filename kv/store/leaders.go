package store

import (
	"cmp"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
)

// Leadership balancing. A range's leader does the range's work: it
// sequences every write and confirms every linearizable read. Ranges
// elect whichever replica times out first, so a node that was up first,
// or stayed up, ends up leading most of them while the others idle.
//
// So every range has a preferred leader, computed from the catalog alone
// (preferLeaders), the same on every node: the keyspace's ranges, in
// order, each take the replica that is preferred for the fewest of them
// so far, and among those the one preferred for the fewest ranges of all
// keyspaces so far. A keyspace's leaderships are then spread over its
// nodes as evenly as its replica sets allow, and the remainders of many
// keyspaces (one range each, or 8 over 3 nodes) fall on different nodes,
// not all on the lowest ID. On every pass of the range driver, a
// node that leads a range it is not preferred for hands the leadership
// to the preferred node, if that node was heard from lately, is not
// draining, and holds the whole log (so the transfer takes a round trip,
// during which the range refuses proposals); at most
// maxLeaderTransfersPerPass a pass. A preferred node that is down or
// draining leaves its ranges to whoever wins their elections, and gets
// them back when it returns.

// maxLeaderTransfersPerPass bounds the leaderships one pass hands away:
// each costs the range a short pause (the transfer's round trip), so a
// node that leads many ranges it is not preferred for sheds them over a
// few seconds rather than all at once.
const maxLeaderTransfersPerPass = 4

// beaconFreshTicks is how recently a node must have been heard from to
// be handed a leadership (mayLead): beacons come every tick, so a node
// silent for longer may have died, and a transfer to it would stall the
// range until the transfer times out.
const beaconFreshTicks = 3

// mayLead reports whether node id may be handed a leadership: it was
// heard from (a beacon or any message) within beaconFreshTicks, and its
// last beacon did not say it is draining. Loop only.
func (s *Store) mayLead(id uint64) bool {
	at, ok := s.Quiesce.heard[id]
	return ok && s.Quiesce.ticks-at <= beaconFreshTicks && !s.drainingPeers[id]
}

// preferLeaders computes each consensus range's preferred leader from
// the catalog (see above): per keyspace in name order, in range order,
// the replica preferred for the fewest of the keyspace's ranges so far,
// then for the fewest ranges of all keyspaces so far, then the lowest ID.
func preferLeaders(cat *catalog.Catalog) map[uint64]uint64 {
	out := map[uint64]uint64{}
	total := map[uint64]int{}
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		if cat.Keyspaces[name].Mode == catalog.ModeEventual {
			continue
		}
		count := map[uint64]int{}
		for _, r := range cat.KeyspaceRanges(name) {
			var best uint64
			for _, rep := range r.Replicas {
				id := rep.NodeID
				if best == 0 || cmp.Or(cmp.Compare(count[id], count[best]), cmp.Compare(total[id], total[best]), cmp.Compare(id, best)) < 0 {
					best = id
				}
			}
			if best != 0 {
				out[r.ID] = best
				count[best]++
				total[best]++
			}
		}
	}
	return out
}

// balanceLeaders is the balancing pass (see above). Loop only.
func (s *Store) balanceLeaders() {
	if s.Draining() || s.Config.NoLeaderBalancing {
		return
	}
	moved := 0
	for _, r := range s.sortedReplicas() {
		if moved == maxLeaderTransfersPerPass {
			return
		}
		to := s.preferred[r.desc.ID]
		if r.desc.ID == catalog.MetaRangeID || r.Role != consensus.RoleLeader || to == 0 || to == s.nodeID ||
			!s.mayLead(to) || !r.Core.CaughtUp(to) || s.holdLeadership(r) {
			continue
		}
		s.wake(r)
		if r.Core.TransferLeader(s.nodeID, func(id uint64) bool { return id == to }) {
			s.Logger.Debug("handing a leadership to the range's preferred leader", "range", r.desc.ID, "to", to)
			moved++
		}
	}
}
