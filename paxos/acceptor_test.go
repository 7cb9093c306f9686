package paxos_test

import (
	"bytes"
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/quorumkv/quorumkv/paxos"
)

func TestAcceptorStateRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := func(name string) paxos.Ballot {
			return paxos.Ballot{Round: rapid.Uint64().Draw(t, name+".round"), NodeID: rapid.Uint64().Draw(t, name+".node")}
		}
		acc, prom := b("accepted"), b("promised")
		if prom.Less(acc) {
			acc, prom = prom, acc
		}
		st := paxos.AcceptorState{Promised: prom, Accepted: acc, Value: rapid.SliceOf(rapid.Byte()).Draw(t, "value")}
		enc := st.Marshal()
		var got paxos.AcceptorState
		if err := got.Unmarshal(enc); err != nil {
			t.Fatalf("Unmarshal(%x): %v", enc, err)
		}
		if got.Promised != st.Promised || got.Accepted != st.Accepted || !bytes.Equal(got.Value, st.Value) {
			t.Fatalf("round trip: got %+v, want %+v", got, st)
		}
		// Every strict prefix is refused, never misread.
		for i := range enc {
			if err := new(paxos.AcceptorState).Unmarshal(enc[:i]); !errors.Is(err, paxos.ErrCorrupt) {
				t.Fatalf("Unmarshal(prefix %d of %x) = %v, want ErrCorrupt", i, enc, err)
			}
		}
	})
}

func TestAcceptorStateCompact(t *testing.T) {
	if n := len(paxos.AcceptorState{}.Marshal()); n != 6 {
		t.Errorf("fresh state encodes in %d bytes, want 6", n)
	}
	st := paxos.AcceptorState{Promised: paxos.Ballot{Round: 7, NodeID: 3}, Accepted: paxos.Ballot{Round: 7, NodeID: 3}, Value: []byte("alice")}
	if n := len(st.Marshal()); n != 11 {
		t.Errorf("small state encodes in %d bytes, want 11", n)
	}
	var got paxos.AcceptorState
	if err := got.Unmarshal(append(st.Marshal(), 0)); !errors.Is(err, paxos.ErrCorrupt) {
		t.Errorf("trailing byte: %v, want ErrCorrupt", err)
	}
	bad := paxos.AcceptorState{Promised: paxos.Ballot{Round: 1}, Accepted: paxos.Ballot{Round: 2}}
	if err := got.Unmarshal(bad.Marshal()); !errors.Is(err, paxos.ErrCorrupt) {
		t.Errorf("accepted above promise: %v, want ErrCorrupt", err)
	}
}

func TestAcceptorRules(t *testing.T) {
	b := func(r, n uint64) paxos.Ballot { return paxos.Ballot{Round: r, NodeID: n} }
	a := paxos.NewAcceptor(1, paxos.AcceptorState{})
	rd := a.Step(paxos.BasicMessage{Type: paxos.BasicPrepare, From: 9, To: 1, Ballot: b(2, 9)})
	if !rd.Persist || rd.Messages[0].Reject || rd.State.Promised != b(2, 9) {
		t.Fatalf("first Prepare: %+v", rd)
	}
	// A lower Prepare and a lower Accept are refused with the promise.
	for _, typ := range []paxos.BasicType{paxos.BasicPrepare, paxos.BasicAccept} {
		rd = a.Step(paxos.BasicMessage{Type: typ, From: 8, To: 1, Ballot: b(1, 8), Value: []byte("x")})
		if rd.Persist || !rd.Messages[0].Reject || rd.Messages[0].Promised != b(2, 9) {
			t.Fatalf("lower %v: %+v", typ, rd)
		}
	}
	// A retransmitted Prepare is granted again without a write.
	if rd = a.Step(paxos.BasicMessage{Type: paxos.BasicPrepare, From: 9, To: 1, Ballot: b(2, 9)}); rd.Persist || rd.Messages[0].Reject {
		t.Fatalf("repeated Prepare: %+v", rd)
	}
	// A higher Accept is taken without a Prepare and raises the promise.
	rd = a.Step(paxos.BasicMessage{Type: paxos.BasicAccept, From: 7, To: 1, Ballot: b(3, 7), Value: []byte("v")})
	if !rd.Persist || rd.Messages[0].Reject || rd.State.Promised != b(3, 7) || rd.State.Accepted != b(3, 7) {
		t.Fatalf("higher Accept: %+v", rd)
	}
	// The planted bug takes the lower Accept.
	bad := paxos.NewAcceptorWithCanary(1, rd.State, paxos.CanaryAcceptLowerBallot)
	if rd = bad.Step(paxos.BasicMessage{Type: paxos.BasicAccept, From: 9, To: 1, Ballot: b(2, 9)}); rd.Messages[0].Reject {
		t.Fatalf("canary accept-lower-ballot did not accept")
	}
}
