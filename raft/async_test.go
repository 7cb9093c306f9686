package raft

import "testing"

// A leader that advances a Ready without waiting for its sync
// (AdvanceWritten) counts its own copy of the entries toward commit only
// once told they are durable (Synced): with node 3 cut off and node 2's
// acknowledgement in, one of the three copies is durable and the entry
// stays uncommitted until the leader's own sync. The CountUnsynced canary
// commits on node 2's answer alone.
func TestAdvanceWrittenCountsOwnCopyOnceSynced(t *testing.T) {
	for _, canary := range []bool{false, true} {
		e := newEnv(t)
		e.quiet = true
		e.canaries.countUnsynced = canary
		cs := majorityConf(3)
		for _, m := range cs.Voters {
			e.addNode(m.ID, Config{}, &cs)
		}
		if err := e.node(1).rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		e.stabilize()
		e.partition([]uint64{1, 2}, []uint64{3})
		leader := e.node(1)
		if err := leader.rn.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		// The leader writes the entry and sends its appends, but its sync
		// has not returned.
		rd := leader.rn.Ready()
		if len(rd.Entries) != 1 || !rd.MustSync {
			t.Fatalf("Ready after a proposal: %s", DescribeReady(rd))
		}
		if err := leader.storage.Append(rd.Entries); err != nil {
			t.Fatal(err)
		}
		for _, m := range rd.Messages {
			e.sendMsg(m)
		}
		w := leader.rn.AdvanceWritten()
		if w != (Written{Index: rd.Entries[0].Index, Term: rd.Entries[0].Term}) {
			t.Fatalf("AdvanceWritten() = %+v, want the entry %s", w, DescribeEntry(rd.Entries[0]))
		}
		// Node 2 stores it and acknowledges.
		e.deliver(2)
		for e.processReady(2) {
		}
		e.deliver(1)
		early := leader.rn.Status().Commit >= w.Index
		if early != canary {
			t.Fatalf("canary %v: the entry at %d committed on node 2's acknowledgement alone: %v, want %v",
				canary, w.Index, early, canary)
		}
		if canary {
			continue
		}
		leader.rn.Synced(w)
		if got := leader.rn.Status().Commit; got < w.Index {
			t.Fatalf("after Synced the leader's commit is %d, want %d", got, w.Index)
		}
		e.stabilize(1, 2)
		if last := leader.applied[len(leader.applied)-1]; string(last.Data) != "x" {
			t.Fatalf("leader's last applied %s, want x", DescribeEntry(last))
		}
	}
}
