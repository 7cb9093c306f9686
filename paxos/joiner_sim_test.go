package paxos_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// A replacement through the log: voters 1, 2, 3 under faults; node 1 is
// replaced by node 4, which joins empty (the zero PersistentState), and
// node 1 is lost for good, before the change on odd seeds (a dead node's
// replica) and once it is in force on even ones (a move off a live node).
// Node 4 must catch up by a snapshot; then node 2 is lost for good too, and
// nodes 3 and 4 must go on choosing. guess plants the canary joinerGuess:
// node 4 starts with the new configuration instead of none.
func runJoinerSim(seed uint64, guess bool, steps int) error {
	return runJoinerSimOut(seed, guess, steps, nil)
}

func runJoinerSimOut(seed uint64, guess bool, steps int, out io.Writer) error {
	old, next := members("majority", 1, 2, 3), members("majority", 2, 3, 4)
	cl := newCluster(seed, old, paxos.CanaryNone, nil)
	cl.out = out
	if guess {
		base := cl.cfg
		cl.cfg = func(id uint64) paxos.Config {
			if id == 4 {
				return paxos.WithJoinerGuess(base(id), next)
			}
			return base(id)
		}
	}
	lose := func(id uint64) {
		cl.crash(id)
		cl.dead[id] = true
		cl.logf("%d: lost for good", id)
	}
	f := cl.drawFaults()
	// replace proposes the new configuration at the leader unless it is
	// chosen already.
	replace := func() {
		ls := cl.leaders()
		if len(ls) == 0 {
			return
		}
		rn := cl.nodes[ls[0]].rn
		cs := rn.Configs()
		if len(cs) > 0 && cs[len(cs)-1].Membership.String() == next.String() {
			return
		}
		if rn.ProposeConfig(next) == nil {
			cl.logf("%d: propose %v", ls[0], next)
		}
		cl.process()
	}
	run := func(n int, each func()) error {
		for i := range n {
			cl.randomStep(f)
			if cl.err != nil {
				return cl.err
			}
			if each != nil && i%20 == 0 {
				each()
			}
		}
		return nil
	}
	if err := run(steps/3, nil); err != nil {
		return err
	}
	if seed%2 == 1 {
		lose(1)
	}
	cl.addNode(4, paxos.PersistentState{})
	if err := run(steps/3, replace); err != nil {
		return err
	}
	// Node 4 must be an ordinary voter of the configuration in force.
	caughtUp := func() bool {
		n := cl.nodes[4]
		if n.rn == nil {
			return false
		}
		st := n.rn.Status()
		return !st.Joining && st.Config.String() == next.String() && n.disk.Snapshot.Slot > 0
	}
	if !cl.settle(600, replace, caughtUp) {
		return fmt.Errorf("%w: node 4 never caught up: %s", errStuck, cl.statusLine())
	}
	if cl.err != nil {
		return cl.err
	}
	if !cl.dead[1] {
		lose(1)
	}
	lose(2)
	if err := run(steps/3, nil); err != nil {
		return err
	}
	return cl.heal(600)
}

// settle runs a fault-free network, with every node that is not dead up,
// calling each every round, until done or maxRounds.
func (cl *cluster) settle(maxRounds int, each func(), done func() bool) bool {
	cl.cut = map[[2]uint64]bool{}
	cl.queue = append(cl.queue, cl.slow...)
	cl.slow = nil
	for _, id := range cl.ids {
		if cl.nodes[id].rn == nil && !cl.dead[id] {
			cl.restart(id)
		}
	}
	for range maxRounds {
		if done() || cl.err != nil {
			return true
		}
		each()
		cl.tickAll()
		cl.process()
		for len(cl.queue) > 0 {
			cl.deliverMsg(0, false)
			cl.process()
		}
	}
	return done()
}

func (cl *cluster) statusLine() string {
	var out []string
	for _, id := range cl.ids {
		if n := cl.nodes[id]; n.rn != nil {
			s := n.rn.Status()
			out = append(out, fmt.Sprintf("%d:%v commit=%d applied=%d joining=%v config=%v", id, s.Role, s.Commit, n.applied, s.Joining, s.Config))
		}
	}
	return fmt.Sprint(out)
}

func TestJoinerSim(t *testing.T) {
	seeds := simSeeds(250)
	for seed := range uint64(seeds) {
		if err := runJoinerSim(seed, false, 1500); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestJoinerGuessCanary: a joiner that campaigns with the configuration
// that added it, as if it governed every slot, is caught by a safety
// invariant (two values in one slot), not only by getting stuck: it
// chooses over slots the old configuration had chosen.
func TestJoinerGuessCanary(t *testing.T) {
	seeds := simSeeds(250) * 2
	for seed := range uint64(seeds) {
		if err := runJoinerSim(seed, true, 1500); err != nil && !errors.Is(err, errStuck) {
			t.Logf("caught at seed %d: %v", seed, err)
			return
		}
	}
	t.Fatalf("canary not caught in %d seeds", seeds)
}

// A joiner's state round-trips a restart before its snapshot arrives: it
// restarts a joiner (it neither campaigns nor counts itself a voter),
// keeps its promise, and still catches up afterwards.
func TestJoinerRestartsBeforeSnapshot(t *testing.T) {
	cl := newCluster(7, members("majority", 1, 2, 3), paxos.CanaryNone, nil)
	cl.nodes[1].rn.Campaign()
	cl.settle(50, func() {}, func() bool { return false })
	cl.propose(1)
	cl.addNode(4, paxos.PersistentState{})
	// Node 4 promises a ballot, then restarts before any snapshot.
	n4 := cl.nodes[4]
	if err := n4.rn.Step(paxos.Message{Type: paxos.MsgPrepare, From: 2, To: 4, Ballot: paxos.Ballot{Round: 9, NodeID: 2}, Slot: 1}); err != nil {
		t.Fatal(err)
	}
	cl.process()
	cl.queue = nil
	cl.crash(4)
	cl.restart(4)
	st := cl.nodes[4].rn.Status()
	if !st.Joining || st.Promised != (paxos.Ballot{Round: 9, NodeID: 2}) || st.Commit != 0 {
		t.Fatalf("after a restart the joiner is %+v, want joining with promise 9.2 and commit 0", st)
	}
	for range 100 {
		cl.nodes[4].rn.Tick()
	}
	cl.nodes[4].rn.Campaign()
	cl.process()
	if role := cl.nodes[4].rn.Status().Role; role != paxos.Follower || slices.ContainsFunc(cl.queue, func(m paxos.Message) bool { return m.From == 4 }) {
		t.Fatalf("a joiner ran phase 1: role %v, queue %v", role, cl.queue)
	}
	cl.joinNode4(t)
}

// A joiner gets a snapshot taken after the entries the leader applied
// since its last compaction, once those weigh more than a MiB: the leader
// compacts first (NeedsSnapshot) instead of sending its old snapshot and
// then every entry since, which the joiner would hold in memory (a new
// kv replica of a range of large values grew by 75 MiB that way).
func TestJoinerGetsAFreshSnapshot(t *testing.T) {
	cl := newCluster(7, members("majority", 1, 2, 3), paxos.CanaryNone, nil)
	cl.nodes[1].rn.Campaign()
	cl.settle(50, func() {}, func() bool { return false })
	cl.propose(1)
	cl.settle(20, func() {}, func() bool { return false })
	cl.compact(1)
	old := cl.nodes[1].rn.Status().Applied
	big := make([]byte, 256<<10)
	for range 8 {
		if err := cl.nodes[1].rn.Propose(big); err != nil {
			t.Fatal(err)
		}
		cl.settle(5, func() {}, func() bool { return false })
	}
	last := cl.nodes[1].rn.Status().Applied
	if last < old+8 {
		t.Fatalf("the leader applied up to %d, want the 8 entries after %d", last, old)
	}
	cl.addNode(4, paxos.PersistentState{})
	cl.joinNode4(t)
	if got := cl.nodes[4].disk.Snapshot.Slot; got < last {
		t.Errorf("the joiner installed a snapshot at slot %d, before the 2 MiB of entries up to %d: it replayed them", got, last)
	}
}

// joinNode4 has the leader propose the configuration of nodes 1 to 4
// until node 4, added empty, has caught up and applies it.
func (cl *cluster) joinNode4(t *testing.T) {
	t.Helper()
	next := members("majority", 1, 2, 3, 4)
	ok := cl.settle(300, func() {
		if ls := cl.leaders(); len(ls) == 1 {
			if cs := cl.nodes[ls[0]].rn.Configs(); cs[len(cs)-1].Membership.String() != next.String() {
				_ = cl.nodes[ls[0]].rn.ProposeConfig(next)
			}
		}
	}, func() bool {
		s := cl.nodes[4].rn.Status()
		return !s.Joining && s.Config.String() == next.String()
	})
	if !ok || cl.err != nil {
		t.Fatalf("the joiner did not catch up (%v): %s", cl.err, cl.statusLine())
	}
}

// An acceptor removed from the group and added back later, empty (its
// node deleted the replica in between, as a kv node does once the range
// lets it go), is a joiner again for a leader that kept its ballot all
// along: its answers from before it was removed say nothing about the new
// replica. A leader that still counted it as joined reported it caught up
// (Joined) while it waited for a snapshot, so kv let the range quiesce
// with the joiner never sent one, and it waited for good
// (TestSimPaxosDecommission, seed 9).
func TestReaddedAcceptorJoinsAgain(t *testing.T) {
	cl := newCluster(7, members("majority", 1, 2, 3), paxos.CanaryNone, nil)
	cl.nodes[1].rn.Campaign()
	cl.settle(50, func() {}, func() bool { return false })
	cl.propose(1)
	cl.settle(20, func() {}, func() bool { return false })
	leader := cl.nodes[1].rn
	if !leader.Joined(2) {
		t.Fatalf("node 2 answered the leader, which does not count it joined: %s", cl.statusLine())
	}
	// Node 2 leaves for node 4, which joins empty.
	cl.addNode(4, paxos.PersistentState{})
	cl.reconfigure(t, members("majority", 1, 3, 4), 4)
	// Node 2 deletes its replica: it is down, then comes back empty.
	cl.crash(2)
	cl.dead[2] = true
	cl.nodes[2].disk = paxos.PersistentState{}
	// Node 4 leaves for node 2, while node 2 hears nothing.
	readd := members("majority", 1, 3, 2)
	cl.settle(300, func() { cl.proposeUnlessChosen(1, readd) }, func() bool {
		return leader.Status().Config.String() == readd.String()
	})
	if got := leader.Status().Config.String(); got != readd.String() || cl.err != nil {
		t.Fatalf("the leader's configuration is %s, want %s (%v)", got, readd, cl.err)
	}
	if leader.Joined(2) {
		t.Fatalf("the leader counts node 2 joined, added back empty and not heard from since: %s", cl.statusLine())
	}
	delete(cl.dead, 2)
	cl.restart(2)
	ok := cl.settle(300, func() {}, func() bool { return !cl.nodes[2].rn.Status().Joining && leader.Joined(2) })
	if !ok || cl.err != nil {
		t.Fatalf("node 2, added back empty, did not catch up (%v): %s", cl.err, cl.statusLine())
	}
}

// reconfigure has the leader, node 1, propose m until it is in force on
// the leader and node joiner, added empty, has caught up and applies it.
func (cl *cluster) reconfigure(t *testing.T, m paxos.Membership, joiner uint64) {
	t.Helper()
	ok := cl.settle(300, func() { cl.proposeUnlessChosen(1, m) }, func() bool {
		s := cl.nodes[joiner].rn.Status()
		return !s.Joining && s.Config.String() == m.String() && cl.nodes[1].rn.Status().Config.String() == m.String()
	})
	if !ok || cl.err != nil {
		t.Fatalf("%s did not come into force with node %d caught up (%v): %s", m, joiner, cl.err, cl.statusLine())
	}
}

// proposeUnlessChosen has node id propose m unless its newest
// configuration is m already (one still pending is refused).
func (cl *cluster) proposeUnlessChosen(id uint64, m paxos.Membership) {
	rn := cl.nodes[id].rn
	if cs := rn.Configs(); len(cs) > 0 && cs[len(cs)-1].Membership.String() != m.String() {
		_ = rn.ProposeConfig(m)
	}
}
