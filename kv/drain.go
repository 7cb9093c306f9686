package kv

import (
	"context"
	"time"

	"github.com/quorumkv/quorumkv/raft"
)

// drainTransferWait bounds how long a draining node waits for its ranges'
// leaderships to move: a transfer takes a round trip and an election.
const drainTransferWait = 3 * time.Second

// TransferLeaderships asks every range this node leads, and that has
// another voter, to hand leadership to its most caught-up voter, and waits
// (up to ctx or a few seconds) until they have. It reports how many moved
// and how many are still led here. Clients of a range never wait out an
// election timeout because this node went away on purpose.
func (s *Store) TransferLeaderships(ctx context.Context) (moved, kept int) {
	ctx, cancel := context.WithTimeout(ctx, drainTransferWait)
	defer cancel()
	asked := map[uint64]bool{}
	_ = s.do(ctx, func() {
		for id, r := range s.replicas {
			if r.state != raft.StateLeader {
				continue
			}
			if to := bestTransferee(s.nodeID, r); to != 0 && r.rn.TransferLeader(to) == nil {
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
				if r, ok := s.replicas[id]; ok && r.state == raft.StateLeader {
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

// bestTransferee is the voter other than self with the highest match index.
func bestTransferee(self uint64, r *replica) uint64 {
	var best uint64
	var bestMatch uint64
	progress := r.rn.Status().Progress
	for _, v := range r.rn.ConfState().Voters {
		pr, ok := progress[v.ID]
		if v.ID == self || !ok || !pr.RecentActive {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = v.ID, pr.Match
		}
	}
	return best
}
