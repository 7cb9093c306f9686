package records

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Eventual keyspaces keep, on each replica of a range, one record per key
// under the range's data keys (storage.DataKey): the value or tombstone and
// the version that wrote it. There is no log and no applied index: a
// replica holds the newest record it has been sent, and replicas converge
// because every one of them resolves two records the same way (wrn.Merge,
// last writer wins).

// recordFormatV1 is the first byte of an encoded record.
const recordFormatV1 byte = 1

// Flags of an encoded record.
const recordTombstone byte = 1

// EncodeRecord encodes rec: the format byte, the version (wall time as
// its uint64 bits, logical counter, node ID as uvarints), a flags byte,
// then the value (absent for a tombstone).
func EncodeRecord(rec wrn.Record) []byte {
	e := codec.Enc{Buf: make([]byte, 0, 24+len(rec.Value))}
	e.Byte(recordFormatV1)
	e.Uint(uint64(rec.Version.Timestamp.WallTime))
	e.Uint(uint64(rec.Version.Timestamp.Logical))
	e.Uint(rec.Version.Node)
	var flags byte
	if rec.Tombstone {
		flags |= recordTombstone
	}
	e.Byte(flags)
	if !rec.Tombstone {
		e.Bytes(rec.Value)
	}
	return e.Buf
}

// DecodeRecord reads what EncodeRecord wrote. The value aliases b.
func DecodeRecord(b []byte) (wrn.Record, error) {
	d := codec.Dec{Buf: b}
	if f := d.Byte(); d.Err == nil && f != recordFormatV1 {
		return wrn.Record{}, fmt.Errorf("%w: record format %d", codec.ErrCorrupt, f)
	}
	var rec wrn.Record
	rec.Version.Timestamp.WallTime = int64(d.Uint())
	logical := d.Uint()
	if logical > uint64(^uint32(0)) {
		d.Fail("logical counter")
	}
	rec.Version.Timestamp.Logical = uint32(logical)
	rec.Version.Node = d.Uint()
	flags := d.Byte()
	if flags&^recordTombstone != 0 {
		d.Fail("record flags")
	}
	rec.Tombstone = flags&recordTombstone != 0
	if !rec.Tombstone {
		rec.Value = d.Bytes()
	}
	if err := d.Done(); err != nil {
		return wrn.Record{}, err
	}
	if rec.Version.IsZero() {
		return wrn.Record{}, fmt.Errorf("%w: record without a version", codec.ErrCorrupt)
	}
	return rec, nil
}

// recordLockStripes is how many locks serialize compare-and-set writes of
// records: two writes of keys on the same stripe wait for each other's
// WAL sync. More stripes cost 8 bytes each and contend less; 256 keeps
// unrelated keys from queueing behind one another at any concurrency a
// node's fsync rate can serve.
const recordLockStripes = 256

// Store is the replica side of eventual keyspaces on one node. It
// is safe for concurrent use.
type Store struct {
	db *storage.DB
	// locks make read-compare-write of one key atomic: Pebble batches
	// cannot read, so the record is read, compared and written (in one
	// synced batch) under the key's stripe.
	locks [recordLockStripes]sync.Mutex
	// casLocks serialize the steps of one key's compare-and-swap acceptor
	// (kv/eventual/eventual_cas.go).
	casLocks casLocks
	// StaleUnsynced is a canary (eventual.Hooks): Write answers a record
	// that lost to the stored version without syncing the WAL, as if the
	// stored one could not have been written lazily.
	StaleUnsynced bool
	// sizes are the ranges' sizes counted so far (move.go).
	sizes sizes
}

func NewStore(db *storage.DB) *Store { return &Store{db: db} }

func (s *Store) stripe(rangeID uint64, key []byte) *sync.Mutex {
	return &s.locks[stripeIndex(rangeID, key)]
}

// StripeIndex is the lock stripe of key in range rangeID.
func stripeIndex(rangeID uint64, key []byte) uint64 {
	h := xxhash.Sum64(key) ^ rangeID*0x9E3779B97F4A7C15
	return h % recordLockStripes
}

// Write stores rec as key's record in range rangeID if it is newer than
// the stored one, and returns once it is durable (the WAL synced), so that
// an acknowledgement counts toward W. applied says whether rec replaced
// the stored record. A record that lost to a newer (or the same) version
// may have been written lazily (WriteLazily): Write syncs the WAL before
// it returns then too, so its answer is a durable acknowledgement either
// way. existed says whether the replica held a live value before.
func (s *Store) Write(rangeID uint64, key []byte, rec wrn.Record) (applied, existed bool, err error) {
	return s.write(rangeID, key, rec, true)
}

// WriteLazily is Write without waiting for the WAL sync: the record is
// stored, and readable, but a crash before the WAL's next sync (any
// synced commit's on this node, or Pebble's own) loses it. Its
// acknowledgement does not count toward W.
func (s *Store) WriteLazily(rangeID uint64, key []byte, rec wrn.Record) (applied, existed bool, err error) {
	return s.write(rangeID, key, rec, false)
}

func (s *Store) write(rangeID uint64, key []byte, rec wrn.Record, sync bool) (applied, existed bool, err error) {
	if rec.Version.IsZero() {
		return false, false, fmt.Errorf("%w: a record to write needs a version", catalog.ErrInvalidArgument)
	}
	mu := s.stripe(rangeID, key)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.Read(rangeID, key)
	if err != nil {
		return false, false, err
	}
	if !cur.Version.Less(rec.Version) {
		if sync && !s.StaleUnsynced {
			if err := s.db.SyncWAL(); err != nil {
				return false, false, err
			}
		}
		return false, cur.Exists(), nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(storage.DataKey(rangeID, key), EncodeRecord(rec)); err != nil {
		return false, false, err
	}
	if err := b.Commit(sync /* W counts durable acks */); err != nil {
		return false, false, err
	}
	s.sizeChanged(rangeID, recordBytes(key, rec)-recordBytes(key, cur))
	return true, cur.Exists(), nil
}

// Purge deletes key's record in range rangeID if it is still the
// tombstone of version v (anti-entropy's tombstone purge), and reports
// whether it did. In the same batch it takes the record out of the value
// that key's compare-and-swap acceptor accepted, if that record is not
// newer than the tombstone, so that no replica ever holds an old accepted
// value without the tombstone that hides it: a compare-and-swap after the
// purge would otherwise find that value and bring it back
// (casPromiseFormat). The accepted value keeps its swap history, so that
// a retry of a swap still finds it (kv/records/casvalue.go), and the
// acceptor its promise and ballot: forgetting them could let two
// proposals in flight both be chosen. The batch is not synced: a purge
// lost in a crash is lost whole, and done again by a later round.
//
// keepAccepted (a canary, eventual.Hooks) leaves the acceptor alone.
func (s *Store) Purge(rangeID uint64, key []byte, v wrn.Version, keepAccepted bool) (bool, error) {
	cmu := s.casStripe(rangeID, key)
	cmu.Lock()
	defer cmu.Unlock()
	mu := s.stripe(rangeID, key)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.Read(rangeID, key)
	if err != nil || !cur.Tombstone || cur.Version != v {
		return false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(storage.DataKey(rangeID, key)); err != nil {
		return false, err
	}
	st, err := s.AcceptorState(rangeID, key)
	if err != nil {
		return false, err
	}
	if !st.Accepted.IsZero() && !keepAccepted {
		acc, err := DecodeCASValue(st.Value)
		if err != nil {
			return false, fmt.Errorf("range %d key %q: accepted compare-and-swap value: %w", rangeID, command.Abbreviate(key), err)
		}
		if !acc.Rec.Version.IsZero() && !v.Less(acc.Rec.Version) {
			st.Value = EncodeCASValue(CASValue{Seq: acc.Seq, Hist: acc.Hist})
			if err := b.Set(storage.CASStateKey(rangeID, key), st.Marshal()); err != nil {
				return false, err
			}
		}
	}
	if err := b.Commit(false); err != nil {
		return false, err
	}
	s.sizeChanged(rangeID, -recordBytes(key, cur))
	return true, nil
}

// Read returns key's record in range rangeID: the zero Record if there is
// none. The value is a copy.
func (s *Store) Read(rangeID uint64, key []byte) (wrn.Record, error) {
	raw, err := s.db.Get(storage.DataKey(rangeID, key))
	if errors.Is(err, storage.ErrNotFound) {
		return wrn.Record{}, nil
	}
	if err != nil {
		return wrn.Record{}, err
	}
	rec, err := DecodeRecord(raw)
	if err != nil {
		return wrn.Record{}, fmt.Errorf("range %d key %q: %w", rangeID, command.Abbreviate(key), err)
	}
	rec.Value = bytes.Clone(rec.Value)
	return rec, nil
}

// KeyRecord is a key with its record.
type KeyRecord struct {
	Key    []byte
	Record wrn.Record
}

// Scan returns up to limit records of range rangeID with prefix after
// startAfter, in key order, tombstones included (they count toward limit:
// the coordinator needs them to hide older values of other replicas).
func (s *Store) Scan(rangeID uint64, prefix, startAfter []byte, limit int) ([]KeyRecord, error) {
	var out []KeyRecord
	err := command.EachData(s.db, rangeID, prefix, startAfter, func(key, raw []byte) (bool, error) {
		rec, err := DecodeRecord(raw)
		if err != nil {
			return false, fmt.Errorf("range %d key %q: %w", rangeID, command.Abbreviate(key), err)
		}
		rec.Value = bytes.Clone(rec.Value)
		out = append(out, KeyRecord{Key: bytes.Clone(key), Record: rec})
		return len(out) < limit, nil
	})
	return out, err
}

// StepAcceptor runs key's acceptor (see stepLocalCAS) under the key's
// stripe of casLocks, which purge takes too: a Promise's record and
// accepted value are read together, never between a purge's delete of the
// tombstone and its clearing of the accepted value.
func (s *Store) StepAcceptor(self, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	mu := s.casStripe(rangeID, key)
	mu.Lock()
	defer mu.Unlock()
	sk := storage.CASStateKey(rangeID, key)
	st, err := s.AcceptorState(rangeID, key)
	if err != nil {
		return paxos.BasicMessage{}, err
	}
	m.To = self
	rd := paxos.NewAcceptor(self, st).Step(m)
	if rd.Persist {
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.Set(sk, rd.State.Marshal()); err != nil {
			return paxos.BasicMessage{}, err
		}
		if err := b.Commit(true /* sync: a reply is a promise */); err != nil {
			return paxos.BasicMessage{}, err
		}
	}
	if len(rd.Messages) != 1 {
		return paxos.BasicMessage{}, fmt.Errorf("acceptor answered %d messages to %v", len(rd.Messages), m.Type)
	}
	reply := rd.Messages[0]
	if reply.Type == paxos.BasicPromise {
		rec, err := s.Read(rangeID, key)
		if err != nil {
			return paxos.BasicMessage{}, err
		}
		reply.Value = encodePromise(reply.Value, rec)
	}
	return reply, nil
}

// AcceptorState reads key's acceptor state in range rangeID (the zero
// state if none).
func (s *Store) AcceptorState(rangeID uint64, key []byte) (paxos.AcceptorState, error) {
	var st paxos.AcceptorState
	raw, err := s.db.Get(storage.CASStateKey(rangeID, key))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return st, nil
	case err != nil:
		return st, err
	}
	if err := st.Unmarshal(raw); err != nil {
		return st, fmt.Errorf("%w: range %d key %q: %v", codec.ErrCorrupt, rangeID, command.Abbreviate(key), err)
	}
	return st, nil
}

// KeyAcceptor is a key with its compare-and-swap acceptor state.
type KeyAcceptor struct {
	Key   []byte
	State paxos.AcceptorState
}

// Acceptors returns up to limit of range rangeID's acceptor states, of
// the keys after after (all, if after is empty), in key order.
func (s *Store) Acceptors(rangeID uint64, after []byte, limit int) ([]KeyAcceptor, error) {
	it, err := s.db.NewIter(storage.CASStateSpan(rangeID))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ok := it.First()
	if len(after) > 0 {
		ok = it.SeekGE(storage.CASStateKey(rangeID, append(bytes.Clone(after), 0)))
	}
	var out []KeyAcceptor
	for ; ok && len(out) < limit; ok = it.Next() {
		_, key, err := storage.DecodeCASStateKey(it.Key())
		if err != nil {
			return nil, err
		}
		raw, err := it.Value()
		if err != nil {
			return nil, err
		}
		var st paxos.AcceptorState
		if err := st.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("%w: range %d key %q: %v", codec.ErrCorrupt, rangeID, command.Abbreviate(key), err)
		}
		st.Value = bytes.Clone(st.Value)
		out = append(out, KeyAcceptor{Key: bytes.Clone(key), State: st})
	}
	return out, it.Error()
}

// MergeAcceptor merges another replica's acceptor state of key into this
// one's, when a new replica fills (kv/eventual/fill.go): it takes the
// higher promise and the acceptance of the higher ballot. Adopting them
// is safe: a promise only makes this acceptor refuse more, and an
// acceptance it reports is one another acceptor really made at that
// ballot, whose proposer sent one value only; Basic Paxos needs only
// that a phase-1 quorum report the highest acceptance its members made,
// and with the merge this replica reports at least what the other did.
// Written and synced like an acceptor's step.
func (s *Store) MergeAcceptor(rangeID uint64, key []byte, theirs paxos.AcceptorState) error {
	mu := s.casStripe(rangeID, key)
	mu.Lock()
	defer mu.Unlock()
	st, err := s.AcceptorState(rangeID, key)
	if err != nil {
		return err
	}
	merged := mergeAcceptor(st, theirs)
	if merged == nil {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(storage.CASStateKey(rangeID, key), merged.Marshal()); err != nil {
		return err
	}
	return b.Commit(true)
}

// casLocks serialize the acceptor steps of one key on a replica.
type casLocks [recordLockStripes]sync.Mutex

func (s *Store) casStripe(rangeID uint64, key []byte) *sync.Mutex {
	return &s.casLocks[stripeIndex(rangeID, key)]
}
