package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/quorumkv/quorumkv/storage"
)

// The sending side of streamed snapshots (snapshot.go): the snapshots this
// node holds open for others to pull, and the transfers it serves from
// them.

// snapSource is a range's replicated state at one applied index, held as a
// Pebble snapshot until nobody has read it for SnapshotHoldTicks.
type snapSource struct {
	handle SnapshotHandle
	snap   *storage.Snapshot
	// lastUsed is the tick of the last read or reuse.
	lastUsed int64
	// readers counts the chunks being read from snap now: it is closed only
	// when none is.
	readers int
	// closing: expired or the store stopped; the last reader closes snap.
	closing bool
	// fetches are the transfers under way from this snapshot, by fetch ID.
	fetches map[uint64]*snapSession
}

// snapSession is one transfer served from a source: where it stands.
type snapSession struct {
	// seq is the sequence number the next request must carry; a request
	// for seq-1 (its answer was lost) is served again.
	seq uint64
	// after is the storage key of the last record sent; nil before the first.
	after []byte
	// records and bytes count what was sent so far.
	records, bytes uint64
	// last holds after, records and bytes as they were before the last
	// chunk, to serve it again.
	last struct {
		after          []byte
		records, bytes uint64
	}
	lastUsed int64
	// busy: a chunk of this session is being read (a duplicated request
	// finds it so and is refused rather than read twice).
	busy bool
}

// snapSources is every snapshot the node holds. Opening, reusing and
// expiring run on the store's goroutine; serve runs on any (the peer
// service's), under mu.
type snapSources struct {
	chunkBytes int
	maxSends   int
	holdTicks  int64
	node       uint64

	mu struct {
		sync.Mutex
		byID map[uint64]*snapSource
		// sessions counts the transfers under way, over every source.
		sessions int
		// now is the store's tick count, for serve's bookkeeping.
		now int64
		// stopped: the store stopped; no snapshot is opened or served.
		stopped bool
	}
}

func newSnapSources(cfg *StoreConfig, node uint64) *snapSources {
	s := &snapSources{chunkBytes: cfg.SnapshotChunkBytes, maxSends: cfg.MaxSnapshotSends, holdTicks: cfg.SnapshotHoldTicks, node: node}
	s.mu.byID = map[uint64]*snapSource{}
	return s
}

// open holds db's present state of range rangeID, which must be its state
// at applied index index (the caller is the store's goroutine between
// rounds, when the applied state, data and dedup state agree), and returns
// its handle.
func (s *snapSources) open(db *storage.DB, id, rangeID, index uint64) (SnapshotHandle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.stopped {
		return SnapshotHandle{}, ErrStopped
	}
	h := SnapshotHandle{Node: s.node, RangeID: rangeID, ID: id, Index: index}
	s.mu.byID[id] = &snapSource{handle: h, snap: db.NewSnapshot(), lastUsed: s.mu.now, fetches: map[uint64]*snapSession{}}
	return h, nil
}

// held reports whether the snapshot of handle h is held here and open.
// Asking is not a use: a snapshot that a core hands out again and again
// but nobody reads still expires.
func (s *snapSources) held(h SnapshotHandle) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.mu.byID[h.ID]
	return h.Node == s.node && src != nil && !src.closing && src.handle == h
}

// tick advances the clock and closes the snapshots and drops the
// transfers that nobody used for holdTicks. Loop only.
func (s *snapSources) tick(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.now = now
	for _, id := range slices.Sorted(maps.Keys(s.mu.byID)) {
		src := s.mu.byID[id]
		for fid, f := range src.fetches {
			if !f.busy && now-f.lastUsed > s.holdTicks {
				delete(src.fetches, fid)
				s.mu.sessions--
			}
		}
		if len(src.fetches) == 0 && now-src.lastUsed > s.holdTicks {
			s.closeLocked(src)
		}
	}
}

// stop closes every snapshot (the ones being read when their chunk is
// done) and refuses everything from then on.
func (s *snapSources) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.stopped = true
	for _, src := range s.mu.byID {
		s.closeLocked(src)
	}
}

func (s *snapSources) closeLocked(src *snapSource) {
	src.closing = true
	s.mu.sessions -= len(src.fetches)
	src.fetches = map[uint64]*snapSession{}
	delete(s.mu.byID, src.handle.ID)
	if src.readers == 0 {
		_ = src.snap.Close() // a read-only snapshot has nothing to lose
	}
}

// count is how many snapshots are held and transfers under way, for tests
// and metrics.
func (s *snapSources) count() (held, sessions int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.byID), s.mu.sessions
}

// serve answers one chunk request. Safe for concurrent use; it reads at
// most about chunkBytes from the held snapshot, and holds no lock while it
// reads.
func (s *snapSources) serve(req ChunkRequest) *ChunkResponse {
	resp := &ChunkResponse{RangeID: req.RangeID, SnapshotID: req.SnapshotID, FetchID: req.FetchID, Seq: req.Seq}
	src, sess, status := s.begin(req)
	if status != ChunkOK {
		resp.Status = status
		return resp
	}
	again := req.Seq+1 == sess.seq // the answer to the last request was lost
	from := sess.after
	if again {
		from = sess.last.after
	}
	data, after, done, err := readChunk(src.snap, src.handle.RangeID, from, s.chunkBytes)
	s.end(src, sess, func() {
		if err != nil {
			resp.Status = ChunkGone
			return
		}
		if again {
			// The snapshot does not change: the same chunk, the same counts.
			resp.Data, resp.Done, resp.Records, resp.Bytes = data, done, sess.records, sess.bytes
			return
		}
		sess.last.after, sess.last.records, sess.last.bytes = sess.after, sess.records, sess.bytes
		sess.seq++
		sess.after = after
		sess.records += uint64(countRecords(data))
		sess.bytes += uint64(len(data))
		resp.Data, resp.Done, resp.Records, resp.Bytes = data, done, sess.records, sess.bytes
		if done {
			delete(src.fetches, req.FetchID)
			s.mu.sessions--
		}
	})
	return resp
}

// begin finds the request's source and session (starting one at Seq 0)
// and marks them in use.
func (s *snapSources) begin(req ChunkRequest) (*snapSource, *snapSession, ChunkStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.mu.byID[req.SnapshotID]
	if s.mu.stopped || src == nil || src.closing || src.handle.RangeID != req.RangeID {
		return nil, nil, ChunkGone
	}
	sess := src.fetches[req.FetchID]
	switch {
	case req.Seq == 0 && sess == nil && s.mu.sessions >= s.maxSends:
		return nil, nil, ChunkBusy
	case req.Seq == 0 && sess == nil:
		sess = &snapSession{}
		src.fetches[req.FetchID] = sess
		s.mu.sessions++
	case sess == nil || sess.busy || req.Seq != sess.seq && req.Seq+1 != sess.seq:
		return nil, nil, ChunkRefused
	}
	sess.busy = true
	sess.lastUsed, src.lastUsed = s.mu.now, s.mu.now
	src.readers++
	return src, sess, ChunkOK
}

// end runs update under the lock and releases what begin took.
func (s *snapSources) end(src *snapSource, sess *snapSession, update func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src.readers--
	sess.busy = false
	if src.closing {
		if src.readers == 0 {
			_ = src.snap.Close()
		}
		return
	}
	update()
}

func countRecords(data []byte) int {
	n := 0
	for len(data) > 0 {
		_, rest, err := nextRecord(data)
		if err != nil {
			break
		}
		data, n = rest, n+1
	}
	return n
}

// readChunk reads the records of range rangeID from snap that follow the
// storage key after (nil: from the first), until about chunkBytes are
// encoded: at least one record, and then no record starts once the chunk
// holds chunkBytes. It returns the records, the storage key of the last
// one, and whether the range holds nothing after it. Records are read in
// storage key order, which is the order of their kinds: data, dedup
// horizon, dedup answers, expiry index. The answers the range has
// forgotten (older than its horizon) are left out, so that replicas in the
// same state send the same records.
func readChunk(snap *storage.Snapshot, rangeID uint64, after []byte, chunkBytes int) (data, last []byte, done bool, err error) {
	horizon, err := loadDedupHorizon(snap, rangeID)
	if err != nil {
		return nil, nil, false, err
	}
	for _, span := range []storage.Span{storage.RangeDataSpan(rangeID), storage.RangeDedupSpan(rangeID)} {
		if after != nil && bytes.Compare(after, span.End) >= 0 {
			continue
		}
		full, l, err := readSpan(snap, rangeID, span, after, horizon, &data, chunkBytes)
		if err != nil {
			return nil, nil, false, err
		}
		if l != nil {
			last = l
		}
		if full {
			if last == nil {
				last = after
			}
			return data, last, false, nil
		}
	}
	if last == nil {
		last = after
	}
	return data, last, true, nil
}

// readSpan appends the records of span after key after to *data until the
// chunk is full (reported), returning the storage key of the last record
// it appended.
func readSpan(snap *storage.Snapshot, rangeID uint64, span storage.Span, after []byte, horizon int64, data *[]byte, chunkBytes int) (full bool, last []byte, err error) {
	it, err := snap.NewIter(span)
	if err != nil {
		return false, nil, err
	}
	defer it.Close()
	ok := it.First()
	if after != nil && span.Contains(after) {
		ok = it.SeekGE(append(bytes.Clone(after), 0))
	}
	for ; ok; ok = it.Next() {
		if len(*data) >= chunkBytes {
			return true, last, it.Error()
		}
		key := it.Key()
		v, err := it.Value()
		if err != nil {
			return false, nil, err
		}
		kind, rkey, keep, err := snapshotRecordOf(rangeID, key, v, horizon)
		if err != nil {
			return false, nil, err
		}
		if !keep {
			continue
		}
		*data = appendRecord(*data, kind, rkey, v)
		last = append(last[:0], key...)
	}
	return false, last, it.Error()
}

// snapshotRecordOf maps a stored key of the range to its record: its kind
// and the key the record carries. keep is false for answers older than
// the horizon.
func snapshotRecordOf(rangeID uint64, key, value []byte, horizon int64) (kind byte, rkey []byte, keep bool, err error) {
	if storage.RangeDataSpan(rangeID).Contains(key) {
		_, k, err := storage.DecodeDataKey(key)
		return recData, k, true, err
	}
	if bytes.Equal(key, storage.DedupHorizonKey(rangeID)) {
		return recHorizon, nil, true, nil
	}
	if bytes.Equal(key, storage.SplitStateKey(rangeID)) {
		return recSplit, nil, true, nil
	}
	if span := storage.RangeDedupEntrySpan(rangeID); span.Contains(key) {
		entry, err := decodeDedupEntry(value)
		if err != nil {
			return 0, nil, false, fmt.Errorf("kv: range %d dedup entry %s: %w", rangeID, storage.FormatKey(key), err)
		}
		return recDedup, key[len(span.Start):], entry.at >= horizon, nil
	}
	t, _, err := storage.DecodeDedupExpiryKey(key)
	if err != nil {
		return 0, nil, false, err
	}
	prefix := len(storage.DedupExpiryKey(rangeID, 0, nil)) - 8
	return recExpiry, key[prefix:], int64(t) >= horizon, nil
}
