package raft

import (
	"slices"
	"testing"
)

// Each planted bug must be caught: the scenario passes without it and
// breaks an invariant with it. The simulator suite catches them too, from
// random schedules; these tests pin one schedule each.

func TestCanaryForgetVoteOnRestart(t *testing.T) {
	check := func(k canaries) []string { return doubleVoteScenario(t, k) }
	if v := check(canaries{}); len(v) > 0 {
		t.Fatalf("without the canary: %v", v)
	}
	if v := check(canaries{forgetVoteOnRestart: true}); len(v) == 0 {
		t.Fatal("forgetting the vote on restart was not caught")
	} else {
		t.Log(v)
	}
}

func TestCanarySendBeforePersist(t *testing.T) {
	if v := doubleVoteScenario(t, canaries{sendBeforePersist: true}); len(v) == 0 {
		t.Fatal("sending before persisting was not caught")
	} else {
		t.Log(v)
	}
}

// doubleVoteScenario: nodes 1 and 2 campaign for Term 2 at once; node 3
// votes for 1, crashes, restarts, and is then asked by 2.
//
//  1. 1 and 2 become candidates of Term 2 and vote for themselves.
//  2. 3 grants its vote to 1 and sends the grant (after persisting it, if
//     the contract is kept).
//  3. 3 crashes and restarts.
//  4. 3 receives 2's request for Term 2. With its vote persisted and
//     loaded, it refuses; if the vote was lost, it grants.
//  5. 1 has {1,3} and 2 has {2,3}: two leaders of Term 2.
func doubleVoteScenario(t *testing.T, k canaries) []string {
	e := newEnv(t)
	e.quiet, e.collect, e.canaries = true, true, k
	cs := majorityConf(3)
	for i := uint64(1); i <= 3; i++ {
		e.addNode(i, Config{DisablePreVote: true, DisableCheckQuorum: true}, &cs)
	}
	_ = e.node(1).rn.Campaign()
	_ = e.node(2).rn.Campaign()
	e.processReady(1)
	e.processReady(2)
	if k.sendBeforePersist {
		// The split Ready: first the messages, then the HardState.
		e.processReady(1)
		e.processReady(2)
	}
	held := e.inbox[3] // 1's request, then 2's
	e.inbox[3] = held[:1]
	e.deliver(3)
	e.processReady(3) // persists the vote and sends it (or only sends it)
	e.restart(3)
	e.inbox[3] = held[1:]
	e.deliver(3)
	e.stabilize()
	return e.violations
}

func TestCanaryCommitEarlierTerm(t *testing.T) {
	if v := figure8(t, canaries{}); len(v) > 0 {
		t.Fatalf("without the canary: %v", v)
	}
	if v := figure8(t, canaries{commitEarlierTerm: true}); len(v) == 0 {

		t.Fatal("committing an earlier Term's entry was not caught")
	} else {
		t.Log(v)
	}
}

// figure8 is Figure 8 of the Raft paper on five nodes.
//
//  1. 1 leads Term 2 and appends "a" at index 3, which reaches 2 only.
//  2. 1 crashes. 5 leads Term 3 (votes of 3, 4) and appends its empty
//     entry at index 3, which reaches nobody; 5 crashes.
//  3. 1 restarts and leads Term 4 (votes of 2, 3, 4). It replicates "a"
//     (Term 2) to 3, but its own empty entry of Term 4 (index 4) is lost
//     on the way to 3 and 4. Index 3 is now on 1, 2, 3: a phase-2 quorum.
//     Counting replicas would commit it; the rule says wait for index 4.
//  4. 1 crashes. 5 restarts and is elected in Term 5 by 3 and 4 (its last
//     entry, Term 3, is newer than their Term 2) and overwrites index 3.
//     If step 3 committed "a", a committed entry is now lost.
func figure8(t *testing.T, k canaries) []string {
	e := newEnv(t)
	e.quiet, e.collect, e.canaries = true, true, k
	cs := majorityConf(5)
	cfg := Config{DisablePreVote: true, DisableCheckQuorum: true, MaxSizePerMsg: 1}
	for i := uint64(1); i <= 5; i++ {
		e.addNode(i, cfg, &cs)
	}
	elect := func(id uint64, among ...uint64) {
		for range 5 {
			if e.node(id).rn.raft.state == StateLeader {
				return
			}
			_ = e.node(id).rn.Campaign()
			e.stabilize(among...)
		}
		t.Fatalf("%d was not elected", id)
	}
	// 1.
	elect(1, 1, 2, 3, 4, 5)
	e.partition([]uint64{1, 2}, []uint64{3, 4, 5})
	_ = e.node(1).rn.Propose([]byte("a"))
	e.stabilize(1, 2)
	// 2.
	e.crash(1)
	e.partition([]uint64{1, 2}, []uint64{3, 4, 5})
	e.filter = func(m Message) bool { return m.From == 5 && m.Type == MsgApp }
	elect(5, 3, 4, 5)
	e.crash(5)
	// 3.
	e.heal()
	e.restart(1)
	// The first probe (after index 3) reaches 3 and 4 and is rejected:
	// they lack index 3. Later MsgApps carrying index 4 are lost.
	probed := map[uint64]bool{}
	e.filter = func(m Message) bool {
		if m.Type != MsgApp || (m.To != 3 && m.To != 4) {
			return false
		}
		if !probed[m.To] {
			probed[m.To] = true
			return false
		}
		return slices.ContainsFunc(m.Entries, func(en Entry) bool { return en.Index == 4 })
	}
	elect(1, 1, 2, 3, 4)
	e.stabilize(1, 2, 3, 4)
	// 4.
	e.crash(1)
	e.filter = nil
	e.restart(5)
	elect(5, 2, 3, 4, 5)
	e.stabilize(2, 3, 4, 5)
	return e.violations
}

func TestCanaryReadIndexWithoutQuorum(t *testing.T) {
	stale := func(k canaries) bool {
		e := newEnv(t)
		e.quiet, e.canaries = true, k
		cs := majorityConf(3)
		for i := uint64(1); i <= 3; i++ {
			e.addNode(i, Config{}, &cs)
		}
		_ = e.node(1).rn.Campaign()
		e.stabilize()
		// 1 is cut off; 2 and 3 elect 2, which commits "x".
		e.partition([]uint64{1}, []uint64{2, 3})
		lead := uint64(0)
		for i := 0; lead == 0 || lead == 1; i++ {
			if i > 10 {
				t.Fatal("no new leader")
			}
			// 3 stops counting on the lost leader; 2 campaigns.
			for range e.node(3).rn.raft.electionTimeout {
				e.node(3).rn.Tick()
			}
			_ = e.node(2).rn.Campaign()
			e.stabilize(2, 3)
			lead = e.leader()
		}
		_ = e.node(lead).rn.Propose([]byte("x"))
		e.stabilize(2, 3)
		committed := e.node(lead).rn.raft.log.committed
		// A read that starts now, at the old leader, must see "x".
		_ = e.node(1).rn.ReadIndex([]byte("r"))
		e.stabilize(1)
		for _, rs := range e.node(1).reads {
			if rs.Index < committed {
				return true
			}
		}
		return false
	}
	if stale(canaries{}) {
		t.Fatal("stale read without the canary")
	}
	if !stale(canaries{readIndexWithoutQuorum: true}) {
		t.Fatal("serving ReadIndex without a quorum was not caught")
	}
}
