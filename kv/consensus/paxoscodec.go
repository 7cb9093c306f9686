package consensus

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
)

// Paxos messages on the wire: a version byte, then the fields of
// paxos.Message in order. Entries carry their slot, ballot, type and
// data; a snapshot its slot, configurations and data. A message with
// Transfer set (a Prepare of a leadership transfer) is version 2 and ends
// with that flag; one with Joining set (an acknowledgement from a joining
// acceptor) is version 3 and ends with that one; every other message
// stays version 1, which older nodes decode (they drop the versions they
// do not know: a transfer then falls back to an election timeout, and a
// joiner is not sent its snapshot by an older leader).
//
// Seq, the heartbeat round of a leader with read leases, rides in the
// Slot field of a Heartbeat, which a Heartbeat does not use otherwise:
// an older acceptor decodes a leased leader's heartbeats as ever (and
// ignores the round, so it never vouches for a lease, paxos/lease.go),
// and an older leader's heartbeats have no round. The answer that echoes
// the round, which only a leader with leases asked for, is version 4 and
// ends with the Transfer and Joining flags and Seq; so is any other
// message with Seq set, and a Heartbeat whose Slot is set (the core
// sends none).

// paxosMessageV2 is the version byte of a message with Transfer set.
const paxosMessageV2 = 0x82

// paxosMessageV3 is the version byte of a message with Joining set.
const paxosMessageV3 = 0x83

// paxosMessageV4 is the version byte of a message with Seq set.
const paxosMessageV4 = 0x84

// maxMessageSlots bounds the slots a decoded Accepted may list, like
// maxMessageEntries for entries (MaxOpenSlots keeps real ones far below).
const maxMessageSlots = 1 << 20

func appendPaxosMessage(dst []byte, m *paxos.Message) []byte {
	size := 64 + len(m.Context) + 10*len(m.Slots)
	for _, e := range m.Entries {
		size += len(e.Data) + 24
	}
	if m.Snapshot != nil {
		size += len(m.Snapshot.Data) + 64
	}
	e := codec.Enc{Buf: slices.Grow(dst, size)}
	slot, v4 := m.Slot, m.Seq != 0
	if m.Type == paxos.MsgHeartbeat {
		// The round in the Slot field (above), unless Slot is taken.
		if v4 = m.Slot != 0; !v4 {
			slot = m.Seq
		}
	}
	switch {
	case v4:
		e.Byte(paxosMessageV4)
	case m.Transfer:
		e.Byte(paxosMessageV2)
	case m.Joining:
		e.Byte(paxosMessageV3)
	default:
		e.Byte(paxosCodecV1)
	}
	e.Byte(byte(m.Type))
	e.Uint(m.From)
	e.Uint(m.To)
	encodeBallot(&e, m.Ballot)
	e.Bool(m.Reject)
	encodeBallot(&e, m.Hint)
	e.Uint(slot)
	e.Uint(m.Commit)
	e.Int(len(m.Entries))
	for _, ent := range m.Entries {
		e.Uint(ent.Slot)
		encodeBallot(&e, ent.Ballot)
		e.Byte(byte(ent.Type))
		e.Bytes(ent.Data)
	}
	e.Int(len(m.Slots))
	for _, s := range m.Slots {
		e.Uint(s)
	}
	e.Bool(m.Snapshot != nil)
	if s := m.Snapshot; s != nil {
		e.Uint(s.Slot)
		encodePaxosConfigs(&e, s.Configs)
		e.Bytes(s.Data)
	}
	e.Bytes(m.Context)
	switch {
	case v4:
		e.Bool(m.Transfer)
		e.Bool(m.Joining)
		e.Uint(m.Seq)
	case m.Transfer || m.Joining:
		e.Bool(true)
	}
	return e.Buf
}

// decodePaxosMessage decodes b. The message's byte slices alias b.
func decodePaxosMessage(b []byte) (paxos.Message, error) {
	d := codec.Dec{Buf: b}
	v := d.Byte()
	if v != paxosCodecV1 && v != paxosMessageV2 && v != paxosMessageV3 && v != paxosMessageV4 {
		return paxos.Message{}, fmt.Errorf("%w: paxos message version %d", codec.ErrCorrupt, v)
	}
	m := paxos.Message{Type: paxos.MessageType(d.Byte())}
	m.From, m.To = d.Uint(), d.Uint()
	m.Ballot = decodeBallot(&d)
	m.Reject = d.Bool()
	m.Hint = decodeBallot(&d)
	m.Slot, m.Commit = d.Uint(), d.Uint()
	// An entry takes at least 5 bytes: slot, ballot (2), type, data length.
	if n := d.Count("entry count", maxMessageEntries, 5); n > 0 {
		m.Entries = make([]paxos.Entry, 0, n)
		for range n {
			ent := paxos.Entry{Slot: d.Uint(), Ballot: decodeBallot(&d), Type: paxos.EntryType(d.Byte())}
			ent.Data = d.Bytes()
			m.Entries = append(m.Entries, ent)
			if d.Err != nil {
				break
			}
		}
	}
	if n := d.Count("slot count", maxMessageSlots, 1); n > 0 {
		m.Slots = make([]uint64, 0, n)
		for range n {
			m.Slots = append(m.Slots, d.Uint())
			if d.Err != nil {
				break
			}
		}
	}
	if d.Bool() {
		s := &paxos.Snapshot{Slot: d.Uint()}
		s.Configs = decodePaxosConfigs(&d)
		s.Data = d.Bytes()
		m.Snapshot = s
	}
	m.Context = d.Bytes()
	switch v {
	case paxosMessageV2:
		if m.Transfer = d.Bool(); !m.Transfer {
			d.Fail("transfer flag")
		}
	case paxosMessageV3:
		if m.Joining = d.Bool(); !m.Joining {
			d.Fail("joining flag")
		}
	case paxosMessageV4:
		m.Transfer, m.Joining = d.Bool(), d.Bool()
		if m.Seq = d.Uint(); m.Seq == 0 && (m.Type != paxos.MsgHeartbeat || m.Slot == 0) {
			d.Fail("heartbeat round")
		}
	}
	if v != paxosMessageV4 && m.Type == paxos.MsgHeartbeat {
		m.Seq, m.Slot = m.Slot, 0
	}
	return m, d.Done()
}
