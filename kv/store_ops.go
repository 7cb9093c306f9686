package kv

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/quorumkv/quorumkv/storage"
)

// ErrNoReplicaHere: the range has no replica on this node; the request
// must go to a node that has one. It is an ErrUnavailable.
var ErrNoReplicaHere = fmt.Errorf("%w: no replica on this node", ErrUnavailable)

// requestID returns a cluster-unique ID for a proposal or read made here.
// Loop only.
func (s *Store) requestID() uint64 {
	s.nextRequest++
	return s.nodeID<<40 | s.nextRequest&(1<<40-1)
}

// propose proposes cmd to the range's consensus group and waits until it is
// applied. Errors:
//   - NotLeaderError, ErrUnavailable: nothing was proposed; retry is safe.
//   - the context's error: the command may or may not be applied later.
func (s *Store) propose(ctx context.Context, rangeID uint64, cmd *command) (result, error) {
	done := make(chan result, 1) // startPropose calls back at most once
	var id uint64
	var err error
	if derr := s.do(ctx, func() {
		id, err = s.startPropose(rangeID, cmd, func(res result) { done <- res })
	}); derr != nil {
		return result{}, derr
	}
	if err != nil {
		return result{}, err
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		// The command is in the log and may still commit; stop waiting.
		_ = s.do(context.Background(), func() { s.forgetProposal(rangeID, id) })
		return result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// startPropose proposes cmd to the range's consensus group, setting its
// id, which it returns. done is called once, from a later round of the
// loop, with the command's result when it is applied (or with
// ErrOutcomeUnknown if the replica goes away first), unless
// forgetProposal is called before. An error means nothing was proposed
// and done will not be called: NotLeaderError, ErrUnavailable (with
// ErrNoReplicaHere). Loop only.
func (s *Store) startPropose(rangeID uint64, cmd *command, done func(result)) (uint64, error) {
	r, err := s.leaderReplica(rangeID)
	if err != nil {
		return 0, err
	}
	s.touch(r)
	cmd.id = s.requestID()
	if err := r.core.propose(cmd.encode()); err != nil {
		return 0, fmt.Errorf("%w: range %d refused the proposal: %v", ErrUnavailable, rangeID, err)
	}
	r.waiters[cmd.id] = done
	s.cfg.Metrics.Proposals.WithLabelValues(r.core.protocol()).Inc()
	return cmd.id, nil
}

// forgetProposal stops waiting for proposal id: its client gave up. The
// command may still be applied. Loop only.
func (s *Store) forgetProposal(rangeID, id uint64) {
	if r, ok := s.replicas[rangeID]; ok {
		delete(r.waiters, id)
	}
}

// leaderReplica returns the range's replica if it is the leader here.
func (s *Store) leaderReplica(rangeID uint64) (*replica, error) {
	r, ok := s.replicas[rangeID]
	switch {
	case !ok && s.failed[rangeID] != nil:
		return nil, s.failed[rangeID].refusal()
	case !ok:
		return nil, fmt.Errorf("%w: range %d", ErrNoReplicaHere, rangeID)
	case r.role != roleLeader:
		return nil, &NotLeaderError{RangeID: rangeID, Leader: r.leader}
	}
	return r, nil
}

// readBarrier returns once this replica may serve a linearizable read:
// its leadership is confirmed by a phase-2 quorum after the read began
// (ReadIndex) and it has applied up to the commit index of that moment.
func (s *Store) readBarrier(ctx context.Context, rangeID uint64) error {
	done := make(chan error, 1) // startRead calls back at most once
	var err error
	if derr := s.do(ctx, func() {
		err = s.startRead(rangeID, func(err error) { done <- err })
	}); derr != nil {
		return derr
	}
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appliedIndex returns the index this node's replica of range rangeID
// has applied.
func (s *Store) appliedIndex(ctx context.Context, rangeID uint64) (uint64, error) {
	var applied uint64
	found := false
	if err := s.do(ctx, func() {
		if r := s.replicas[rangeID]; r != nil {
			applied, found = r.applied, true
		}
	}); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%w: range %d", ErrNoReplicaHere, rangeID)
	}
	return applied, nil
}

// startRead starts a linearizable read of the range (see readBarrier).
// done is called once, from a later round of the loop: with nil when the
// replica's applied data may be read, or with why not (NotLeaderError when
// leadership moved before the read was confirmed). An error means done
// will not be called. Loop only.
func (s *Store) startRead(rangeID uint64, done func(error)) error {
	r, err := s.leaderReplica(rangeID)
	if err != nil {
		return err
	}
	s.touch(r)
	id := s.requestID()
	var rctx [8]byte
	binary.BigEndian.PutUint64(rctx[:], id)
	if err := r.core.readIndex(rctx[:]); err != nil {
		return fmt.Errorf("%w: range %d cannot confirm a read now: %v", ErrUnavailable, rangeID, err)
	}
	r.reads[id] = done
	return nil
}

// applyCatalog applies a catalog command in meta, writing the catalog's
// keys as meta's data (so they read back like any range's data).
func (s *Store) applyCatalog(b *storage.Batch, index uint64, cmd *command, pending map[string]*value) (result, error) {
	var op catalogOp
	if err := json.Unmarshal(cmd.value, &op); err != nil {
		return result{}, fmt.Errorf("%w: catalog command at %d: %v", ErrCorrupt, index, err)
	}
	// Eventual ranges run no consensus group, so reconcile does not see
	// them go: note the ones held here before the drop removes them.
	var dropped []uint64
	if op.Drop != "" {
		for _, r := range s.cat.keyspaceRanges(op.Drop) {
			if r.Mode == ModeEventual && r.HasReplica(s.nodeID) {
				dropped = append(dropped, r.ID)
			}
		}
	}
	writes, id, err := s.cat.apply(&op)
	if err != nil {
		return result{version: index, err: err}, nil // refused the same way everywhere
	}
	s.droppedEventual = append(s.droppedEventual, dropped...)
	for _, w := range writes {
		key := storage.DataKey(MetaRangeID, w.key)
		if w.value == nil {
			pending[string(key)] = nil
			if err := b.Delete(key); err != nil {
				return result{}, err
			}
			continue
		}
		v := &value{version: index, data: w.value}
		pending[string(key)] = v
		if err := b.Set(key, v.encode()); err != nil {
			return result{}, err
		}
	}
	s.catalogChanged = true
	return result{version: index, id: id}, nil
}

// rangeData encodes the range's applied data for a snapshot: a
// consistent Pebble snapshot read of the data span. Called on the store's
// goroutine between rounds, it sees the data at the replica's applied
// index (applied state and data are written in one batch).
func (s *Store) rangeData(rangeID uint64) ([]byte, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(storage.RangeDataSpan(rangeID))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	e := enc{b: []byte{codecV1}}
	for ok := it.First(); ok; ok = it.Next() {
		_, key, err := storage.DecodeDataKey(it.Key())
		if err != nil {
			return nil, err
		}
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		e.bytes(key)
		e.bytes(v)
		if len(e.b) > s.cfg.MaxSnapshotBytes {
			return nil, fmt.Errorf("kv: range %d holds more than %d bytes, the snapshot limit (MaxSnapshotBytes); streaming snapshots are not built yet",
				rangeID, s.cfg.MaxSnapshotBytes)
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return e.b, nil
}

// eachSnapshotPair calls fn with each key and stored value of snapshot
// data in the encoding of rangeData, and fails on data that does not
// decode.
func eachSnapshotPair(data []byte, fn func(key, v []byte) error) error {
	d := dec{b: data}
	if d.byte() != codecV1 {
		d.fail("snapshot version")
	}
	for len(d.b) > 0 && d.err == nil {
		key, v := d.bytes(), d.bytes()
		if d.err != nil {
			break
		}
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return d.done()
}

// installSnapshot replaces the replica's data with a snapshot's; the core
// replaces its log in the same batch. Data that does not decode is a
// fault of the range (faultInstall), found before anything is written to
// b: the core took the snapshot already, so the replica cannot go on, but
// the round's batch holds none of its writes (Store.handleReady).
func (s *Store) installSnapshot(b *storage.Batch, r *replica, snap *rangeSnapshot) error {
	if err := eachSnapshotPair(snap.data, func(_, _ []byte) error { return nil }); err != nil {
		return newRangeFault(faultInstall, fmt.Errorf("kv: range %d snapshot at %d: %w", r.desc.ID, snap.index, err))
	}
	data := storage.RangeDataSpan(r.desc.ID)
	if err := b.DeleteRange(data.Start, data.End); err != nil {
		return err
	}
	err := eachSnapshotPair(snap.data, func(key, v []byte) error {
		return b.Set(storage.DataKey(r.desc.ID, key), v)
	})
	if err != nil {
		return err
	}
	r.applied = snap.index
	if r.desc.ID == MetaRangeID {
		s.catalogReload = true // from the data, once this batch commits
	}
	return b.Set(storage.AppliedStateKey(r.desc.ID), appliedState(r.applied))
}
