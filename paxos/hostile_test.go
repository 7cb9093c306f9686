package paxos_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// Every byte from the network is hostile: a Multi-Paxos message no
// correct peer sends must be refused by Step with an error, or handled,
// and never panic the node. FuzzStep builds a 3-node group with a leader
// and a few chosen slots, then steps the messages the fuzzer's bytes
// decode to into one node, processing its Ready after each (what it sends
// is dropped; the observer's verdicts are ignored: a forged message of a
// correct shape may break safety, which only authenticating peers
// prevents). Its seed corpus runs as a plain test; `go test -fuzz
// FuzzStep ./paxos/` searches further.
func FuzzStep(f *testing.F) {
	for _, seed := range hostileSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cl := newCluster(1, majority(3), 0, nil)
		if err := cl.heal(200); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if ls := cl.leaders(); len(ls) == 1 {
				_ = cl.nodes[ls[0]].rn.Propose(fmt.Appendf(nil, "v%d", i))
			}
			cl.process()
			for len(cl.queue) > 0 {
				cl.deliverMsg(0, false)
				cl.process()
			}
		}
		for len(data) > 0 {
			var m paxos.Message
			m, data = decodeHostile(cl, data)
			n := cl.nodes[m.To]
			_ = n.rn.Step(m) // an error is a refusal: fine
			for n.rn.HasReady() {
				cl.handleReady(n, n.rn.Ready())
			}
			cl.queue = nil
		}
	})
}

// decodeHostile turns the front of data into a message for one node of
// cl, with ballots and slots a few off the node's own, and returns the
// rest of data.
func decodeHostile(cl *cluster, data []byte) (paxos.Message, []byte) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	near := func(base uint64) uint64 {
		d := int64(int8(next()))
		if d < 0 && uint64(-d) > base {
			return 0
		}
		return uint64(int64(base) + d)
	}
	to := uint64(next()%3) + 1
	st := cl.nodes[to].rn.Status()
	ballot := func() paxos.Ballot { return paxos.Ballot{Round: near(st.Promised.Round), NodeID: uint64(next() % 4)} }
	m := paxos.Message{
		Type: paxos.MessageType(next() % 10), To: to, From: uint64(next() % 5),
		Ballot: ballot(), Reject: next()%2 == 1, Hint: ballot(),
		Slot: near(st.LastSlot), Commit: near(st.Commit),
		Transfer: next()%2 == 1, Joining: next()%2 == 1,
	}
	if m.From == m.To {
		m.From = m.To%3 + 1
	}
	for range next() % 4 {
		e := paxos.Entry{Slot: near(st.LastSlot), Ballot: ballot(), Type: paxos.EntryType(next() % 4), Data: []byte{next()}}
		if e.Type == paxos.EntryConfig && next()%2 == 0 {
			e.Data = majority(int(next()%4) + 1).Marshal()
		}
		m.Entries = append(m.Entries, e)
	}
	for range next() % 3 {
		m.Slots = append(m.Slots, near(st.LastSlot))
	}
	if flags := next(); flags%3 != 0 {
		s := &paxos.Snapshot{Slot: near(st.Commit)}
		for range int(flags % 3) {
			s.Configs = append(s.Configs, paxos.ConfigState{Effective: near(st.Commit), Membership: majority(int(next() % 4))})
		}
		m.Snapshot = s
	}
	return m, data
}

// hostileSeeds are a few messages of each kind, near the node's state.
func hostileSeeds() [][]byte {
	var seeds [][]byte
	for typ := range byte(10) {
		for _, delta := range []int8{0, 1, 5, -1, 60} {
			seeds = append(seeds,
				[]byte{1, typ, 1, byte(delta), 1, 0, 0, 0, byte(delta), byte(delta), 0, 0, 1, byte(delta), 0, 3, 0, 0, 0},
				[]byte{1, typ, 1, byte(delta), 1, 0, 0, 0, byte(delta), byte(delta), 0, 0, 0, 0, 1, 0, 1, 0},
				[]byte{2, typ, 1, 0, 1, 0, 0, 0, byte(delta), byte(delta), 0, 0, 2, byte(delta), 1, 1, 0, 0, byte(delta), 1, 2, 1})
		}
	}
	return seeds
}

// A forged Accept for a slot far past the acceptor's commit index is
// refused before the slot log grows to it (it would have allocated an
// empty slot per number in between), and so is each message kind that
// panicked before.
func TestForgedMessagesRefused(t *testing.T) {
	cl := newCluster(1, majority(3), 0, nil)
	if err := cl.heal(200); err != nil {
		t.Fatal(err)
	}
	ls := cl.leaders()
	if len(ls) != 1 {
		t.Fatalf("leaders %v", ls)
	}
	leader := cl.nodes[ls[0]].rn.Status()
	to := ls[0]%3 + 1
	n := cl.nodes[to]
	before := n.rn.Status()
	b := paxos.Ballot{Round: leader.Promised.Round + 1, NodeID: ls[0]}
	for _, m := range []paxos.Message{
		{Type: paxos.MsgAccept, From: ls[0], To: to, Ballot: b, Entries: []paxos.Entry{{Slot: before.Commit + 1<<40, Type: paxos.EntryNormal}}},
		{Type: paxos.MsgSnapshot, From: ls[0], To: to, Ballot: b},
		{Type: paxos.MsgSnapshot, From: ls[0], To: to, Ballot: b, Snapshot: &paxos.Snapshot{Slot: before.Commit + 10}},
		{Type: paxos.MsgAccept, From: ls[0], To: to, Ballot: b, Entries: []paxos.Entry{{Slot: before.Commit + 1, Type: paxos.EntryConfig, Data: []byte("garbage")}}},
		{Type: paxos.MsgAccept, From: ls[0], To: to, Ballot: paxos.Ballot{Round: b.Round, NodeID: to%3 + 1}},
	} {
		if err := n.rn.Step(m); !errors.Is(err, paxos.ErrInvalidMessage) {
			t.Errorf("%v: %v, want ErrInvalidMessage", m, err)
		}
	}
	if after := n.rn.Status(); after.LastSlot != before.LastSlot || after.Promised != before.Promised || n.rn.HasReady() {
		t.Errorf("refused messages changed the node: %+v, was %+v", after, before)
	}
}
