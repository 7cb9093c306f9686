package records

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/wrn"
)

// The value of a key's compare-and-swap register (kv/eventual/eventual_cas.go) and
// the acceptors' Promise as the coordinator receives it.

// CASHistoryLen is how many of a key's latest swaps its register
// remembers, with the request ID and version of each: a retry of a swap
// (a later attempt of one request, or a client's retry with the same
// idempotency key) that finds its ID there answers the swap's success and
// version instead of evaluating its condition again. It is the bound
// docs/api.md gives: a retry sent after more than CASHistoryLen later
// swaps of the same key can no longer be told apart from a new request.
// An entry costs about 13 bytes (8 of ID, the version delta-encoded) in
// the acceptors' state and in every Promise and Accept of the key, but
// only on a key that saw that many swaps: too low forgets a swap on a key
// hot enough to see that many swaps while a client retries (an e2e run of
// six clients on three keys does about 100 swaps a second per key, and a
// contended swap may take a second); too high costs that much on every
// swap of a hot key (256: about 3.3 KiB).
const CASHistoryLen = 256

// CASID names one compare-and-swap request: a hash of its idempotency
// key, or random for a request without one. 64 bits: an accidental
// collision among a key's CASHistoryLen entries is about 2^-56 likely,
// and the keys the Go client makes are random, so another client's key
// cannot be aimed at.
type CASID [8]byte

// casIDOf returns the ID of a request with idempotency key k (not empty):
// a hash, so that entries are small whatever the key's length (up to
// MaxIdempotencyKeyBytes).
func CASIDOf(k []byte) CASID {
	sum := sha256.Sum256(k)
	var id CASID
	copy(id[:], sum[:])
	return id
}

// casEntry is one swap in a register's history.
type casEntry struct {
	id      CASID
	Version wrn.Version // of the record the swap wrote
}

// CASValue is the value of a key's register: the key's record as the
// register last decided it (a value or a tombstone; none when the key was
// found absent, and the register chosen to say so), the position of the
// latest swap in the key's chain of swaps (1 for the first), and the
// latest swaps, oldest first (hist[len-1] is the one at seq). A register
// chosen again with a newer record than its own (a plain write that the
// proposal saw) keeps seq and hist: that was no swap.
type CASValue struct {
	Rec  wrn.Record
	Seq  uint64
	Hist []casEntry
}

// casValueFormatV2 starts an encoded CASValue. Format 1 (recordFormatV1)
// is a bare record, the register's value before histories: seq 0, none.
const casValueFormatV2 byte = 2

// EncodeCASValue encodes v: the format byte, seq, the record
// (EncodeRecord, or nothing) with its length, the number of entries, then
// each entry's ID and version: the wall time as a signed delta from the
// previous entry's (from 0 for the first), the logical counter and the
// node as uvarints.
func EncodeCASValue(v CASValue) []byte {
	e := codec.Enc{Buf: make([]byte, 0, 48+len(v.Rec.Value)+len(v.Hist)*16)}
	e.Byte(casValueFormatV2)
	e.Uint(v.Seq)
	if v.Rec.Version.IsZero() {
		e.Bytes(nil) // no record: the key is absent, and was never deleted
	} else {
		e.Bytes(EncodeRecord(v.Rec))
	}
	e.Uint(uint64(len(v.Hist)))
	var wall int64
	for _, h := range v.Hist {
		e.Buf = append(e.Buf, h.id[:]...)
		e.Buf = binary.AppendVarint(e.Buf, h.Version.Timestamp.WallTime-wall)
		wall = h.Version.Timestamp.WallTime
		e.Uint(uint64(h.Version.Timestamp.Logical))
		e.Uint(h.Version.Node)
	}
	return e.Buf
}

// DecodeCASValue reads what encodeCASValue wrote, or a bare record. The
// record's value aliases b.
func DecodeCASValue(b []byte) (CASValue, error) {
	if len(b) > 0 && b[0] == recordFormatV1 {
		rec, err := DecodeRecord(b)
		return CASValue{Rec: rec}, err
	}
	d := codec.Dec{Buf: b}
	if f := d.Byte(); d.Err == nil && f != casValueFormatV2 {
		return CASValue{}, fmt.Errorf("%w: compare-and-swap value format %d", codec.ErrCorrupt, f)
	}
	var v CASValue
	v.Seq = d.Uint()
	raw := d.Bytes()
	n := d.Uint()
	if n > CASHistoryLen || n > v.Seq {
		d.Fail("history length")
	}
	var wall int64
	for i := uint64(0); i < n && d.Err == nil; i++ {
		var h casEntry
		if len(d.Buf) < len(h.id) {
			d.Fail("history entry")
			break
		}
		copy(h.id[:], d.Buf)
		d.Buf = d.Buf[len(h.id):]
		delta, k := binary.Varint(d.Buf)
		if k <= 0 {
			d.Fail("history entry's wall time")
			break
		}
		d.Buf = d.Buf[k:]
		wall += delta
		h.Version.Timestamp.WallTime = wall
		logical := d.Uint()
		if logical > uint64(^uint32(0)) {
			d.Fail("logical counter")
		}
		h.Version.Timestamp.Logical = uint32(logical)
		h.Version.Node = d.Uint()
		v.Hist = append(v.Hist, h)
	}
	if err := d.Done(); err != nil {
		return CASValue{}, err
	}
	if len(raw) == 0 {
		return v, nil
	}
	rec, err := DecodeRecord(raw)
	if err != nil {
		return CASValue{}, err
	}
	v.Rec = rec
	return v, nil
}

// Find returns the entry of request id, if the history still holds it.
func (v CASValue) Find(id CASID) (casEntry, bool) {
	for _, h := range v.Hist {
		if h.id == id {
			return h, true
		}
	}
	return casEntry{}, false
}

// Covers says whether a swap proposed at position seq would be in the
// history if it had been chosen: it is not older than the oldest entry
// (or not chosen yet at all, past the latest).
func (v CASValue) Covers(seq uint64) bool {
	return seq+uint64(len(v.Hist)) > v.Seq
}

// Next is the register after a swap by request id to rec: one position
// on, id's entry added, the oldest dropped past CASHistoryLen.
func (v CASValue) Next(rec wrn.Record, id CASID) CASValue {
	hist := make([]casEntry, 0, CASHistoryLen)
	if len(v.Hist) >= CASHistoryLen {
		hist = append(hist, v.Hist[len(v.Hist)-CASHistoryLen+1:]...)
	} else {
		hist = append(hist, v.Hist...)
	}
	hist = append(hist, casEntry{id: id, Version: rec.Version})
	return CASValue{Rec: rec, Seq: v.Seq + 1, Hist: hist}
}

// casPromiseFormat starts a Promise's value as an acceptor of this node
// sends it: what the acceptor accepted, and the key's record on its
// replica (encodePromise). The coordinator merges that record into the
// key's current one: a tombstone newer than the accepted value wins, so
// that a value deleted since it was accepted stays deleted. Its purge
// clears the accepted value with it (Store.Purge), so that no
// replica holds an old accepted value without the tombstone that hides it.
const casPromiseFormat byte = 3

// encodePromise encodes a Promise's accepted value (nil: none) and the
// replica's record of the key (zero: none).
func encodePromise(accepted []byte, rec wrn.Record) []byte {
	e := codec.Enc{Buf: make([]byte, 0, 8+len(accepted)+len(rec.Value)+24)}
	e.Byte(casPromiseFormat)
	e.Bytes(accepted)
	if rec.Version.IsZero() {
		e.Bytes(nil)
	} else {
		e.Bytes(EncodeRecord(rec))
	}
	return e.Buf
}

// DecodePromise reads what encodePromise wrote. Both results alias b.
func DecodePromise(b []byte) ([]byte, wrn.Record, error) {
	d := codec.Dec{Buf: b}
	if f := d.Byte(); d.Err == nil && f != casPromiseFormat {
		return nil, wrn.Record{}, fmt.Errorf("%w: compare-and-swap promise format %d", codec.ErrCorrupt, f)
	}
	accepted := d.Bytes()
	raw := d.Bytes()
	if err := d.Done(); err != nil {
		return nil, wrn.Record{}, err
	}
	if len(raw) == 0 {
		return accepted, wrn.Record{}, nil
	}
	rec, err := DecodeRecord(raw)
	return accepted, rec, err
}
