package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// steppedDown is a core that has stepped down since its last Ready (the
// replica's Role still says leader): it refuses proposals and reads with
// its protocol's error, as a real core does between the message that made
// it a follower and the Ready that tells the store.
type steppedDown struct {
	consensus.Core
	err error
}

func (c steppedDown) Propose([]byte) error   { return c.err }
func (c steppedDown) ReadIndex([]byte) error { return c.err }

// A core that no longer leads refuses a request with its protocol's
// not-leader error, before the store has heard of the change. That is
// NotLeaderError, which kv/server forwards to the new leader, and not
// Unavailable, which it answered at once: found by e2e's
// TestRequestsFailOverFromPausedLeader, a paxos leader paused under
// writes. Any other refusal stays Unavailable.
func TestRefusalOfACoreThatStoppedLeading(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, _ := openSingle(ctx, t)
	for _, tc := range []struct {
		name      string
		err       error
		notLeader bool
	}{
		{"raft over the limit", raft.ErrProposalDropped, false},
		{"raft follower", errors.Join(raft.ErrProposalDropped, raft.ErrNotLeader), true},
		{"raft transfer", errors.Join(raft.ErrProposalDropped, raft.ErrTransferring), true},
		{"paxos follower", paxos.ErrNotLeader, true},
		{"paxos over the limit", paxos.ErrProposalDropped, false},
	} {
		var real consensus.Core
		var proposeErr error
		if err := s.Do(ctx, func() {
			r := s.Replicas[catalog.MetaRangeID]
			real, r.Core = r.Core, steppedDown{Core: r.Core, err: tc.err}
			_, proposeErr = s.StartPropose(catalog.MetaRangeID, &command.Command{Op: command.OpPut, Key: []byte("k")}, func(command.Result) {})
		}); err != nil {
			t.Fatal(err)
		}
		readErr := s.ReadBarrier(ctx, catalog.MetaRangeID)
		if err := s.Do(ctx, func() { s.Replicas[catalog.MetaRangeID].Core = real }); err != nil {
			t.Fatal(err)
		}
		for what, err := range map[string]error{"a proposal": proposeErr, "a read": readErr} {
			var nl *NotLeaderError
			switch {
			case tc.notLeader && !errors.As(err, &nl):
				t.Errorf("%s: %s refused with %v: %v, want NotLeaderError", tc.name, what, tc.err, err)
			case !tc.notLeader && (!errors.Is(err, ErrUnavailable) || errors.As(err, &nl)):
				t.Errorf("%s: %s refused with %v: %v, want ErrUnavailable", tc.name, what, tc.err, err)
			}
		}
	}
	if err := s.ReadBarrier(ctx, catalog.MetaRangeID); err != nil {
		t.Fatalf("meta does not serve with its own core back: %v", err)
	}
}
