package consensus

import (
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
)

// A leader's appends, heartbeats and snapshots may leave before the sync,
// in a term that was durable before the Ready; nothing else may.
func TestEagerRaft(t *testing.T) {
	durable := raft.HardState{Term: 5, Vote: 1, Commit: 10}
	for _, c := range []struct {
		name string
		m    raft.Message
		hs   raft.HardState
		want bool
	}{
		{"append", raft.Message{Type: raft.MsgApp, Term: 5}, raft.HardState{}, true},
		{"append, commit advanced", raft.Message{Type: raft.MsgApp, Term: 5}, raft.HardState{Term: 5, Vote: 1, Commit: 12}, true},
		{"heartbeat", raft.Message{Type: raft.MsgHeartbeat, Term: 5}, raft.HardState{}, true},
		{"snapshot", raft.Message{Type: raft.MsgSnap, Term: 5}, raft.HardState{}, true},
		{"append in a new term", raft.Message{Type: raft.MsgApp, Term: 6}, raft.HardState{Term: 6, Vote: 1}, false},
		{"append, vote changed", raft.Message{Type: raft.MsgApp, Term: 5}, raft.HardState{Term: 5, Vote: 2}, false},
		{"append of an older term", raft.Message{Type: raft.MsgApp, Term: 4}, raft.HardState{}, false},
		{"append response", raft.Message{Type: raft.MsgAppResp, Term: 5}, raft.HardState{}, false},
		{"vote", raft.Message{Type: raft.MsgVote, Term: 5}, raft.HardState{}, false},
		{"vote response", raft.Message{Type: raft.MsgVoteResp, Term: 5}, raft.HardState{}, false},
		{"pre-vote", raft.Message{Type: raft.MsgPreVote, Term: 6}, raft.HardState{}, false},
		{"pre-vote response", raft.Message{Type: raft.MsgPreVoteResp, Term: 5}, raft.HardState{}, false},
		{"heartbeat response", raft.Message{Type: raft.MsgHeartbeatResp, Term: 5}, raft.HardState{}, false},
		{"timeout now", raft.Message{Type: raft.MsgTimeoutNow, Term: 5}, raft.HardState{}, false},
	} {
		if got := eagerRaft(&c.m, c.hs, durable); got != c.want {
			t.Errorf("%s: eager = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEagerPaxos(t *testing.T) {
	b := paxos.Ballot{Round: 3, NodeID: 1}
	durable := paxos.HardState{Promised: b, Commit: 7}
	higher := paxos.Ballot{Round: 4, NodeID: 1}
	for _, c := range []struct {
		name string
		m    paxos.Message
		hs   paxos.HardState
		want bool
	}{
		{"accept", paxos.Message{Type: paxos.MsgAccept, Ballot: b}, durable, true},
		{"accept, commit advanced", paxos.Message{Type: paxos.MsgAccept, Ballot: b}, paxos.HardState{Promised: b, Commit: 9}, true},
		{"heartbeat", paxos.Message{Type: paxos.MsgHeartbeat, Ballot: b}, durable, true},
		{"snapshot", paxos.Message{Type: paxos.MsgSnapshot, Ballot: b}, durable, true},
		{"accept at a new ballot", paxos.Message{Type: paxos.MsgAccept, Ballot: higher}, paxos.HardState{Promised: higher}, false},
		{"accept, promise raised", paxos.Message{Type: paxos.MsgAccept, Ballot: b}, paxos.HardState{Promised: higher}, false},
		{"prepare", paxos.Message{Type: paxos.MsgPrepare, Ballot: b}, durable, false},
		{"promise", paxos.Message{Type: paxos.MsgPromise, Ballot: b}, durable, false},
		{"accepted", paxos.Message{Type: paxos.MsgAccepted, Ballot: b}, durable, false},
		{"heartbeat response", paxos.Message{Type: paxos.MsgHeartbeatResp, Ballot: b}, durable, false},
		{"timeout now", paxos.Message{Type: paxos.MsgTimeoutNow, Ballot: b}, durable, false},
	} {
		if got := eagerPaxos(&c.m, c.hs, durable); got != c.want {
			t.Errorf("%s: eager = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSplitEagerKeepsOrder(t *testing.T) {
	msgs := []raft.Message{
		{Type: raft.MsgApp, To: 2, Index: 1}, {Type: raft.MsgAppResp, To: 3}, {Type: raft.MsgApp, To: 2, Index: 2},
		{Type: raft.MsgVoteResp, To: 3}, {Type: raft.MsgHeartbeat, To: 3},
	}
	rd := Ready{}
	for i := range msgs {
		rd.Messages = append(rd.Messages, PeerMessage{Raft: &msgs[i]})
	}
	splitEager(&rd, func(m PeerMessage) bool {
		return m.Raft.Type == raft.MsgApp || m.Raft.Type == raft.MsgHeartbeat
	})
	want := func(part []PeerMessage, idx ...int) {
		t.Helper()
		if len(part) != len(idx) {
			t.Fatalf("%d messages, want %d", len(part), len(idx))
		}
		for i, j := range idx {
			if part[i].Raft != &msgs[j] {
				t.Errorf("message %d is %v, want %v", i, *part[i].Raft, msgs[j])
			}
		}
	}
	want(rd.Eager, 0, 2, 4)
	want(rd.Messages, 1, 3)

	none := Ready{Messages: rd.Messages}
	splitEager(&none, func(PeerMessage) bool { return false })
	if none.Eager != nil || len(none.Messages) != 2 {
		t.Errorf("with nothing eager: Eager %v, %d Messages", none.Eager, len(none.Messages))
	}
}
