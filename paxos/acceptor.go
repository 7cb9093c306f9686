package paxos

import (
	"encoding/binary"
	"fmt"
)

// AcceptorState is everything a Basic Paxos acceptor must keep across
// crashes, for one decree (one key, for compare-and-set). It is small on
// purpose: an eventual keyspace keeps one next to every key that ever took
// part in a compare-and-set.
type AcceptorState struct {
	// Promised is the highest ballot this acceptor has promised: it refuses
	// every Prepare and Accept below it.
	Promised Ballot
	// Accepted is the ballot of the last Accept taken; zero if none.
	Accepted Ballot
	// Value is the value accepted at Accepted; meaningless if Accepted is zero.
	Value []byte
}

const acceptorStateVersion = 1

// Marshal encodes s compactly: a version byte, four uvarints for the two
// ballots, and the value with a uvarint length. A fresh state is 6 bytes.
func (s AcceptorState) Marshal() []byte {
	return s.AppendMarshal(make([]byte, 0, 6+4*binary.MaxVarintLen64+len(s.Value)))
}

// AppendMarshal appends the encoding of s to dst and returns it.
func (s AcceptorState) AppendMarshal(dst []byte) []byte {
	dst = append(dst, acceptorStateVersion)
	dst = binary.AppendUvarint(dst, s.Promised.Round)
	dst = binary.AppendUvarint(dst, s.Promised.NodeID)
	dst = binary.AppendUvarint(dst, s.Accepted.Round)
	dst = binary.AppendUvarint(dst, s.Accepted.NodeID)
	dst = binary.AppendUvarint(dst, uint64(len(s.Value)))
	return append(dst, s.Value...)
}

// Unmarshal decodes what Marshal wrote. The value is copied: s keeps no
// reference to b.
func (s *AcceptorState) Unmarshal(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); v != acceptorStateVersion {
		return fmt.Errorf("%w: acceptor state version %d", ErrCorrupt, v)
	}
	var st AcceptorState
	st.Promised = Ballot{d.uvarint(), d.uvarint()}
	st.Accepted = Ballot{d.uvarint(), d.uvarint()}
	st.Value = d.bytes()
	if d.err != nil {
		return fmt.Errorf("%w: acceptor state: %v", ErrCorrupt, d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: acceptor state: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if st.Promised.Less(st.Accepted) {
		return fmt.Errorf("%w: acceptor state accepted %v above its promise %v", ErrCorrupt, st.Accepted, st.Promised)
	}
	*s = st
	return nil
}

// decoder reads uvarints and length-prefixed bytes, remembering the first
// error so that callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("short input")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length past the end")
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s", msg)
	}
}

// AcceptorReady is what an acceptor hands back for one message. The caller
// MUST write State durably (when Persist is set) before sending Messages:
// a reply is a promise, and a promise forgotten in a crash is a promise
// broken.
type AcceptorReady struct {
	Persist  bool
	State    AcceptorState
	Messages []BasicMessage
}

// Acceptor is a Basic Paxos acceptor. It is cheap to build: a node serving
// compare-and-set on many keys builds one per request from the key's
// persisted AcceptorState and drops it after the reply.
type Acceptor struct {
	id     uint64
	st     AcceptorState
	canary canaries
}

// NewAcceptor returns the acceptor id restored from its persisted state
// (the zero AcceptorState for a key never seen). It keeps st.Value.
func NewAcceptor(id uint64, st AcceptorState) *Acceptor {
	return newAcceptor(id, st, canaries{})
}

func newAcceptor(id uint64, st AcceptorState, c canaries) *Acceptor {
	if c.forgetPromise {
		st.Promised = Ballot{} // canary: the promise never reached the disk
	}
	return &Acceptor{id: id, st: st, canary: c}
}

// State returns the acceptor's current state.
func (a *Acceptor) State() AcceptorState { return a.st }

// Step handles a Prepare or an Accept addressed to this acceptor. Other
// message types are answers meant for proposers and are ignored.
func (a *Acceptor) Step(m BasicMessage) AcceptorReady {
	switch m.Type {
	case BasicPrepare:
		return a.prepare(m)
	case BasicAccept:
		return a.accept(m)
	}
	return AcceptorReady{State: a.st}
}

// prepare grants a Prepare at or above the promise. An equal ballot is a
// retransmission from the same proposer and gets the same answer.
func (a *Acceptor) prepare(m BasicMessage) AcceptorReady {
	reply := BasicMessage{Type: BasicPromise, From: a.id, To: m.From, Ballot: m.Ballot}
	if m.Ballot.Less(a.st.Promised) {
		reply.Reject, reply.Promised = true, a.st.Promised
		return AcceptorReady{State: a.st, Messages: []BasicMessage{reply}}
	}
	changed := a.st.Promised != m.Ballot
	a.st.Promised = m.Ballot
	reply.Accepted, reply.Value = a.st.Accepted, a.st.Value
	return AcceptorReady{Persist: changed, State: a.st, Messages: []BasicMessage{reply}}
}

// accept takes a value at or above the promise, which it raises to the
// Accept's ballot: a proposer whose Prepare it never saw may still win with
// this acceptor's help, as long as no higher promise stands in the way.
func (a *Acceptor) accept(m BasicMessage) AcceptorReady {
	reply := BasicMessage{Type: BasicAccepted, From: a.id, To: m.From, Ballot: m.Ballot}
	if m.Ballot.Less(a.st.Promised) && !a.canary.acceptLowerBallot {
		reply.Reject, reply.Promised = true, a.st.Promised
		return AcceptorReady{State: a.st, Messages: []BasicMessage{reply}}
	}
	a.st.Promised = maxBallot(a.st.Promised, m.Ballot)
	a.st.Accepted, a.st.Value = m.Ballot, m.Value
	return AcceptorReady{Persist: true, State: a.st, Messages: []BasicMessage{reply}}
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
