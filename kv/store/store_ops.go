package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
)

// ErrNoReplicaHere: the range has no replica on this node; the request
// must go to a node that has one. It is an ErrUnavailable.
var ErrNoReplicaHere = fmt.Errorf("%w: no replica on this node", ErrUnavailable)

// requestID returns an ID for a proposal or read made here: the
// incarnation's random epoch plus a counter, so that IDs do not repeat
// across restarts (a plain counter did, and an old entry that committed
// after a restart answered a new request). A waiter is matched by its
// entry's bytes as well (replica.apply), so an ID that did repeat could
// not mislead a client either. Loop only.
func (s *Store) requestID() uint64 {
	s.NextRequest++
	if s.Config.Canary.WaitersByID {
		return s.nodeID<<40 | s.NextRequest&(1<<40-1)
	}
	return s.requestEpoch + s.NextRequest
}

// Propose proposes cmd to the range's consensus group and waits until it is
// applied. Errors:
//   - NotLeaderError, ErrUnavailable: nothing was proposed; retry is safe.
//   - the context's error: the command may or may not be applied later.
func (s *Store) Propose(ctx context.Context, rangeID uint64, cmd *command.Command) (command.Result, error) {
	done := make(chan command.Result, 1) // Store.StartPropose calls back at most once
	var id uint64
	var err error
	if derr := s.Do(ctx, func() {
		id, err = s.StartPropose(rangeID, cmd, func(res command.Result) { done <- res })
	}); derr != nil {
		return command.Result{}, derr
	}
	if err != nil {
		return command.Result{}, err
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		// The command is in the log and may still commit; stop waiting.
		_ = s.Do(context.Background(), func() { s.ForgetProposal(rangeID, id) })
		return command.Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// StartPropose proposes cmd to the range's consensus group, setting its
// id, which it returns. done is called once, from a later round of the
// loop, with the command's result when it is applied (or with
// ErrOutcomeUnknown if the replica goes away first), unless
// forgetProposal is called before. An error means nothing was proposed
// and done will not be called: NotLeaderError, ErrUnavailable (with
// ErrNoReplicaHere). Loop only.
func (s *Store) StartPropose(rangeID uint64, cmd *command.Command, done func(command.Result)) (uint64, error) {
	r, err := s.leaderReplica(rangeID)
	if err != nil {
		return 0, err
	}
	if cmd.Op == command.OpPut || cmd.Op == command.OpDelete || cmd.Op == command.OpCAS {
		if err := r.keyMoved(s, cmd.Key); err != nil {
			return 0, err // the apply would refuse it too
		}
	}
	s.touch(r)
	if s.Config.Canary.CasAtPropose && cmd.Op == command.OpCAS {
		s.decideAtPropose(r, cmd)
	}
	cmd.ID = s.requestID()
	s.stampDedup(cmd)
	data := cmd.Encode()
	if err := r.Core.Propose(data); err != nil {
		return 0, r.refused("the proposal", err)
	}
	r.waiters[cmd.ID] = waiter{data: data, done: done}
	s.Config.Metrics.Proposals.WithLabelValues(r.Core.Protocol()).Inc()
	return cmd.ID, nil
}

// decideAtPropose is the casAtPropose canary: it decides cmd against the
// leader's applied data now, turning a swap whose condition holds into a
// plain write.
func (s *Store) decideAtPropose(r *replica, cmd *command.Command) {
	var cur *command.Value
	if raw, err := s.DB.Get(storage.DataKey(r.desc.ID, cmd.Key)); err == nil {
		if v, err := command.DecodeValue(raw); err == nil {
			cur = &v
		}
	}
	if _, res := cmd.Apply(r.desc.ID, 0, cur); res.Err == nil {
		cmd.Op = command.OpPut
		if cmd.Del {
			cmd.Op = command.OpDelete
		}
	}
}

// ForgetProposal stops waiting for proposal id: its client gave up. The
// command may still be applied. Loop only.
func (s *Store) ForgetProposal(rangeID, id uint64) {
	if r, ok := s.Replicas[rangeID]; ok {
		delete(r.waiters, id)
	}
}

// leaderReplica returns the range's replica if it is the leader here.
func (s *Store) leaderReplica(rangeID uint64) (*replica, error) {
	r, ok := s.Replicas[rangeID]
	switch {
	case !ok && s.Failed[rangeID] != nil:
		return nil, s.Failed[rangeID].refusal()
	case !ok && s.mergedAway(rangeID) != nil:
		return nil, s.mergedAway(rangeID)
	case !ok:
		return nil, fmt.Errorf("%w: range %d", ErrNoReplicaHere, rangeID)
	case r.Role != consensus.RoleLeader:
		return nil, &NotLeaderError{RangeID: rangeID, Leader: r.Leader}
	}
	return r, nil
}

// refused is the error for a request (what) that the replica's core
// refused with err. The replica's Role is what the core said in its last
// Ready: a message stepped since (a higher term or ballot, a failed
// quorum check) may have made it a follower, and a Raft leader may be
// transferring its leadership. Then the answer is NotLeaderError, so that
// the request goes on to the new leader (kv/server forwards and waits for
// one) instead of failing: the fault e2e found, writes answered
// Unavailable while a paxos leader was paused. Nothing was proposed.
func (r *replica) refused(what string, err error) error {
	if consensus.NotLeading(err) {
		return &NotLeaderError{RangeID: r.desc.ID}
	}
	return fmt.Errorf("%w: range %d refused %s: %v", ErrUnavailable, r.desc.ID, what, err)
}

// ReadBarrier returns once this replica may serve a linearizable read:
// its leadership is confirmed by a phase-2 quorum after the read began
// (ReadIndex) and it has applied up to the commit index of that moment.
func (s *Store) ReadBarrier(ctx context.Context, rangeID uint64) error {
	done := make(chan error, 1) // startRead calls back at most once
	var err error
	if derr := s.Do(ctx, func() {
		err = s.StartRead(rangeID, func(err error) { done <- err })
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

// AppliedIndex returns the index this node's replica of range rangeID
// has applied.
func (s *Store) AppliedIndex(ctx context.Context, rangeID uint64) (uint64, error) {
	var applied uint64
	found := false
	if err := s.Do(ctx, func() {
		if r := s.Replicas[rangeID]; r != nil {
			applied, found = r.Applied, true
		}
	}); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%w: range %d", ErrNoReplicaHere, rangeID)
	}
	return applied, nil
}

// StartRead starts a linearizable read of the range (see Store.ReadBarrier).
// The reads of a round share one ReadIndex request (issueReads). done is
// called once, later, on the loop (at the earliest as the round's Ready
// is collected): with nil when the
// replica's applied data may be read, or with why not (NotLeaderError when
// leadership moved before the read was confirmed). An error means done
// will not be called. Loop only.
func (s *Store) StartRead(rangeID uint64, done func(error)) error {
	if _, ok := s.Replicas[rangeID]; ok && s.Config.Canary.ReadAnyReplica {
		done(nil) // at once: an idle follower may have no round to serve it in
		return nil
	}
	r, err := s.leaderReplica(rangeID)
	if err != nil {
		return err
	}
	s.touch(r)
	if s.Config.Canary.SkipReadBarrier {
		r.confirmed = append(r.confirmed, confirmedRead{index: 0, done: done})
		return nil
	}
	if len(r.batched) == 0 {
		s.readsToIssue = append(s.readsToIssue, r)
	}
	r.batched = append(r.batched, done)
	return nil
}

// issueReads sends, for each replica that took reads since the last
// round, one ReadIndex request for all of them (replica.batched). It is
// issued after every read of the batch arrived, so the index the leader
// confirms is at least the commit index each read saw arrive: each read
// is as linearizable as with a request of its own. Called as the round's
// Ready is collected, so the request leaves in this round.
func (s *Store) issueReads() {
	if len(s.readsToIssue) == 0 {
		return
	}
	// In range order, so that a simulation replays the same requests.
	slices.SortFunc(s.readsToIssue, func(a, b *replica) int { return cmp.Compare(a.desc.ID, b.desc.ID) })
	for _, r := range s.readsToIssue {
		batch := r.batched
		r.batched = nil
		if len(batch) == 0 || !s.running(r) {
			continue // failed already (failAll)
		}
		all := func(err error) {
			for _, done := range batch {
				done(err)
			}
		}
		if _, err := s.leaderReplica(r.desc.ID); err != nil {
			all(err)
			continue
		}
		id := s.requestID()
		var rctx [8]byte
		binary.BigEndian.PutUint64(rctx[:], id)
		if err := r.Core.ReadIndex(rctx[:]); err != nil {
			all(r.refused("a read", err))
			continue
		}
		r.Reads[id] = all
	}
	s.readsToIssue = s.readsToIssue[:0]
}

// applyCatalog applies a catalog command in meta, writing the catalog's
// keys as meta's data (so they read back like any range's data).
func (s *Store) applyCatalog(b *storage.Batch, index uint64, cmd *command.Command, pending map[string]*command.Value) (command.Result, error) {
	var op catalog.CatalogOp
	if err := json.Unmarshal(cmd.Value, &op); err != nil {
		return command.Result{}, fmt.Errorf("%w: catalog command at %d: %v", codec.ErrCorrupt, index, err)
	}
	writes, id, err := s.cat.Apply(&op)
	if err != nil {
		return command.Result{Version: index, Err: err}, nil // refused the same way everywhere
	}
	for _, w := range writes {
		key := storage.DataKey(catalog.MetaRangeID, w.Key)
		if w.Value == nil {
			pending[string(key)] = nil
			if err := b.Delete(key); err != nil {
				return command.Result{}, err
			}
			continue
		}
		v := &command.Value{Version: index, Data: w.Value}
		pending[string(key)] = v
		if err := b.Set(key, v.Encode()); err != nil {
			return command.Result{}, err
		}
	}
	s.catalogChanged = true
	return command.Result{Version: index, ID: id}, nil
}
