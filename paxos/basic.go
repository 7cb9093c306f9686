package paxos

import "fmt"

// BasicType is the kind of a Basic Paxos message.
type BasicType uint8

const (
	// BasicPrepare (proposer to acceptor) opens phase 1 at Ballot.
	BasicPrepare BasicType = 1 + iota
	// BasicPromise (acceptor to proposer) grants or refuses a Prepare and
	// reports the acceptor's accepted ballot and value.
	BasicPromise
	// BasicAccept (proposer to acceptor) asks to accept Value at Ballot.
	BasicAccept
	// BasicAccepted (acceptor to proposer) grants or refuses an Accept.
	BasicAccepted
)

func (t BasicType) String() string {
	switch t {
	case BasicPrepare:
		return "Prepare"
	case BasicPromise:
		return "Promise"
	case BasicAccept:
		return "Accept"
	case BasicAccepted:
		return "Accepted"
	}
	return fmt.Sprintf("BasicType(%d)", uint8(t))
}

// BasicMessage is a Basic Paxos message. Messages name no key: the caller
// routes them (for compare-and-set, by key) and matches answers to a
// proposer by Ballot.
type BasicMessage struct {
	Type     BasicType
	From, To uint64
	// Ballot is the proposer's ballot the message is about.
	Ballot Ballot
	// Reject is set on a Promise or Accepted that refuses Ballot; Promised
	// then carries the acceptor's promise, so the proposer skips past it.
	Reject   bool
	Promised Ballot
	// Accepted and Value: on a Promise, what the acceptor has accepted
	// (Accepted is zero if nothing); on an Accept, Value is the proposal.
	Accepted Ballot
	Value    []byte
}

func (m BasicMessage) String() string {
	s := fmt.Sprintf("%d->%d %s %v", m.From, m.To, m.Type, m.Ballot)
	switch {
	case m.Reject:
		s += fmt.Sprintf(" reject (promised %v)", m.Promised)
	case m.Type == BasicPromise && !m.Accepted.IsZero():
		s += fmt.Sprintf(" accepted %v=%q", m.Accepted, m.Value)
	case m.Type == BasicPromise:
		s += " accepted none"
	case m.Type == BasicAccept:
		s += fmt.Sprintf(" value %q", m.Value)
	}
	return s
}
