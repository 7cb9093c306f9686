package kv

import (
	"context"
	"time"
)

// drainTransferWait bounds how long a draining node waits for its ranges'
// leaderships to move: a transfer takes a round trip and an election.
const drainTransferWait = 3 * time.Second

// TransferLeaderships asks every range this node leads, and that has
// another voter, to hand leadership to its most caught-up voter, and waits
// (up to ctx or a few seconds) until they have. It reports how many moved
// and how many are still led here. Clients of a raft range never wait out
// an election timeout because this node went away on purpose. Paxos ranges
// are skipped: Multi-Paxos has no leadership transfer, so their clients
// wait for a follower's election timeout.
func (s *Store) TransferLeaderships(ctx context.Context) (moved, kept int) {
	ctx, cancel := context.WithTimeout(ctx, drainTransferWait)
	defer cancel()
	asked := map[uint64]bool{}
	_ = s.do(ctx, func() {
		for id, r := range s.replicas {
			// A paxos range cannot hand over (consensusCore.transferLeader):
			// its clients wait out one election timeout.
			if r.role == roleLeader && r.core.transferLeader(s.nodeID) {
				asked[id] = true
			}
		}
	})
	if len(asked) == 0 {
		return 0, 0
	}
	for {
		kept = 0
		_ = s.do(ctx, func() {
			for id := range asked {
				if r, ok := s.replicas[id]; ok && r.role == roleLeader {
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
