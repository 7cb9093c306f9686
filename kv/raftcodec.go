package kv

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/raft"
)

// Raft messages on the wire (after the protocol byte of peercodec.go): a version byte, then
// the fields of raft.Message in order. Entries reuse the log's encoding
// plus their index; a snapshot carries its metadata and data.

// maxMessageEntries bounds the entries a decoded message may claim, so a
// corrupt count cannot allocate without bound (raft's MaxSizePerMsg keeps
// real messages far below it).
const maxMessageEntries = 1 << 20

func encodeRaftMessage(m *raft.Message) []byte { return appendRaftMessage(nil, m) }

func appendRaftMessage(dst []byte, m *raft.Message) []byte {
	size := 64
	for _, e := range m.Entries {
		size += len(e.Data) + 24
	}
	if m.Snapshot != nil {
		size += len(m.Snapshot.Data) + 64
	}
	e := enc{b: slices.Grow(dst, size)}
	e.byte(codecV1)
	e.byte(byte(m.Type))
	e.uint(m.To)
	e.uint(m.From)
	e.uint(m.Term)
	e.uint(m.LogTerm)
	e.uint(m.Index)
	e.uint(m.Commit)
	e.bool(m.Reject)
	e.uint(m.RejectHint)
	e.bool(m.Transfer)
	e.uint(m.ReadSeq)
	e.int(len(m.Entries))
	for _, ent := range m.Entries {
		e.uint(ent.Index)
		e.uint(ent.Term)
		e.byte(byte(ent.Type))
		e.bytes(ent.Data)
	}
	e.bool(m.Snapshot != nil)
	if s := m.Snapshot; s != nil {
		e.uint(s.Metadata.Index)
		e.uint(s.Metadata.Term)
		encodeConfState(&e, s.Metadata.ConfState)
		e.bytes(s.Data)
	}
	return e.b
}

// decodeRaftMessage decodes b. The message's byte slices alias b.
func decodeRaftMessage(b []byte) (raft.Message, error) {
	d := dec{b: b}
	if v := d.byte(); v != codecV1 {
		return raft.Message{}, fmt.Errorf("%w: raft message version %d", ErrCorrupt, v)
	}
	m := raft.Message{Type: raft.MessageType(d.byte())}
	m.To, m.From, m.Term, m.LogTerm, m.Index, m.Commit = d.uint(), d.uint(), d.uint(), d.uint(), d.uint(), d.uint()
	m.Reject, m.RejectHint, m.Transfer, m.ReadSeq = d.bool(), d.uint(), d.bool(), d.uint()
	n := d.int()
	if n > maxMessageEntries {
		d.fail("entry count")
	}
	if n > 0 && d.err == nil {
		m.Entries = make([]raft.Entry, 0, min(n, 1024))
		for range n {
			ent := raft.Entry{Index: d.uint(), Term: d.uint(), Type: raft.EntryType(d.byte())}
			ent.Data = d.bytes()
			m.Entries = append(m.Entries, ent)
			if d.err != nil {
				break
			}
		}
	}
	if d.bool() {
		s := &raft.Snapshot{}
		s.Metadata.Index, s.Metadata.Term = d.uint(), d.uint()
		s.Metadata.ConfState = decodeConfState(&d)
		s.Data = d.bytes()
		m.Snapshot = s
	}
	return m, d.done()
}
