package store

import (
	"context"
	"time"

	"github.com/quorumkv/quorumkv/kv/consensus"
)

// drainTransferWait bounds how long a draining node waits for its ranges'
// leaderships to move: a transfer takes a round trip and an election.
const drainTransferWait = 3 * time.Second

// TransferLeaderships asks every range this node leads, and that has
// another voter that may lead (mayLead: heard from lately, not draining),
// to hand leadership to it (consensus.Core.transferLeader), and waits (up to ctx or a few seconds) until they
// have. It reports how many moved and how many are still led here.
// Clients never wait out an election timeout because this node went away
// on purpose.
func (s *Store) TransferLeaderships(ctx context.Context) (moved, kept int) {
	ctx, cancel := context.WithTimeout(ctx, drainTransferWait)
	defer cancel()
	asked := map[uint64]bool{}
	_ = s.Do(ctx, func() {
		for id, r := range s.Replicas {
			if r.Role == consensus.RoleLeader && r.Core.TransferLeader(s.nodeID, s.mayLead) {
				asked[id] = true
			}
		}
	})
	if len(asked) == 0 {
		return 0, 0
	}
	for {
		kept = 0
		_ = s.Do(ctx, func() {
			for id := range asked {
				if r, ok := s.Replicas[id]; ok && r.Role == consensus.RoleLeader {
					kept++
				}
			}
		})
		if kept == 0 || ctx.Err() != nil {
			return len(asked) - kept, kept
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SetDraining marks this node draining (or not): on every pass of the
// range driver it asks each range it leads to hand its leadership to
// another voter, so a leadership it gains by an election it gives away
// again, until the flag is cleared or the node restarts. A node the
// catalog marks decommissioning drains as well, whatever the flag.
func (s *Store) SetDraining(on bool) { s.draining.Store(on) }

// Draining reports whether SetDraining marked this node draining, or the
// catalog marks it decommissioning.
func (s *Store) Draining() bool {
	return s.draining.Load() || s.Catalog().Nodes[s.nodeID].Decommissioning
}

// shedLeaderships is the draining node's pass: every range it leads is
// asked to transfer its leadership (one with no other voter that may lead
// stays).
// Loop only.
func (s *Store) shedLeaderships() {
	if s.Quiesce.ticks%driveRangesEveryTicks != 0 || !s.Draining() {
		return
	}
	for _, r := range s.sortedReplicas() {
		if r.Role == consensus.RoleLeader {
			s.wake(r)
			r.Core.TransferLeader(s.nodeID, s.mayLead)
		}
	}
}
