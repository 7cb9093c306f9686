package consensus

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
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
	e := codec.Enc{Buf: slices.Grow(dst, size)}
	e.Byte(CodecV1)
	e.Byte(byte(m.Type))
	e.Uint(m.To)
	e.Uint(m.From)
	e.Uint(m.Term)
	e.Uint(m.LogTerm)
	e.Uint(m.Index)
	e.Uint(m.Commit)
	e.Bool(m.Reject)
	e.Uint(m.RejectHint)
	e.Bool(m.Transfer)
	e.Uint(m.ReadSeq)
	e.Int(len(m.Entries))
	for _, ent := range m.Entries {
		e.Uint(ent.Index)
		e.Uint(ent.Term)
		e.Byte(byte(ent.Type))
		e.Bytes(ent.Data)
	}
	e.Bool(m.Snapshot != nil)
	if s := m.Snapshot; s != nil {
		e.Uint(s.Metadata.Index)
		e.Uint(s.Metadata.Term)
		encodeConfState(&e, s.Metadata.ConfState)
		e.Bytes(s.Data)
	}
	return e.Buf
}

// decodeRaftMessage decodes b. The message's byte slices alias b.
func decodeRaftMessage(b []byte) (raft.Message, error) {
	d := codec.Dec{Buf: b}
	if v := d.Byte(); v != CodecV1 {
		return raft.Message{}, fmt.Errorf("%w: raft message version %d", codec.ErrCorrupt, v)
	}
	m := raft.Message{Type: raft.MessageType(d.Byte())}
	m.To, m.From, m.Term, m.LogTerm, m.Index, m.Commit = d.Uint(), d.Uint(), d.Uint(), d.Uint(), d.Uint(), d.Uint()
	m.Reject, m.RejectHint, m.Transfer, m.ReadSeq = d.Bool(), d.Uint(), d.Bool(), d.Uint()
	// An entry takes at least 4 bytes: index, term, type, data length.
	if n := d.Count("entry count", maxMessageEntries, 4); n > 0 {
		m.Entries = make([]raft.Entry, 0, n)
		for range n {
			ent := raft.Entry{Index: d.Uint(), Term: d.Uint(), Type: raft.EntryType(d.Byte())}
			ent.Data = d.Bytes()
			m.Entries = append(m.Entries, ent)
			if d.Err != nil {
				break
			}
		}
	}
	if d.Bool() {
		s := &raft.Snapshot{}
		s.Metadata.Index, s.Metadata.Term = d.Uint(), d.Uint()
		s.Metadata.ConfState = decodeConfState(&d)
		s.Data = d.Bytes()
		m.Snapshot = s
	}
	return m, d.Done()
}
