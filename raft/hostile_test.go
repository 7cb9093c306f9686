package raft

import (
	"fmt"
	"testing"
)

// Every byte from the network is hostile: a message no correct peer
// sends (a commit past the log, a snapshot without its body, entries out
// of order, an ack of entries never sent) must be refused by Step with an
// error, or handled, and never panic the node. FuzzStep builds a 3-node
// cluster with a leader and a few committed entries, then steps the
// messages the fuzzer's bytes decode to into one node, processing its
// Ready after each (what it would persist, apply and send; what it sends
// is dropped). Its seed corpus runs as a plain test; `go test -fuzz
// FuzzStep ./raft/` searches further.
func FuzzStep(f *testing.F) {
	for _, seed := range hostileSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newCluster(t, majorityConf(3), Config{})
		e.collect = true // a forged message may break invariants; only panics count here
		if err := e.node(1).rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		e.stabilize()
		for i := range 3 {
			if err := e.node(1).rn.Propose(fmt.Appendf(nil, "v%d", i)); err != nil {
				t.Fatal(err)
			}
			e.stabilize()
		}
		for len(data) > 0 {
			var m Message
			var to uint64
			to, m, data = decodeHostile(e, data)
			n := e.node(to)
			_ = n.rn.Step(m) // an error is a refusal: fine
			for n.rn.HasReady() {
				e.inbox = map[uint64][]Message{}
				e.processReady(to)
			}
			e.inbox = map[uint64][]Message{}
		}
	})
}

// decodeHostile turns the front of data into a message for one node of
// e, with fields near the node's own state (terms and indexes a few off
// its own) so that the fuzzer reaches the handlers' edges fast, and
// returns the rest of data.
func decodeHostile(e *env, data []byte) (uint64, Message, []byte) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	near := func(base uint64) uint64 {
		d := int64(int8(next())) // -128..127 around base
		if d < 0 && uint64(-d) > base {
			return 0
		}
		return uint64(int64(base) + d)
	}
	to := uint64(next()%3) + 1
	r := e.node(to).rn.raft
	last := r.log.lastIndex()
	m := Message{
		Type:       MessageType(next() % 12),
		To:         to,
		From:       uint64(next() % 5),
		Term:       near(r.Term),
		LogTerm:    near(r.Term),
		Index:      near(last),
		Commit:     near(last),
		Reject:     next()%2 == 1,
		RejectHint: near(last),
		Transfer:   next()%2 == 1,
		ReadSeq:    uint64(next()),
	}
	if m.To == m.From {
		m.From = m.To%3 + 1
	}
	for range next() % 4 {
		m.Entries = append(m.Entries, Entry{Term: near(r.Term), Index: near(last), Type: EntryType(next() % 3), Data: []byte{next()}})
	}
	if flags := next(); flags%3 != 0 {
		s := &Snapshot{Metadata: SnapshotMetadata{Index: near(last), Term: near(r.Term)}}
		if flags%3 == 2 {
			s.Metadata.ConfState = majorityConf(int(next()%4) + 1)
		}
		m.Snapshot = s
	}
	return to, m, data
}

// hostileSeeds are the messages the review found crashing a node, and a
// few of each kind.
func hostileSeeds() [][]byte {
	var seeds [][]byte
	for typ := range byte(12) {
		for _, delta := range []int8{0, 1, 5, -1} {
			b := []byte{1, typ, 1, 0, 0, byte(delta), byte(delta), 0, byte(delta), 0, 0, 0, 1, 0}
			seeds = append(seeds, b)
			with := append([]byte{}, b...)
			with[len(with)-1] = 1 // a snapshot without a configuration
			seeds = append(seeds, with)
		}
	}
	// A heartbeat whose commit index is past the follower's log.
	seeds = append(seeds, []byte{2, byte(MsgHeartbeat), 1, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0})
	// An ack of entries the leader never sent.
	seeds = append(seeds, []byte{1, byte(MsgAppResp), 2, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0})
	return seeds
}
