package raft

import (
	"slices"
	"testing"
)

// An application that stops applying at an entry (AdvancePaused) gets no
// committed entry until it resumes, while its node goes on appending and
// committing; a configuration change after the pause point does not take
// effect before it is applied; and after ResumeApply the entries come
// again from the pause point on, each applied once, in order (processReady
// fails the test otherwise).
func TestApplyPause(t *testing.T) {
	e := newCluster(t, majorityConf(3), Config{})
	if err := e.node(1).rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	e.stabilize()
	leader, paused := e.node(1), e.node(2)
	x := leader.rn.raft.log.lastIndex() + 1
	paused.holdAt = x + 1 // x is applied, the entries after it wait
	for _, d := range []string{"x", "y", "z"} {
		if err := leader.rn.Propose([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	e.stabilize()
	if err := leader.rn.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{Type: ConfChangeAddLearner, Member: Member{ID: 4}}}}); err != nil {
		t.Fatal(err)
	}
	e.stabilize()

	last := leader.rn.raft.log.lastIndex()
	st := paused.rn.Status()
	switch {
	case st.Applied != x || uint64(len(paused.applied)-1) != x:
		t.Fatalf("the paused node applied %d (application %d), want %d", st.Applied, len(paused.applied)-1, x)
	case st.Commit != last || paused.rn.raft.log.lastIndex() != last:
		t.Fatalf("the paused node commits %d and holds up to %d, want %d: it must go on replicating", st.Commit, paused.rn.raft.log.lastIndex(), last)
	case paused.rn.HasReady() || !paused.rn.ApplyPaused():
		t.Fatalf("the paused node has a Ready (%v) or is not paused (%v)", paused.rn.HasReady(), paused.rn.ApplyPaused())
	case slices.Contains(paused.rn.ConfState().Learners, 4):
		t.Fatalf("the paused node took a configuration change it did not apply: %+v", paused.rn.ConfState())
	case !slices.Contains(leader.rn.ConfState().Learners, 4):
		t.Fatalf("the leader did not take the configuration change: %+v", leader.rn.ConfState())
	}

	paused.holdAt = 0
	paused.rn.ResumeApply()
	e.stabilize()
	if st := paused.rn.Status(); st.Applied != last || uint64(len(paused.applied)-1) != last {
		t.Fatalf("after resuming, the node applied %d (application %d), want %d", st.Applied, len(paused.applied)-1, last)
	}
	if got := string(paused.applied[x+2].Data); got != "z" {
		t.Errorf("entry %d applied after the pause is %q, want z", x+2, got)
	}
	if !slices.Contains(paused.rn.ConfState().Learners, 4) {
		t.Errorf("after resuming, the node does not have the configuration change: %+v", paused.rn.ConfState())
	}
}
