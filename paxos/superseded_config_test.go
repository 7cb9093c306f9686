package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// supersededConfigElection runs an election of node 1 among voters 1 2 3
// in which node 2 reports a configuration (voters 7 8 9, which never run)
// that it accepted in slot 2 at a low ballot, and node 3 reports another
// value that it accepted in the same slot at a higher ballot. Paxos's rule
// makes the configuration unchosen for good: a value chosen at a ballot
// is the value of every acceptance at a higher one. It reports node 1's
// role once both promises are in.
func supersededConfigElection(t *testing.T, c paxos.Canary) paxos.Role {
	cl := newCluster(1, members("majority", 1, 2, 3), c, nil)
	n1 := cl.nodes[1].rn
	var ballot paxos.Ballot
	for ballot.Round < 3 {
		n1.Campaign()
		cl.process()
		for _, m := range cl.queue {
			if m.Type == paxos.MsgPrepare {
				ballot = m.Ballot
			}
		}
		cl.queue = nil // the Prepares are answered by hand below
	}
	stale := members("majority", 7, 8, 9)
	promises := []paxos.Message{
		{Type: paxos.MsgPromise, From: 2, To: 1, Ballot: ballot, Slot: 1, Entries: []paxos.Entry{
			{Slot: 2, Ballot: paxos.Ballot{Round: 1, NodeID: 2}, Type: paxos.EntryConfig, Data: stale.Marshal()}}},
		{Type: paxos.MsgPromise, From: 3, To: 1, Ballot: ballot, Slot: 1, Entries: []paxos.Entry{
			{Slot: 2, Ballot: paxos.Ballot{Round: 2, NodeID: 3}, Type: paxos.EntryNormal, Data: []byte("v")}}},
	}
	for _, m := range promises {
		if err := n1.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	return n1.Status().Role
}

// A configuration that a promise reports but that a higher ballot has
// superseded in its slot cannot have been chosen, and must not keep a
// candidate from winning: if its voters never answer, the group would have
// no leader for good.
func TestSupersededConfigDoesNotBlockElection(t *testing.T) {
	if role := supersededConfigElection(t, paxos.CanaryNone); role != paxos.Leader {
		t.Fatalf("node 1 is %v after a majority's promises, want leader", role)
	}
}

// The canary: a leader that needs every reported configuration stays a
// candidate.
func TestCanaryEveryPromisedConfig(t *testing.T) {
	if role := supersededConfigElection(t, paxos.CanaryEveryPromisedConfig); role != paxos.Candidate {
		t.Fatalf("node 1 is %v with the canary planted, want still a candidate", role)
	}
}
