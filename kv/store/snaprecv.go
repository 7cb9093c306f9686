package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
)

// The receiving side of streamed snapshots (snapshot.go): one transfer
// (a fetch) writes the chunks it pulls into a staged sstable as they come;
// a finished one is ingested when the core takes the snapshot.

// ErrSnapshotStream: a snapshot transfer was refused for what came over
// the network (a malformed or out-of-order chunk, a record that does not
// decode, a count that does not match). Nothing of it was installed.
var ErrSnapshotStream = errors.New("kv: bad snapshot stream")

// maxSnapshotRecordBytes bounds one record of a snapshot (key and value):
// a chunk holds at most SnapshotChunkBytes and one record more. Values
// are at most 1 MiB by default (catalog.Limits) and meta's catalog values
// are small; 32 MiB leaves room for raised limits while keeping one forged
// record from costing more.
const maxSnapshotRecordBytes = 32 << 20

// snapFetch is one transfer under way: it checks each chunk and writes its
// records to a staged sstable holding, in key order, everything the
// install changes in the database: the install marker's deletion, the
// applied index, and the range's data and dedup state, with range
// deletions of what the replica held there.
type snapFetch struct {
	handle  SnapshotHandle
	fetchID uint64
	// seq is the sequence number of the request awaited.
	seq uint64
	// deadline is the tick by which its answer must arrive; asked is the
	// seq last requested (math.MaxUint64 before the first request), and
	// attempts how many times it was.
	deadline int64
	asked    uint64
	attempts int
	w        *storage.SSTWriter
	// kind and key are the last record's, for the order check.
	kind byte
	key  []byte
	// records and bytes count what was received.
	records, bytes uint64
	horizon        int64
	// maxChunk bounds the data of one chunk, maxBytes the whole transfer.
	maxChunk, maxBytes uint64
	// started is the tick the transfer began, for the log.
	started int64
	// msg is the consensus message that carried the handle: stepped into
	// the core once the data is staged.
	msg consensus.PeerMessage
	// earlyDone is the SnapshotInstallEarly canary: the transfer is taken
	// as done after its first chunk.
	earlyDone bool
}

// stagedSnapshot is a finished transfer, waiting for the core to take its
// snapshot (in the round that steps its message).
type stagedSnapshot struct {
	handle  SnapshotHandle
	file    string
	horizon int64
}

// stagedName names the staged file of a fetch.
func stagedName(rangeID, fetchID uint64) string {
	return fmt.Sprintf("snap-r%d-f%016x.sst", rangeID, fetchID)
}

// newSnapFetch creates the staged file of a fetch of h into range
// rangeID's keys and writes what precedes the records.
func newSnapFetch(db *storage.DB, h SnapshotHandle, fetchID uint64, cfg *StoreConfig) (*snapFetch, error) {
	w, err := db.CreateStaged(stagedName(h.RangeID, fetchID))
	if err != nil {
		return nil, err
	}
	f := &snapFetch{handle: h, fetchID: fetchID, w: w, asked: math.MaxUint64,
		maxChunk: uint64(cfg.SnapshotChunkBytes) + maxSnapshotRecordBytes, maxBytes: uint64(cfg.MaxSnapshotBytes)}
	id := h.RangeID
	err = errors.Join(
		// Keys in order: the marker (0x01), the applied state (0x04), then
		// the records (data 0x06, dedup 0x07); range deletions in order.
		w.Delete(storage.SnapshotInstallKey(id)),
		w.Set(storage.AppliedStateKey(id), consensus.AppliedState(h.Index)),
		w.DeleteRange(storage.RangeDataSpan(id)),
		w.DeleteRange(storage.RangeDedupSpan(id)),
	)
	if err != nil {
		return nil, errors.Join(err, w.Abort())
	}
	return f, nil
}

// request is the next chunk request.
func (f *snapFetch) request() ChunkRequest {
	return ChunkRequest{RangeID: f.handle.RangeID, SnapshotID: f.handle.ID, FetchID: f.fetchID, Seq: f.seq}
}

// awaits reports whether resp answers the request this fetch is waiting
// for; any other answer (late, duplicated, of an older fetch) is ignored.
func (f *snapFetch) awaits(resp *ChunkResponse) bool {
	return resp.FetchID == f.fetchID && resp.Seq == f.seq
}

// accept checks one chunk and writes its records. It reports whether the
// transfer is complete. Any error fails the transfer.
func (f *snapFetch) accept(resp *ChunkResponse) (bool, error) {
	if resp.Status != ChunkOK {
		return false, fmt.Errorf("chunk %d: %s", resp.Seq, resp.Status)
	}
	if resp.RangeID != f.handle.RangeID || resp.SnapshotID != f.handle.ID {
		return false, fmt.Errorf("%w: chunk %d is of range %d snapshot %d, not range %d snapshot %d",
			ErrSnapshotStream, resp.Seq, resp.RangeID, resp.SnapshotID, f.handle.RangeID, f.handle.ID)
	}
	if n := uint64(len(resp.Data)); n > f.maxChunk {
		return false, fmt.Errorf("%w: chunk %d holds %d bytes, more than a chunk may (%d)", ErrSnapshotStream, resp.Seq, n, f.maxChunk)
	}
	if len(resp.Data) == 0 && !resp.Done {
		return false, fmt.Errorf("%w: chunk %d is empty and not the last", ErrSnapshotStream, resp.Seq)
	}
	for data := resp.Data; len(data) > 0; {
		rec, rest, err := nextRecord(data)
		if err != nil {
			return false, fmt.Errorf("%w: chunk %d: %w", ErrSnapshotStream, resp.Seq, err)
		}
		if err := f.write(rec); err != nil {
			return false, fmt.Errorf("%w: chunk %d record %d: %w", ErrSnapshotStream, resp.Seq, f.records, err)
		}
		f.records++
		data = rest
	}
	f.bytes += uint64(len(resp.Data))
	if f.bytes > f.maxBytes {
		return false, fmt.Errorf("%w: the snapshot holds more than %d bytes (MaxSnapshotBytes)", ErrSnapshotStream, f.maxBytes)
	}
	if resp.Records != f.records || resp.Bytes != f.bytes {
		return false, fmt.Errorf("%w: after chunk %d the sender counts %d records in %d bytes, the receiver %d in %d",
			ErrSnapshotStream, resp.Seq, resp.Records, resp.Bytes, f.records, f.bytes)
	}
	f.seq++
	return resp.Done || f.earlyDone, nil
}

// write checks a record and adds it to the staged file under the
// receiver's own keys for the range (never a key taken from the network
// whole, so a record cannot reach another range).
func (f *snapFetch) write(rec snapRecord) error {
	if len(rec.key)+len(rec.value) > maxSnapshotRecordBytes {
		return fmt.Errorf("a record of %d bytes, over %d", len(rec.key)+len(rec.value), maxSnapshotRecordBytes)
	}
	if rec.kind < f.kind || (rec.kind == f.kind && bytes.Compare(rec.key, f.key) <= 0) {
		return fmt.Errorf("record of kind %d key %q out of order after kind %d key %q", rec.kind, command.Abbreviate(rec.key), f.kind, command.Abbreviate(f.key))
	}
	id := f.handle.RangeID
	var key []byte
	switch rec.kind {
	case recData:
		if len(rec.key) == 0 {
			return errors.New("a data record without a key")
		}
		if _, err := command.DecodeValue(rec.value); err != nil {
			return fmt.Errorf("the value of %q: %w", command.Abbreviate(rec.key), err)
		}
		key = storage.DataKey(id, rec.key)
	case recHorizon:
		if f.kind == recHorizon || len(rec.key) != 0 {
			return errors.New("a second dedup horizon, or one with a key")
		}
		d := codec.Dec{Buf: rec.value}
		f.horizon = int64(d.Uint())
		if err := d.Done(); err != nil || f.horizon < 0 {
			return fmt.Errorf("dedup horizon %x: %v", rec.value, err)
		}
		key = storage.DedupHorizonKey(id)
	case recDedup:
		if len(rec.key) == 0 {
			return errors.New("a dedup answer without a key")
		}
		if _, err := decodeDedupEntry(rec.value); err != nil {
			return fmt.Errorf("dedup answer %q: %w", command.Abbreviate(rec.key), err)
		}
		key = storage.DedupKey(id, rec.key)
	case recSplit:
		if f.kind == recSplit || len(rec.key) != 0 {
			return errors.New("a second split state, or one with a key")
		}
		if _, err := decodeSplitState(rec.value); err != nil {
			return fmt.Errorf("split state %x: %w", rec.value, err)
		}
		key = storage.SplitStateKey(id)
	case recExpiry:
		if len(rec.key) <= 8 || len(rec.value) != 0 {
			return fmt.Errorf("expiry index entry %x = %x", rec.key, rec.value)
		}
		key = storage.DedupExpiryKey(id, binary.BigEndian.Uint64(rec.key), rec.key[8:])
	}
	f.kind, f.key = rec.kind, append(f.key[:0], rec.key...)
	return f.w.Set(key, rec.value)
}

// finish syncs the staged file: from now on it survives a crash.
func (f *snapFetch) finish() (*stagedSnapshot, error) {
	if err := f.w.Finish(); err != nil {
		return nil, errors.Join(err, f.w.Abort())
	}
	return &stagedSnapshot{handle: f.handle, file: f.w.Name(), horizon: f.horizon}, nil
}

// abort drops the transfer and its staged file.
func (f *snapFetch) abort() error { return f.w.Abort() }

// Install markers. The value of storage.SnapshotInstallKey: the staged
// file whose ingest finishes the install, and the index it installs.
const installMarkerV1 byte = 1

func encodeInstallMarker(file string, index uint64) []byte {
	e := codec.Enc{Buf: []byte{installMarkerV1}}
	e.String(file)
	e.Uint(index)
	return e.Buf
}

func decodeInstallMarker(b []byte) (string, uint64, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != installMarkerV1 {
		d.Fail("install marker version")
	}
	file, index := d.String(), d.Uint()
	return file, index, d.Done()
}
