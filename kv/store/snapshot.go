package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/storage"
)

// Streamed range snapshots.
//
// A replica too far behind for the log to catch it up gets a snapshot of
// the range: its replicated state (data and dedup state) at an applied
// index. The state can be far larger than memory, so it never travels as
// one message, and neither side ever holds it whole (CockroachDB streams
// its Raft snapshots the same way):
//
//  1. The sender's core asks for a snapshot (RaftCore.snapshot for a
//     follower, PaxosCore.compactTo when it compacts its log). On the
//     store's goroutine, where the applied state and the data agree,
//     Host.OpenSnapshot holds the range's state as a Pebble snapshot
//     (snapSources.open) and returns a SnapshotHandle: node, range,
//     snapshot ID, index. The consensus message carries the handle as the
//     snapshot's data; index, term and configuration travel as before.
//  2. The receiving store takes any message with a snapshot ahead of its
//     replica's commit index out of the way before its core sees it
//     (interceptSnapshot): the core must not take a snapshot whose data is
//     not here yet. It starts a transfer (snapFetch) and pulls the data
//     from the handle's node one chunk at a time (SnapshotFetcher, the
//     peer RPC SnapshotChunk): each request names the transfer and a
//     sequence number, the sender reads about SnapshotChunkBytes after
//     where the transfer stands (snapSources.serve), and the receiver
//     checks every record and writes it to a staged sstable (snaprecv.go).
//     One chunk is in flight per transfer: memory is a chunk and the
//     sstable writer's blocks on each side, whatever the range's size.
//  3. When the last chunk is written and the file synced, the store steps
//     the message into the core, which takes the snapshot in the same
//     round. The round's batch holds the core's new log state (snapshot
//     point, hard state) and an install marker naming the staged file; it
//     is committed with a sync. Then the file is ingested
//     (storage.DB.IngestStaged): in one atomic step it clears the range's
//     data and dedup spans, writes the snapshot's records and applied
//     index, and deletes the marker.
//
// Why ingest, and why a marker. The alternative, staging the records under
// a key prefix of their own and then moving them, writes the range twice
// and needs the move to be atomic, which a batch of the range's size is
// not (it is in memory). An ingested sstable costs one write and is atomic
// by itself. But the core's log state goes through the round's batch,
// shared with every other range, and a batch and an ingest are two steps.
// The marker joins them:
//
//   - crash before the batch: the replica is as it was; the staged file is
//     deleted at start (recoverInstalls) and the leader sends a snapshot
//     again;
//   - crash after the batch, before the ingest: the log says the snapshot
//     is taken but the data is the old one; the marker says so, and start
//     ingests the file it names before any replica opens;
//   - crash after the ingest: the marker is gone with it; the replica holds
//     the whole snapshot.
//
// No order of crashes leaves a replica with part of a snapshot, or with
// the snapshot's data under the old log state.
//
// Every byte of a transfer comes from the network: chunk sizes, sequence
// numbers, range and snapshot IDs, record kinds and order, every value and
// the running totals are checked (snapFetch.accept); a transfer that fails
// a check, times out, or finds the snapshot gone is dropped with its file
// and a log line, and the range may start another after
// SnapshotRetryTicks. Nothing of it reaches the replica.
//
// The sender holds a snapshot until nobody has read it for
// SnapshotHoldTicks (an open Pebble snapshot keeps the versions it sees
// from being compacted away) and serves at most MaxSnapshotSends transfers
// at once; the receiver runs at most MaxSnapshotFetches.

// SnapshotFetcher carries the chunk requests of snapshot transfers.
type SnapshotFetcher interface {
	// FetchSnapshotChunk sends req, an encoded ChunkRequest, to node to's
	// Store.ServeSnapshotChunk, and calls done once with the encoded
	// ChunkResponse or why there is none. It must not block; done may be
	// called from any goroutine, and must be called within a bounded time
	// (the store gives up on a chunk after SnapshotFetchTimeoutTicks
	// anyway).
	FetchSnapshotChunk(to uint64, req []byte, done func(resp []byte, err error))
}

// chunkResult is the answer to one chunk request, on its way to the loop.
type chunkResult struct {
	rangeID, fetchID, seq uint64
	resp                  []byte
	err                   error
}

// pendingInstall is a snapshot whose consensus state is in this round's
// batch and whose data is ingested once the batch is committed.
type pendingInstall struct {
	r      *replica
	staged *stagedSnapshot
}

// snapState is the store's part in snapshot transfers. Loop only, but for
// sources (safe for concurrent use) and chunkIn.
type snapState struct {
	sources *snapSources
	// fetches are the transfers under way here, by range.
	fetches map[uint64]*snapFetch
	// staged are finished transfers whose message is being stepped, by
	// range: the round that steps the message takes or drops them.
	staged map[uint64]*stagedSnapshot
	// retryAt is the tick before which a range whose transfer failed
	// starts no other.
	retryAt map[uint64]int64
	// chunkIn carries answers to the loop. Each transfer has at most one
	// request out, so it holds a few rounds' worth; an answer that finds
	// it full is dropped, and its transfer times out and is retried.
	chunkIn  chan chunkResult
	installs []pendingInstall
}

func (s *Store) initSnapshots() {
	s.snap = snapState{
		sources: newSnapSources(&s.Config, s.nodeID),
		fetches: map[uint64]*snapFetch{}, staged: map[uint64]*stagedSnapshot{}, retryAt: map[uint64]int64{},
		chunkIn: make(chan chunkResult, 2*s.Config.MaxSnapshotFetches),
	}
}

// openSnapshot is Host.OpenSnapshot.
func (s *Store) openSnapshot(rangeID, applied uint64) ([]byte, error) {
	h, err := s.snap.sources.open(s.DB, s.rng.Uint64(), rangeID, applied)
	if err != nil {
		return nil, err
	}
	return h.Encode(), nil
}

// snapshotHeld is Host.SnapshotHeld.
func (s *Store) snapshotHeld(data []byte) bool {
	h, err := DecodeSnapshotHandle(data)
	return err == nil && s.snap.sources.held(h)
}

// ServeSnapshotChunk answers a chunk request of another node's transfer,
// encoded both ways (ChunkRequest, ChunkResponse). Safe for concurrent
// use; it reads at most about SnapshotChunkBytes. A request that does not
// decode is refused.
func (s *Store) ServeSnapshotChunk(req []byte) []byte {
	r, err := DecodeChunkRequest(req)
	if err != nil {
		return (&ChunkResponse{Status: ChunkRefused}).Encode()
	}
	return s.snap.sources.serve(r).Encode()
}

// HeldSnapshots returns how many snapshots this node holds open and how
// many transfers it serves now.
func (s *Store) HeldSnapshots() (held, sending int) { return s.snap.sources.count() }

// RangeDigest is a SHA-256 of the records a snapshot of the range would
// carry now: replicas that applied the same prefix have the same digest.
// It reads the range a chunk at a time.
func (s *Store) RangeDigest(rangeID uint64) ([]byte, error) {
	snap := s.DB.NewSnapshot()
	defer snap.Close()
	h := sha256.New()
	var after []byte
	for {
		data, last, done, err := readChunk(snap, rangeID, after, s.Config.SnapshotChunkBytes)
		if err != nil {
			return nil, err
		}
		h.Write(data)
		if done {
			return h.Sum(nil), nil
		}
		after = last
	}
}

// interceptSnapshot takes a message that carries a snapshot the replica
// may install out of the core's way until its data is here, reporting
// whether it did (then the message is held or dropped). A snapshot at or
// below the replica's commit index is not installed by either protocol,
// so its message goes through as it is, unless the replica joins a paxos
// range empty: it installs any snapshot, even one at slot 0.
func (s *Store) interceptSnapshot(r *replica, msg consensus.PeerMessage) bool {
	index, data, ok := msg.Snapshot()
	if st := r.Core.Status(); !ok || (index <= st.Commit && !st.Joining) {
		return false
	}
	id := r.desc.ID
	h, err := DecodeSnapshotHandle(data)
	switch {
	case err != nil || h.RangeID != id || h.Index != index || h.Node == s.nodeID:
		s.Logger.Warn("dropped a snapshot message whose handle is not a valid one for the range",
			"range", id, "from", msg.From(), "index", index, "handle", h, "err", err)
		return true
	case s.snap.staged[id] != nil && s.snap.staged[id].handle == h:
		return false // its data is here: the core may take it
	case s.snap.fetches[id] != nil:
		return true // one transfer per range; the sender sends again
	case s.Quiesce.ticks < s.snap.retryAt[id] || len(s.snap.fetches) >= s.Config.MaxSnapshotFetches || s.transport == nil:
		return true
	}
	f, err := newSnapFetch(s.DB, h, s.rng.Uint64(), &s.Config)
	if err != nil {
		s.Logger.Warn("cannot stage a snapshot transfer; the range retries later", "range", id, "err", err)
		s.snap.retryAt[id] = s.Quiesce.ticks + s.Config.SnapshotRetryTicks
		return true
	}
	f.msg, f.started = msg, s.Quiesce.ticks
	f.earlyDone = s.Config.Canary.SnapshotInstallEarly
	s.snap.fetches[id] = f
	s.Logger.Info("pulling a snapshot of the range", "range", id, "from", h.Node, "index", index)
	s.requestChunk(f)
	return true
}

// chunkAttempts is how many times a chunk is asked for before its
// transfer fails: a lost request or answer costs one chunk timeout, not
// the transfer.
const chunkAttempts = 3

// requestChunk sends f's chunk request (again, if it was sent already
// and not answered in time).
func (s *Store) requestChunk(f *snapFetch) {
	if f.asked == f.seq {
		f.attempts++
	} else {
		f.asked, f.attempts = f.seq, 1
	}
	f.deadline = s.Quiesce.ticks + s.Config.SnapshotFetchTimeoutTicks
	rangeID, fetchID, seq := f.handle.RangeID, f.fetchID, f.seq
	in := s.snap.chunkIn
	s.transport.FetchSnapshotChunk(f.handle.Node, f.request().Encode(), func(resp []byte, err error) {
		select {
		case in <- chunkResult{rangeID: rangeID, fetchID: fetchID, seq: seq, resp: resp, err: err}:
		default:
		}
	})
}

// takeChunks handles the chunk answers that arrived. Loop only.
func (s *Store) takeChunks() {
	for {
		select {
		case res := <-s.snap.chunkIn:
			s.onChunk(res)
		default:
			return
		}
	}
}

// onChunk handles one chunk answer: it writes the chunk, then asks for the
// next one or, after the last, steps the held message into the core.
func (s *Store) onChunk(res chunkResult) {
	f := s.snap.fetches[res.rangeID]
	if f == nil || f.fetchID != res.fetchID || f.seq != res.seq {
		return // an answer to a request given up on
	}
	if res.err != nil {
		s.failFetch(f, res.err)
		return
	}
	resp, err := DecodeChunkResponse(res.resp)
	if err != nil {
		s.failFetch(f, fmt.Errorf("%w: %w", ErrSnapshotStream, err))
		return
	}
	if !f.awaits(&resp) {
		s.failFetch(f, fmt.Errorf("%w: an answer for transfer %x chunk %d came for transfer %x chunk %d", ErrSnapshotStream, resp.FetchID, resp.Seq, f.fetchID, f.seq))
		return
	}
	done, err := f.accept(&resp)
	if err != nil {
		s.failFetch(f, err)
		return
	}
	s.snapshotStep("chunk")
	if !done {
		s.requestChunk(f)
		return
	}
	st, err := f.finish()
	delete(s.snap.fetches, res.rangeID)
	if err != nil {
		s.failFetch(f, err)
		return
	}
	s.snapshotStep("staged")
	r := s.Replicas[res.rangeID]
	if r == nil {
		_ = s.DB.RemoveStaged(st.file) // the replica is gone; start removes what this leaves
		return
	}
	secs := float64(s.Quiesce.ticks-f.started+1) * s.Config.TickInterval.Seconds()
	s.Logger.Info("received a snapshot of the range", "range", res.rangeID, "from", f.handle.Node, "index", f.handle.Index,
		"records", f.records, "bytes", f.bytes, "chunks", f.seq, "mib_per_s", fmt.Sprintf("%.1f", float64(f.bytes)/(1<<20)/secs))
	s.Config.Metrics.SnapshotTransfers.WithLabelValues("received").Inc()
	s.Config.Metrics.SnapshotBytes.Add(float64(f.bytes))
	s.snap.staged[res.rangeID] = st
	s.stepReplica(r, f.msg)
}

// failFetch drops a transfer and its file; the range may start another
// after SnapshotRetryTicks.
func (s *Store) failFetch(f *snapFetch, err error) {
	id := f.handle.RangeID
	delete(s.snap.fetches, id)
	s.snap.retryAt[id] = s.Quiesce.ticks + s.Config.SnapshotRetryTicks
	s.Config.Metrics.SnapshotTransfers.WithLabelValues("failed").Inc()
	if aerr := f.abort(); aerr != nil {
		err = errors.Join(err, aerr)
	}
	s.Logger.Warn("a snapshot transfer failed; nothing of it was installed, the range retries later",
		"range", id, "from", f.handle.Node, "index", f.handle.Index, "chunk", f.seq, "err", err)
}

// tickSnapshots expires held snapshots and transfers that stopped
// answering. Loop only.
func (s *Store) tickSnapshots() {
	s.snap.sources.tick(s.Quiesce.ticks)
	for _, id := range slices.Sorted(maps.Keys(s.snap.fetches)) {
		f := s.snap.fetches[id]
		switch {
		case s.Quiesce.ticks <= f.deadline:
		case f.attempts < chunkAttempts:
			// The request or its answer was lost: ask for the same chunk
			// again (the sender serves its last chunk again).
			s.requestChunk(f)
		default:
			s.failFetch(f, fmt.Errorf("chunk %d not answered in %d attempts of %d ticks", f.seq, chunkAttempts, s.Config.SnapshotFetchTimeoutTicks))
		}
	}
}

// stageInstall begins the install of the snapshot a core took (persist):
// its data must be the finished transfer of the handle it carries. It
// adds the install marker to b; the core's own writes follow it, and the
// data is ingested once b is committed (ingestInstalls). A snapshot whose
// data is not here is a fault of the range, found before anything is
// written to b.
func (s *Store) stageInstall(b *storage.Batch, r *replica, snap *consensus.RangeSnapshot) error {
	id := r.desc.ID
	st := s.snap.staged[id]
	h, err := DecodeSnapshotHandle(snap.Data)
	if err == nil && (st == nil || st.handle != h) {
		err = errors.New("its data was not received")
	}
	if err != nil {
		return consensus.NewRangeFault(consensus.FaultInstall, fmt.Errorf("kv: range %d snapshot at %d: %w", id, snap.Index, err))
	}
	delete(s.snap.staged, id)
	// The snapshot is past the split the range's apply waits at, if any,
	// and holds it (splitjob.go).
	s.cancelSplit(r, "a snapshot replaces the range's state")
	s.snap.installs = append(s.snap.installs, pendingInstall{r: r, staged: st})
	return b.Set(storage.SnapshotInstallKey(id), encodeInstallMarker(st.file, h.Index))
}

// ingestInstalls finishes the installs of the round, whose consensus state
// and markers are committed: each ingest replaces a range's data, dedup
// state and applied index, and deletes its marker, in one step. An ingest
// that fails is the node's error: the marker makes the next start retry it.
func (s *Store) ingestInstalls() error {
	installs := s.snap.installs
	s.snap.installs = nil
	for _, in := range installs {
		id := in.r.desc.ID
		s.snapshotStep("before-ingest")
		if err := s.DB.IngestStaged(context.Background(), in.staged.file); err != nil {
			return fmt.Errorf("kv: range %d: install the snapshot at %d: %w", id, in.staged.handle.Index, err)
		}
		s.snapshotStep("after-ingest")
		if err := s.DB.RemoveStaged(in.staged.file); err != nil {
			s.Logger.Warn("cannot remove an ingested snapshot file; the next start does", "range", id, "err", err)
		}
		in.r.Applied = in.staged.handle.Index
		in.r.dedup = dedupState{horizon: in.staged.horizon, collected: in.staged.horizon}
		split, err := loadSplitState(s.DB, id)
		if err != nil {
			return fmt.Errorf("kv: range %d: the split state of the snapshot at %d: %w", id, in.staged.handle.Index, err)
		}
		if split.span != in.r.split.span || split.known != in.r.split.known {
			// The snapshot may be past merges this replica did not apply:
			// reconcile removes the replicas of the ranges they took, which
			// it keeps until a replica here holds their span
			// (mergedaway.go), even if the catalog does not change again.
			s.catalogChanged = true
		}
		in.r.split, in.r.splitDirty = split, true
		in.r.forgetSizes()
		if id == catalog.MetaRangeID {
			s.catalogReload = true // from the data, once this round is done
		}
		s.Logger.Info("installed a snapshot of the range", "range", id, "index", in.staged.handle.Index)
	}
	return nil
}

// snapshotStep calls StoreConfig.SnapshotHook, the tests' crash point.
func (s *Store) snapshotStep(step string) {
	if s.Config.SnapshotHook != nil {
		s.Config.SnapshotHook(step)
	}
}

// dropStaged removes the finished transfers whose snapshot the core did
// not take in the round that stepped their message (it had moved on).
func (s *Store) dropStaged() {
	for _, id := range slices.Sorted(maps.Keys(s.snap.staged)) {
		st := s.snap.staged[id]
		delete(s.snap.staged, id)
		// Said aloud: a sender that keeps sending snapshots this replica
		// will not take costs a whole range each time.
		s.Logger.Warn("the range did not take a snapshot it pulled (it is at or behind this replica, from an old leader, or its configuration leaves this replica out); the leader sends another",
			"range", id, "from", st.handle.Node, "index", st.handle.Index)
		if err := s.DB.RemoveStaged(st.file); err != nil {
			s.Logger.Warn("cannot remove an unused snapshot file; the next start does", "range", id, "err", err)
		}
	}
}

// Abandon releases what a driven store holds besides its database, held
// snapshots and the files of transfers under way, when its node crashes
// (the simulator's crash): nothing is persisted, and a new store opens
// the crashed database. Loop only.
func (s *Store) Abandon() {
	s.stopSnapshots()
	s.stopSplits()
}

// stopSnapshots closes every held snapshot and drops the transfers under
// way (at shutdown).
func (s *Store) stopSnapshots() {
	s.snap.sources.stop()
	for _, id := range slices.Sorted(maps.Keys(s.snap.fetches)) {
		_ = s.snap.fetches[id].abort() // start removes what this leaves
		delete(s.snap.fetches, id)
	}
	s.dropStaged()
}

// recoverInstalls finishes the snapshot installs a crash interrupted
// between their batch and their ingest, then removes every other staged
// file (transfers that were under way, or ingested and not yet removed).
// It runs at start, before any replica opens.
func (s *Store) recoverInstalls() error {
	type marker struct {
		rangeID, index uint64
		file           string
	}
	var markers []marker
	it, err := s.DB.NewIter(storage.SnapshotInstallSpan())
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		id, err := storage.DecodeSnapshotInstallKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		v, err := it.Value()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		file, index, err := decodeInstallMarker(v)
		if err != nil {
			return errors.Join(fmt.Errorf("kv: range %d: snapshot install marker: %w", id, err), it.Close())
		}
		markers = append(markers, marker{id, index, file})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	staged, err := s.DB.StagedFiles()
	if err != nil {
		return err
	}
	for _, m := range markers {
		if !slices.Contains(staged, m.file) {
			return fmt.Errorf("kv: range %d: a restart must finish the install of its snapshot at %d, but its file %s is gone", m.rangeID, m.index, m.file)
		}
		if err := s.DB.IngestStaged(context.Background(), m.file); err != nil {
			return fmt.Errorf("kv: range %d: finish the install of its snapshot at %d: %w", m.rangeID, m.index, err)
		}
		s.Logger.Info("finished a snapshot install that a restart interrupted", "range", m.rangeID, "index", m.index)
	}
	for _, f := range staged {
		if err := s.DB.RemoveStaged(f); err != nil {
			return err
		}
	}
	return nil
}
