package raft

import "testing"

// TestRemovedLeaderHandsOver is the regression test of a wedge the
// simulator found (internal/replsim, raft reconfig scenario, seed 93): a
// leader that removed itself used to step down as soon as it applied the
// new configuration, and the group could be left without any node able to
// win an election:
//
//  1. 1 leads voters 1 2 3 and moves to voters 4 5 6. The joint
//     configuration commits, and so does C_new, which 4 5 6 hold. 1 has
//     appended "x" after C_new; 2 and 3 hold it, 4 5 6 do not.
//  2. The commit news of C_new reaches 2 and 3 but is lost to 4 5 6.
//  3. 1, 2 and 3 apply C_new: none of them is a voter, none campaigns.
//     4 5 6 still apply the joint configuration, so a candidate needs
//     votes from two of 1 2 3, which refuse it: their logs hold "x".
//
// Now 1 stays leader (quorums count voters only) and hands leadership to
// the most caught-up new voter, which learns the commit on the way.
func TestRemovedLeaderHandsOver(t *testing.T) {
	e := newEnv(t)
	e.quiet = true
	cs := majorityConf(3)
	cfg := Config{MaxSizePerMsg: 1} // one entry per MsgApp: "x" can be lost alone
	for i := uint64(1); i <= 3; i++ {
		e.addNode(i, cfg, &cs)
	}
	for i := uint64(4); i <= 6; i++ {
		e.addNode(i, cfg, nil)
	}
	_ = e.node(1).rn.Campaign()
	e.stabilize()
	cc := ConfChange{}
	for i := uint64(4); i <= 6; i++ {
		cc.Changes = append(cc.Changes, ConfChangeSingle{Type: ConfChangeAddVoter, Member: Member{ID: i}})
	}
	for i := uint64(1); i <= 3; i++ {
		cc.Changes = append(cc.Changes, ConfChangeSingle{Type: ConfChangeRemove, Member: Member{ID: i}})
	}
	if err := e.node(1).rn.ProposeConfChange(cc); err != nil {
		t.Fatal(err)
	}
	joint := e.node(1).rn.raft.log.lastIndex()
	cNew := joint + 1 // the leave-joint entry the leader appends on its own
	// 4 5 6 get nothing after the joint entry for now.
	hold := func(m Message) bool {
		if m.From != 1 || m.To < 4 {
			return false
		}
		for _, en := range m.Entries {
			if en.Index > joint {
				return true
			}
		}
		return false
	}
	// Heartbeats drive the probes of the new nodes.
	settle := func() {
		for range 5 {
			e.node(1).rn.Tick()
			e.stabilize()
		}
	}
	e.filter = hold
	settle()
	if st := e.node(1).rn.raft; st.log.lastIndex() != cNew || !st.conf.cs.Joint() {
		t.Fatalf("want the leader joint with C_new at %d appended: last %d, config %s", cNew, st.log.lastIndex(), st.conf)
	}
	// 1. "x" after C_new reaches 2 and 3 only; C_new reaches 4 5 6, but
	// no commit index at or past C_new does.
	_ = e.node(1).rn.Propose([]byte("x"))
	e.filter = func(m Message) bool {
		if m.From != 1 || m.To < 4 {
			return false
		}
		for _, en := range m.Entries {
			if en.Index > cNew {
				return true
			}
		}
		return m.Commit >= cNew
	}
	settle()
	// 2, 3. C_new is applied by 1, 2, 3.
	for id := uint64(1); id <= 3; id++ {
		if n := e.node(id).rn.raft; n.log.applied < cNew || n.conf.isVoter(id) {
			t.Fatalf("%d: applied %d (C_new at %d), config %s", id, n.log.applied, cNew, n.conf)
		}
	}
	// The lost messages are lost; the network works again.
	e.filter = nil
	for round := 0; ; round++ {
		if round > 300 {
			t.Fatal("no leader among the new voters: the group is wedged")
		}
		for _, id := range e.ids() {
			e.node(id).rn.Tick()
		}
		e.stabilize()
		if l := e.leader(); l >= 4 && e.node(l).rn.Propose([]byte("y")) == nil {
			e.stabilize()
			return
		}
	}
}
