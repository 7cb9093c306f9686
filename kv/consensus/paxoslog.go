package consensus

import (
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/storage"
)

// PaxosLog is a paxos range's acceptor state in the node's Pebble
// database, under the same keys a Raft range uses for the same purposes:
//
//   - storage.HardStateKey: the promise and the commit index;
//   - storage.LogKey(range, slot): the entry the acceptor accepted in the
//     slot and its ballot. Slots are written as they are accepted, in any
//     order, each write replacing the slot's previous one; the log may
//     have holes;
//   - storage.TruncatedStateKey: the snapshot point, the slot up to which
//     the log is compacted and the configurations that govern the slots
//     after it. The snapshot's data is not stored here: it is the range's
//     applied data (see PaxosCore).
//
// Only the store's goroutine uses it. Its cached fields describe what is
// in Pebble once the batch being built commits.
type PaxosLog struct {
	db      *storage.DB
	rangeID uint64

	HardState paxos.HardState
	// Snap is the snapshot point, without data.
	Snap paxos.Snapshot
	// Founded says that the range's state exists: a snapshot point is
	// written when the range is founded.
	Founded bool
}

// LoadPaxosLog reads the range's acceptor state and accepted entries.
func LoadPaxosLog(db *storage.DB, rangeID uint64) (*PaxosLog, []paxos.Entry, error) {
	l := &PaxosLog{db: db, rangeID: rangeID}
	if b, err := db.Get(storage.HardStateKey(rangeID)); err == nil {
		if l.HardState, err = DecodePaxosHardState(b); err != nil {
			return nil, nil, fmt.Errorf("kv: paxos range %d hard state: %w", rangeID, err)
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, nil, err
	}
	if b, err := db.Get(storage.TruncatedStateKey(rangeID)); err == nil {
		if l.Snap, err = DecodePaxosSnapshotPoint(b); err != nil {
			return nil, nil, fmt.Errorf("kv: paxos range %d snapshot point: %w", rangeID, err)
		}
		l.Founded = true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, nil, err
	}
	it, err := db.NewIter(storage.RangeLogSpan(rangeID))
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var ents []paxos.Entry
	for ok := it.First(); ok; ok = it.Next() {
		_, slot, err := storage.DecodeLogKey(it.Key())
		if err != nil {
			return nil, nil, err
		}
		v, err := it.Value()
		if err != nil {
			return nil, nil, err
		}
		e, err := DecodePaxosEntry(slot, v) // copies: the iterator owns v
		if err != nil {
			return nil, nil, fmt.Errorf("kv: paxos range %d slot %d: %w", rangeID, slot, err)
		}
		if slot > l.Snap.Slot {
			ents = append(ents, e)
		}
	}
	return l, ents, it.Error()
}

// SetHardState adds hs to b.
func (l *PaxosLog) SetHardState(b *storage.Batch, hs paxos.HardState) error {
	l.HardState = hs
	return b.Set(storage.HardStateKey(l.rangeID), EncodePaxosHardState(hs))
}

// SetEntries adds accepted entries to b, each replacing its slot's.
// Entries at or below the snapshot point are superseded by it.
func (l *PaxosLog) SetEntries(b *storage.Batch, es []paxos.Entry) error {
	for _, e := range es {
		if e.Slot <= l.Snap.Slot {
			continue
		}
		if err := b.Set(storage.LogKey(l.rangeID, e.Slot), EncodePaxosEntry(e)); err != nil {
			return err
		}
	}
	return nil
}

// SetSnapshot records a new snapshot point (a compaction, or a snapshot
// from the leader) and drops the slots it covers.
func (l *PaxosLog) SetSnapshot(b *storage.Batch, snap paxos.Snapshot) error {
	if snap.Slot > l.Snap.Slot {
		s := storage.LogSpan(l.rangeID, l.Snap.Slot+1, snap.Slot+1)
		if err := b.DeleteRange(s.Start, s.End); err != nil {
			return err
		}
	}
	snap.Data = nil
	l.Snap, l.Founded = snap, true
	return b.Set(storage.TruncatedStateKey(l.rangeID), EncodePaxosSnapshotPoint(snap))
}

// Encodings. Each starts with paxosCodecV1, which differs from the Raft
// records' version byte, so a Raft record under the same key is refused
// rather than misread.
const paxosCodecV1 = 0x81

func EncodePaxosHardState(hs paxos.HardState) []byte {
	e := codec.Enc{Buf: []byte{paxosCodecV1}}
	encodeBallot(&e, hs.Promised)
	e.Uint(hs.Commit)
	return e.Buf
}

func DecodePaxosHardState(b []byte) (paxos.HardState, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != paxosCodecV1 {
		d.Fail("paxos hard state version")
	}
	hs := paxos.HardState{Promised: decodeBallot(&d), Commit: d.Uint()}
	return hs, d.Done()
}

// EncodePaxosEntry encodes all but the slot, which is in the key.
func EncodePaxosEntry(pe paxos.Entry) []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(pe.Data)+16)}
	e.Byte(paxosCodecV1)
	encodeBallot(&e, pe.Ballot)
	e.Byte(byte(pe.Type))
	e.Bytes(pe.Data)
	return e.Buf
}

// DecodePaxosEntry decodes an entry, copying its data out of b.
func DecodePaxosEntry(slot uint64, b []byte) (paxos.Entry, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != paxosCodecV1 {
		d.Fail("paxos entry version")
	}
	e := paxos.Entry{Slot: slot, Ballot: decodeBallot(&d), Type: paxos.EntryType(d.Byte())}
	if data := d.Bytes(); data != nil {
		e.Data = append([]byte(nil), data...)
	}
	return e, d.Done()
}

func EncodePaxosSnapshotPoint(s paxos.Snapshot) []byte {
	e := codec.Enc{Buf: []byte{paxosCodecV1}}
	e.Uint(s.Slot)
	encodePaxosConfigs(&e, s.Configs)
	return e.Buf
}

func DecodePaxosSnapshotPoint(b []byte) (paxos.Snapshot, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != paxosCodecV1 {
		d.Fail("paxos snapshot point version")
	}
	s := paxos.Snapshot{Slot: d.Uint()}
	s.Configs = decodePaxosConfigs(&d)
	return s, d.Done()
}

func encodeBallot(e *codec.Enc, b paxos.Ballot) {
	e.Uint(b.Round)
	e.Uint(b.NodeID)
}

func decodeBallot(d *codec.Dec) paxos.Ballot {
	return paxos.Ballot{Round: d.Uint(), NodeID: d.Uint()}
}

func encodePaxosConfigs(e *codec.Enc, cs []paxos.ConfigState) {
	e.Int(len(cs))
	for _, c := range cs {
		e.Uint(c.Effective)
		e.Int(len(c.Membership.Voters))
		for _, n := range c.Membership.Voters {
			e.Uint(n.ID)
			e.String(n.Zone)
			e.Int(n.Weight)
		}
		e.String(c.Membership.Geometry)
	}
}

func decodePaxosConfigs(d *codec.Dec) []paxos.ConfigState {
	var out []paxos.ConfigState
	// A configuration takes at least 3 bytes (effective slot, voter count,
	// geometry length), a voter at least 3 (ID, zone length, weight).
	for range d.Count("paxos configuration count", maxConfMembers, 3) {
		c := paxos.ConfigState{Effective: d.Uint()}
		for range d.Count("paxos voter count", maxConfMembers, 3) {
			c.Membership.Voters = append(c.Membership.Voters, quorum.Node{ID: d.Uint(), Zone: d.String(), Weight: d.Int()})
		}
		c.Membership.Geometry = d.String()
		out = append(out, c)
		if d.Err != nil {
			break
		}
	}
	return out
}
