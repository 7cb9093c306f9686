package paxos

import (
	"errors"
	"fmt"
)

// Messages from the network are checked before they change anything (as
// raft/check.go does for Raft): one forged or corrupted message must not
// panic the node or make it allocate without bound. Before, a MsgSnapshot
// without a snapshot dereferenced nil, a snapshot with a configuration
// that does not parse panicked at install, an Accept for slot 2^40 grew
// the slot log to that size, and a configuration entry that does not
// decode panicked once chosen (FuzzStep). A refused message changes
// nothing, and Step says why (ErrInvalidMessage).
//
// The checks are the shape a correct peer's messages always have; they
// cannot tell a forged message of a correct shape from a real one (that
// is what authenticating peers is for).

// ErrInvalidMessage: Step refused a message no correct peer sends;
// nothing changed.
var ErrInvalidMessage = errors.New("paxos: invalid message")

// maxSlotsAhead bounds how far past its commit index an acceptor takes a
// slot in an Accept or a Promise. A leader opens slots at most
// MaxOpenSlots past its own commit index, and an acceptor lags that by at
// most the log the leader keeps before it compacts (kv keeps 10,000
// entries; a replica further behind gets a snapshot): 65,536 slots is far
// above both, and bounds the log a forged slot number can grow (an empty
// slot costs about 60 bytes, so 4 MiB). An acceptor further behind
// refuses the Accept, which is always safe, and catches up by snapshot.
const maxSlotsAhead = 1 << 16

// checkMessage returns why m is not a message a correct peer sends to this
// node, or nil.
func (r *RawNode) checkMessage(m Message) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %v from %d: %s", ErrInvalidMessage, m.Type, m.From, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Type < MsgPrepare || m.Type > MsgTimeoutNow:
		return bad("unknown message type %d", uint8(m.Type))
	case m.From == 0 || m.From == r.id || m.To != r.id:
		return bad("sent %d->%d to node %d", m.From, m.To, r.id)
	case len(m.Entries) > 0 && m.Type != MsgAccept && m.Type != MsgPromise:
		return bad("%d entries outside an Accept or a Promise", len(m.Entries))
	case len(m.Slots) > 0 && m.Type != MsgAccepted:
		return bad("slots outside an Accepted")
	case m.Type == MsgSnapshot && m.Snapshot == nil:
		return bad("no snapshot")
	case m.Snapshot != nil && m.Type != MsgSnapshot && m.Type != MsgPromise:
		return bad("a snapshot outside a Snapshot or a Promise")
	}
	// A request carries its sender's ballot; a reply, the ballot of the
	// request it answers: this node's.
	switch m.Type {
	case MsgPrepare, MsgAccept, MsgHeartbeat, MsgSnapshot, MsgTimeoutNow:
		if m.Ballot.NodeID != m.From || m.Ballot.Round == 0 {
			return bad("ballot %v is not the sender's", m.Ballot)
		}
	default:
		if m.Ballot.NodeID != r.id || m.Ballot.Round == 0 {
			return bad("ballot %v answers no ballot of this node", m.Ballot)
		}
	}
	for _, e := range m.Entries {
		switch {
		case e.Slot == 0 || e.Slot > r.log.commit+maxSlotsAhead:
			return bad("slot %d, this node's commit index is %d (at most %d slots ahead)", e.Slot, r.log.commit, maxSlotsAhead)
		case e.Type != EntryNormal && e.Type != EntryNoop && e.Type != EntryConfig:
			return bad("slot %d of unknown type %d", e.Slot, uint8(e.Type))
		case e.Type == EntryConfig:
			mem, err := UnmarshalMembership(e.Data)
			if err == nil {
				_, err = mem.System()
			}
			if err != nil {
				return bad("configuration in slot %d: %v", e.Slot, err)
			}
		}
	}
	if s := m.Snapshot; s != nil {
		if len(s.Configs) == 0 {
			return bad("snapshot at slot %d without a configuration", s.Slot)
		}
		for i, c := range s.Configs {
			if i > 0 && c.Effective <= s.Configs[i-1].Effective {
				return bad("snapshot configurations out of order")
			}
		}
		if _, err := newConfigSet(r.configs.alpha, s.Configs); err != nil {
			return bad("snapshot at slot %d: %v", s.Slot, err)
		}
	}
	return nil
}
