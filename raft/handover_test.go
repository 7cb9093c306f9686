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
	e := removedLeaderEnv(t, canaries{})
	// The lost messages are lost; the network works again.
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

// removedLeaderEnv runs steps 1 to 3 of TestRemovedLeaderHandsOver's
// story: 1 leads, C_new (voters 4 5 6) is committed and applied by 1 2 3,
// whose logs hold "x" after it, and 4 5 6 hold C_new but not its commit.
// The network drops nothing from then on.
func removedLeaderEnv(t *testing.T, k canaries) *env {
	e := newEnv(t)
	e.quiet, e.canaries = true, k
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
	e.filter = nil
	return e
}

// electsNewVoter ticks every live node until one of 4 5 6 leads and
// commits a proposal, and reports whether that happened within 300
// rounds of round back, where it restarts every crashed node and heals
// the network: the group must recover with every node back.
func electsNewVoter(e *env, back int) bool {
	for round := 0; ; round++ {
		if round > back+300 {
			return false
		}
		if round == back {
			e.heal()
			for _, id := range e.ids() {
				if e.node(id).crashed {
					e.restart(id)
				}
			}
		}
		for _, id := range e.ids() {
			if !e.node(id).crashed {
				e.node(id).rn.Tick()
			}
		}
		e.stabilize()
		if l := e.leader(); l >= 4 && e.node(l).rn.Propose([]byte("y")) == nil {
			e.stabilize()
			if e.node(l).rn.raft.log.committed >= e.node(l).rn.raft.log.lastIndex() {
				return true
			}
		}
	}
}

// The removed leader crashes right after it committed C_new, before it
// could hand over: the old voters know C_new is committed and stay out,
// the new voters are still joint and need old voters' votes, which they
// refuse. The new voters must still elect a leader, with 1 down and again
// once it is back.
func TestRemovedLeaderCrashesAfterCNew(t *testing.T) {
	e := removedLeaderEnv(t, canaries{})
	e.crash(1)
	if !electsNewVoter(e, 100) {
		t.Fatal("no leader among the new voters: the group is wedged")
	}
}

// The same, with the removed leader cut off for longer than an election
// timeout instead of crashing.
func TestRemovedLeaderCutOffAfterCNew(t *testing.T) {
	e := removedLeaderEnv(t, canaries{})
	e.partition([]uint64{1}, []uint64{2, 3, 4, 5, 6})
	if !electsNewVoter(e, 40) {
		t.Fatal("no leader among the new voters: the group is wedged")
	}
}

// The canary: new voters that ignore the commit index in the answers to
// their votes wedge the group in both scenarios.
func TestCanaryNoCommitFromVotes(t *testing.T) {
	e := removedLeaderEnv(t, canaries{noCommitFromVotes: true})
	e.crash(1)
	if electsNewVoter(e, 100) {
		t.Error("crash: the group recovered with the canary planted")
	}
	e = removedLeaderEnv(t, canaries{noCommitFromVotes: true})
	e.partition([]uint64{1}, []uint64{2, 3, 4, 5, 6})
	if electsNewVoter(e, 40) {
		t.Error("cut off: the group recovered with the canary planted")
	}
}
