package store

import (
	"fmt"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

// The wire format of streamed range snapshots (snapshot.go tells the story).
// Everything here is decoded from the network: every decoder checks
// lengths and versions and fails with codec.ErrCorrupt, never panics, and
// allocates at most what the bytes it was given hold.

// snapHandleV1 is the first byte of a SnapshotHandle. It differs from the
// version bytes of the snapshots that carried the data inline (1 and 2), so
// a message from an older node is refused, not misread.
const snapHandleV1 byte = 0x53 // 'S'

// SnapshotHandle is what a consensus snapshot message carries in place of
// the range's data: who holds the data and which of its held snapshots it
// is. The receiver pulls the data from there in chunks.
type SnapshotHandle struct {
	// Node is the node that holds the snapshot.
	Node uint64
	// RangeID is the range whose data it is.
	RangeID uint64
	// ID names the snapshot among those Node holds (unique within one
	// incarnation of Node; a restarted node does not know the old IDs).
	ID uint64
	// Index is the applied index (Raft) or slot (Paxos) of the data.
	Index uint64
}

func (h SnapshotHandle) Encode() []byte {
	e := codec.Enc{Buf: []byte{snapHandleV1}}
	e.Uint(h.Node)
	e.Uint(h.RangeID)
	e.Uint(h.ID)
	e.Uint(h.Index)
	return e.Buf
}

// DecodeSnapshotHandle decodes a handle made by Encode.
func DecodeSnapshotHandle(b []byte) (SnapshotHandle, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != snapHandleV1 {
		d.Fail("snapshot handle version")
	}
	h := SnapshotHandle{Node: d.Uint(), RangeID: d.Uint(), ID: d.Uint(), Index: d.Uint()}
	return h, d.Done()
}

// chunkWireV1 is the first byte of chunk requests and responses.
const chunkWireV1 byte = 1

// ChunkRequest asks the holder of a snapshot for the next chunk of one
// transfer (a fetch). Seq 0 starts the fetch; each later request asks for
// the chunk after the one answered to Seq-1, or, repeating the last Seq
// (its answer was lost), for that chunk again. The holder keeps where each
// fetch is, so a request cannot ask for an arbitrary part of a range.
type ChunkRequest struct {
	RangeID, SnapshotID uint64
	// FetchID is chosen by the receiver, at random, per transfer.
	FetchID uint64
	Seq     uint64
}

func (r ChunkRequest) Encode() []byte {
	e := codec.Enc{Buf: []byte{chunkWireV1}}
	e.Uint(r.RangeID)
	e.Uint(r.SnapshotID)
	e.Uint(r.FetchID)
	e.Uint(r.Seq)
	return e.Buf
}

func DecodeChunkRequest(b []byte) (ChunkRequest, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != chunkWireV1 {
		d.Fail("chunk request version")
	}
	r := ChunkRequest{RangeID: d.Uint(), SnapshotID: d.Uint(), FetchID: d.Uint(), Seq: d.Uint()}
	return r, d.Done()
}

// ChunkStatus says whether a chunk request was served.
type ChunkStatus byte

const (
	ChunkOK ChunkStatus = iota
	// ChunkGone: the holder no longer holds the snapshot (it expired, or
	// the holder restarted). The receiver gives up this transfer; the
	// range's leader sends a newer snapshot.
	ChunkGone
	// ChunkBusy: the holder serves MaxSnapshotSends transfers already.
	ChunkBusy
	// ChunkRefused: the request does not follow the transfer (a sequence
	// out of order, an unknown fetch) or does not decode.
	ChunkRefused
	chunkStatusEnd
)

func (s ChunkStatus) String() string {
	switch s {
	case ChunkOK:
		return "ok"
	case ChunkGone:
		return "snapshot gone"
	case ChunkBusy:
		return "sender busy"
	case ChunkRefused:
		return "request refused"
	}
	return fmt.Sprintf("ChunkStatus(%d)", byte(s))
}

// ChunkResponse is one chunk of a snapshot's records, or why there is none.
type ChunkResponse struct {
	Status ChunkStatus
	// The request's fields, echoed, so that a late or duplicated answer
	// is told apart from the one awaited.
	RangeID, SnapshotID, FetchID, Seq uint64
	// Done: this chunk is the last one.
	Done bool
	// Records and Bytes count the records and their encoded bytes sent in
	// this transfer so far, this chunk included; the receiver checks them
	// against its own count.
	Records, Bytes uint64
	// Data holds the chunk's records, each a kind byte, a key and a value
	// (length-prefixed), in the order the receiver writes them.
	Data []byte
}

func (r *ChunkResponse) Encode() []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(r.Data)+64)}
	e.Byte(chunkWireV1)
	e.Byte(byte(r.Status))
	e.Uint(r.RangeID)
	e.Uint(r.SnapshotID)
	e.Uint(r.FetchID)
	e.Uint(r.Seq)
	e.Bool(r.Done)
	e.Uint(r.Records)
	e.Uint(r.Bytes)
	e.Bytes(r.Data)
	return e.Buf
}

// DecodeChunkResponse decodes a response made by Encode. Data aliases b.
func DecodeChunkResponse(b []byte) (ChunkResponse, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != chunkWireV1 {
		d.Fail("chunk response version")
	}
	r := ChunkResponse{Status: ChunkStatus(d.Byte())}
	if r.Status >= chunkStatusEnd {
		d.Fail("chunk status")
	}
	r.RangeID, r.SnapshotID, r.FetchID, r.Seq = d.Uint(), d.Uint(), d.Uint(), d.Uint()
	r.Done = d.Bool()
	r.Records, r.Bytes = d.Uint(), d.Uint()
	r.Data = d.Bytes()
	return r, d.Done()
}

// Kinds of snapshot records, in the order a snapshot sends them (a
// receiver refuses a kind lower than the one before): the order of the
// keys they are stored under.
const (
	// recData: a user key and its stored value (storage.DataKey).
	recData byte = 1 + iota
	// recHorizon: no key; the range's dedup horizon (storage.DedupHorizonKey).
	recHorizon
	// recDedup: an idempotency key and the answer kept for it
	// (storage.DedupKey).
	recDedup
	// recExpiry: the expiry index entry of a kept answer: the key is the
	// time (8 bytes, big-endian) and the idempotency key; no value
	// (storage.DedupExpiryKey).
	recExpiry
	// recSplit: no key; the range's split state (storage.SplitStateKey).
	recSplit
	recEnd
)

// snapRecord is one decoded record; key and value alias the chunk.
type snapRecord struct {
	kind       byte
	key, value []byte
}

// appendRecord appends a record to a chunk's data.
func appendRecord(buf []byte, kind byte, key, value []byte) []byte {
	e := codec.Enc{Buf: buf}
	e.Byte(kind)
	e.Bytes(key)
	e.Bytes(value)
	return e.Buf
}

// nextRecord decodes the record at the start of data and returns the rest.
func nextRecord(data []byte) (snapRecord, []byte, error) {
	d := codec.Dec{Buf: data}
	rec := snapRecord{kind: d.Byte()}
	rec.key, rec.value = d.Bytes(), d.Bytes()
	if d.Err == nil && (rec.kind == 0 || rec.kind >= recEnd) {
		d.Fail("snapshot record kind")
	}
	if d.Err != nil {
		return snapRecord{}, nil, d.Err
	}
	return rec, d.Buf, nil
}
