package kv

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/paxos"
)

// Paxos messages on the wire: a version byte, then the fields of
// paxos.Message in order. Entries carry their slot, ballot, type and
// data; a snapshot its slot, configurations and data. A message with
// Transfer set (a Prepare of a leadership transfer) is version 2 and ends
// with that flag; every other message stays version 1, which nodes that
// predate transfers decode (they drop version 2: the transfer then falls
// back to an election timeout).

// paxosMessageV2 is the version byte of a message with Transfer set.
const paxosMessageV2 = 0x82

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
	e := enc{b: slices.Grow(dst, size)}
	if m.Transfer {
		e.byte(paxosMessageV2)
	} else {
		e.byte(paxosCodecV1)
	}
	e.byte(byte(m.Type))
	e.uint(m.From)
	e.uint(m.To)
	encodeBallot(&e, m.Ballot)
	e.bool(m.Reject)
	encodeBallot(&e, m.Hint)
	e.uint(m.Slot)
	e.uint(m.Commit)
	e.int(len(m.Entries))
	for _, ent := range m.Entries {
		e.uint(ent.Slot)
		encodeBallot(&e, ent.Ballot)
		e.byte(byte(ent.Type))
		e.bytes(ent.Data)
	}
	e.int(len(m.Slots))
	for _, s := range m.Slots {
		e.uint(s)
	}
	e.bool(m.Snapshot != nil)
	if s := m.Snapshot; s != nil {
		e.uint(s.Slot)
		encodePaxosConfigs(&e, s.Configs)
		e.bytes(s.Data)
	}
	e.bytes(m.Context)
	if m.Transfer {
		e.bool(true)
	}
	return e.b
}

// decodePaxosMessage decodes b. The message's byte slices alias b.
func decodePaxosMessage(b []byte) (paxos.Message, error) {
	d := dec{b: b}
	v := d.byte()
	if v != paxosCodecV1 && v != paxosMessageV2 {
		return paxos.Message{}, fmt.Errorf("%w: paxos message version %d", ErrCorrupt, v)
	}
	m := paxos.Message{Type: paxos.MessageType(d.byte())}
	m.From, m.To = d.uint(), d.uint()
	m.Ballot = decodeBallot(&d)
	m.Reject = d.bool()
	m.Hint = decodeBallot(&d)
	m.Slot, m.Commit = d.uint(), d.uint()
	n := d.int()
	if n > maxMessageEntries {
		d.fail("entry count")
	}
	if n > 0 && d.err == nil {
		m.Entries = make([]paxos.Entry, 0, min(n, 1024))
		for range n {
			ent := paxos.Entry{Slot: d.uint(), Ballot: decodeBallot(&d), Type: paxos.EntryType(d.byte())}
			ent.Data = d.bytes()
			m.Entries = append(m.Entries, ent)
			if d.err != nil {
				break
			}
		}
	}
	n = d.int()
	if n > maxMessageSlots {
		d.fail("slot count")
	}
	if n > 0 && d.err == nil {
		m.Slots = make([]uint64, 0, min(n, 1024))
		for range n {
			m.Slots = append(m.Slots, d.uint())
			if d.err != nil {
				break
			}
		}
	}
	if d.bool() {
		s := &paxos.Snapshot{Slot: d.uint()}
		s.Configs = decodePaxosConfigs(&d)
		s.Data = d.bytes()
		m.Snapshot = s
	}
	m.Context = d.bytes()
	if v == paxosMessageV2 {
		if m.Transfer = d.bool(); !m.Transfer {
			d.fail("transfer flag")
		}
	}
	return m, d.done()
}
