package raft

import (
	"errors"
	"testing"
)

func TestThreeNodesElectAndCommit(t *testing.T) {
	e := newCluster(t, majorityConf(3), Config{})
	e.stabilize()
	if err := e.node(1).rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	e.stabilize()
	if got := e.leader(); got != 1 {
		t.Fatalf("leader = %d, want 1\n%s", got, e.out)
	}
	if err := e.node(1).rn.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	e.stabilize()
	for _, id := range e.ids() {
		n := e.node(id)
		last := n.applied[len(n.applied)-1]
		if string(last.Data) != "x" {
			t.Errorf("node %d last applied %s", id, DescribeEntry(last))
		}
	}
	if err := e.node(2).rn.Propose([]byte("y")); !errors.Is(err, ErrProposalDropped) {
		t.Errorf("follower proposal: %v", err)
	}
}
