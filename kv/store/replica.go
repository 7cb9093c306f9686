package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/quorumkv/quorumkv/internal/invariants"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
)

// replica is this node's member of one range's consensus group, Raft or
// Multi-Paxos as the range's mode says. Only the store's goroutine
// touches it.
type replica struct {
	desc *catalog.RangeDescriptor
	Core consensus.Core

	Applied uint64
	Leader  uint64
	Role    consensus.Role

	// waiters are the clients of proposals made here, by command id: each
	// is called once, on the store's goroutine, with the result of its own
	// command (see Store.StartPropose).
	waiters map[uint64]waiter
	// Reads are ReadIndex requests made here, by request id, until the
	// leader confirms them; then they wait in confirmed until applied
	// reaches their index. Each is called once, on the store's goroutine
	// (see Store.startRead).
	Reads     map[uint64]func(error)
	confirmed []confirmedRead
	// batched are the reads that arrived in this round, which share one
	// ReadIndex request issued when the round's Ready is collected
	// (Store.issueReads): one confirmation round for all of them, as etcd
	// batches its linearizable reads.
	batched []func(error)

	// Quiesced replicas are not ticked (see quiesce.go); idleTicks counts
	// a leader's ticks since its last proposal or read.
	Quiesced  bool
	idleTicks int

	// dedup is the range's request dedup state (dedup.go).
	dedup dedupState

	// snapshotFault is a Raft leader's failure to build the snapshot a
	// follower needs (consensus.RaftCore.snapshot), while it lasts.
	snapshotFault consensus.SnapshotFault

	// split is the range's split state (split.go); splitDirty says this
	// apply changed it. born are the ranges the split just ingested
	// created here, started at once (startBorn).
	split      splitState
	splitDirty bool
	born       []bornRange
	// splitting is the split whose file is being written (splitjob.go):
	// the apply waits at its entry until it is ingested.
	splitting *splitJob

	// catchUps are the catch-ups this node started in the range: the
	// replicas its range driver added (learners, paxos joiners) while it
	// led the range, by node ID, with the term (paxos: the ballot round)
	// it led in (rangedriver.go, startedCatchUp). Loop only.
	catchUps map[uint64]uint64

	// sizes are the sizes of keys the apply wrote lately (sizecache.go).
	sizes sizeCache
}

// forgetSizes empties the size cache: the range's data changed other
// than by its apply (a split, a merge, a snapshot install).
func (r *replica) forgetSizes() { r.sizes = sizeCache{} }

// waiter is the client of one proposal: data is the proposed command as
// encoded in the log, so that only that very entry answers it. Request IDs
// are unique (requestID), but an entry of an earlier incarnation of this
// node may commit after a restart, and its result must never reach a new
// request that happens to share its ID.
type waiter struct {
	data []byte
	done func(command.Result)
}

type confirmedRead struct {
	index uint64
	done  func(error)
}

// newReplica opens the range's consensus state in Pebble and starts its
// core: Multi-Paxos for a paxos range, Raft for the others (meta included).
func newReplica(s *Store, desc *catalog.RangeDescriptor) (*replica, error) {
	applied, err := consensus.LoadApplied(s.DB, desc.ID)
	if err != nil {
		return nil, err
	}
	horizon, err := loadDedupHorizon(s.DB, desc.ID)
	if err != nil {
		return nil, err
	}
	split, err := loadSplitState(s.DB, desc.ID)
	if err != nil {
		return nil, err
	}
	r := &replica{desc: desc, Applied: applied, waiters: map[uint64]waiter{}, Reads: map[uint64]func(error){},
		dedup: dedupState{horizon: horizon}, split: split, splitDirty: true, sizes: sizeCache{}}
	rg := consensus.Range{Desc: desc, Applied: &r.Applied, SnapFault: &r.snapshotFault, Founder: founder(desc, s.nodeID),
		ReadLease: s.readLease(desc)}
	if desc.Mode == catalog.ModePaxos {
		r.Core, err = consensus.NewPaxosCore(s.coreHost(), rg)
	} else {
		r.Core, err = consensus.NewRaftCore(s.coreHost(), rg)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// delivery is a result to hand a waiting client once the batch that
// applied it is committed.
type delivery struct {
	to  func(command.Result)
	res command.Result
}

// Apply adds the effects of committed entries to w's batch and returns
// the results for waiting clients. Entries are applied in order; a command
// sees the effects of the ones before it in the same batch through ab,
// since the batch is not readable until committed. A split commits the
// batch and stops the apply (applySplit): the entries after it are
// applied once its file is ingested (splitjob.go). On an error, it returns with it the results of the entries
// before the failing one, whose waiters it took: the batch holds part of
// the effects and the caller discards it (Store.applyReady), and the
// replica stops (its dedup state in memory goes with it).
func (r *replica) Apply(s *Store, w *applyWriter, ents []consensus.CommittedEntry) ([]delivery, error) {
	var out []delivery
	ab := newApplyBatch()
	for _, e := range ents {
		if e.Index <= r.Applied {
			continue // applied before a restart; the log replays it
		}
		if e.Cmd != nil {
			cmd, err := command.DecodeCommand(e.Cmd)
			if err != nil {
				return out, fmt.Errorf("kv: range %d entry %d: %w", r.desc.ID, e.Index, err)
			}
			res, err := r.applyCommand(s, w, e.Index, &cmd, ab)
			if err != nil {
				return out, err
			}
			if j := r.splitting; j != nil {
				// A split: what came before it is committed, and the
				// apply stops here until its file is ingested
				// (splitjob.go), which answers its proposal.
				j.data = e.Cmd
				return out, nil
			}
			if wt, ok := r.waiters[cmd.ID]; ok && cmd.ID != 0 && (bytes.Equal(wt.data, e.Cmd) || s.Config.Canary.WaitersByID) {
				delete(r.waiters, cmd.ID)
				out = append(out, delivery{wt.done, res})
			}
		}
		// Entries with nothing to apply (no-ops, configurations, which
		// take effect in the core) count as applied like any other.
		r.Applied = e.Index
	}
	if err := r.finishApply(s, w.b, ab); err != nil {
		return nil, err
	}
	return out, nil
}

// finishApply adds to b what ends an apply: expired answers collected,
// the split state if it changed, and the applied index.
func (r *replica) finishApply(s *Store, b *storage.Batch, ab *applyBatch) error {
	if err := r.collectAnswers(s, b, ab); err != nil {
		return err
	}
	if r.splitDirty && r.desc.ID != catalog.MetaRangeID {
		r.splitDirty = false
		if err := b.Set(storage.SplitStateKey(r.desc.ID), r.split.encode()); err != nil {
			return err
		}
	}
	return b.Set(storage.AppliedStateKey(r.desc.ID), consensus.AppliedState(r.Applied))
}

// applyCommand applies one command. Errors returned are the node's (a
// disk failure, a corrupt entry); the client's errors are in the result.
// A command whose idempotency key the range has answered already (within
// its dedup horizon) applies nothing and answers as the first one did.
func (r *replica) applyCommand(s *Store, w *applyWriter, index uint64, cmd *command.Command, ab *applyBatch) (command.Result, error) {
	if res, done, err := r.applyMergeCommand(s, w, index, cmd, ab); done {
		return res, err
	}
	if cmd.Op == command.OpSplit {
		return r.applySplit(s, w, index, cmd, ab)
	}
	b := w.b
	if cmd.Op == command.OpCatalog {
		if r.desc.ID != catalog.MetaRangeID {
			return command.Result{}, fmt.Errorf("%w: catalog command in range %d", codec.ErrCorrupt, r.desc.ID)
		}
		return s.applyCatalog(b, index, cmd, ab.data)
	}
	if err := r.advanceHorizon(b, cmd.Horizon); err != nil {
		return command.Result{}, err
	}
	// A key a split moved away is refused before its dedup state is
	// asked: the range that holds it now has that state too.
	if err := r.keyMoved(s, cmd.Key); err != nil {
		return command.Result{Err: err}, nil
	}
	if len(cmd.IdemKey) > 0 {
		res, ok, err := r.keptAnswer(s, ab, cmd.IdemKey)
		if s.Config.OnApply != nil && err == nil {
			s.Config.OnApply(r.desc.ID, index, cmd.IdemKey, !ok)
		}
		if err != nil || ok {
			return res, err
		}
	}
	res, err := r.applyWrite(s, b, index, cmd, ab.data)
	if err != nil || len(cmd.IdemKey) == 0 {
		return res, err
	}
	return res, r.keepAnswer(b, ab, cmd.IdemKey, cmd.At, res)
}

// applyWrite applies a put, delete or compare-and-swap to the range's data.
func (r *replica) applyWrite(s *Store, b *storage.Batch, index uint64, cmd *command.Command, pending map[string]*command.Value) (command.Result, error) {
	key := storage.DataKey(r.desc.ID, cmd.Key)
	cur, ok := pending[string(key)]
	if !ok && cmd.Op != command.OpCAS {
		if sz, hit := r.sizes.get(cmd.Key); hit {
			if invariants.Enabled {
				r.checkCachedSize(s, key, cmd.Key, sz)
			}
			return r.applyBlind(s, b, index, cmd, key, sz, pending)
		}
	}
	if !ok {
		raw, err := s.DB.Get(key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return command.Result{}, err
		default:
			v, err := command.DecodeValue(raw)
			if err != nil {
				return command.Result{}, fmt.Errorf("kv: range %d key %q: %w", r.desc.ID, cmd.Key, err)
			}
			cur = &v
		}
	}
	next, res := cmd.Apply(r.desc.ID, index, cur)
	if next == cur {
		return res, nil
	}
	return res, r.writeValue(s, b, cmd.Key, key, splitBytes(cmd.Key, cur), next, pending)
}

// applyBlind applies a put or delete of a key whose current size the
// cache holds (curBytes; 0: absent), without reading its value: neither
// needs more than whether the key exists.
func (r *replica) applyBlind(s *Store, b *storage.Batch, index uint64, cmd *command.Command, key []byte, curBytes uint32, pending map[string]*command.Value) (command.Result, error) {
	var cur *command.Value
	if curBytes > 0 {
		cur = &command.Value{} // exists: all a put or delete asks of it
	}
	next, res := cmd.Apply(r.desc.ID, index, cur)
	if next == cur {
		return res, nil // a delete of an absent key
	}
	return res, r.writeValue(s, b, cmd.Key, key, uint64(curBytes), next, pending)
}

// writeValue writes next (nil: delete) as userKey's value at key, where
// the value it replaces counted curBytes toward the range's size.
func (r *replica) writeValue(s *Store, b *storage.Batch, userKey, key []byte, curBytes uint64, next *command.Value, pending map[string]*command.Value) error {
	nextBytes := splitBytes(userKey, next)
	r.split.bytes += nextBytes
	r.split.bytes -= min(r.split.bytes, curBytes)
	r.splitDirty = true
	s.remember(r, userKey, nextBytes)
	pending[string(key)] = next
	if next == nil {
		return b.Delete(key)
	}
	return b.Set(key, next.Encode())
}

// checkCachedSize panics if the size cache's size for userKey is not
// what its value on disk counts (an invariant check: see sizecache.go).
// Only for keys not written in the apply's batch, whose disk value is
// the current one.
func (r *replica) checkCachedSize(s *Store, key, userKey []byte, cached uint32) {
	var onDisk uint64
	raw, err := s.DB.Get(key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return // the apply's own reads will say
	default:
		v, err := command.DecodeValue(raw)
		if err != nil {
			return
		}
		onDisk = splitBytes(userKey, &v)
	}
	if onDisk != uint64(cached) {
		panic(fmt.Sprintf("kv: range %d: the size cache holds %d bytes for key %q, its value on disk counts %d",
			r.desc.ID, cached, command.Abbreviate(userKey), onDisk))
	}
}

// serveReads releases confirmed reads whose index is applied.
func (r *replica) serveReads() {
	sort.Slice(r.confirmed, func(i, j int) bool { return r.confirmed[i].index < r.confirmed[j].index })
	n := 0
	for n < len(r.confirmed) && r.confirmed[n].index <= r.Applied {
		r.confirmed[n].done(nil)
		n++
	}
	r.confirmed = r.confirmed[n:]
}

// failAll answers every waiting client: the replica is going away. A
// proposal in the log may still be applied (by this node after a restart,
// or by the others), so its client learns that the outcome is unknown;
// reads only learn that they were not served. Clients are answered in
// request order, so that a simulation replays the same answers.
func (r *replica) failAll(err error) {
	r.failWaiters(err)
	r.failReads(err)
	for _, done := range r.batched {
		done(err)
	}
	r.batched = nil
	for _, c := range r.confirmed {
		c.done(err)
	}
	r.confirmed = nil
}

// failWaiters answers every waiting proposal that its outcome is unknown
// (why: err), in request order: its entry may still be applied, here or
// elsewhere, or never.
func (r *replica) failWaiters(err error) {
	for _, id := range slices.Sorted(maps.Keys(r.waiters)) {
		w := r.waiters[id]
		delete(r.waiters, id)
		w.done(command.Result{Err: fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)})
	}
}

// failReads answers the reads not yet confirmed with err, in request
// order.
func (r *replica) failReads(err error) {
	for _, id := range slices.Sorted(maps.Keys(r.Reads)) {
		done := r.Reads[id]
		delete(r.Reads, id)
		done(err)
	}
}

// coreHost is what the store gives every range's core, made once the
// store knows its node ID.
func (s *Store) coreHost() *consensus.Host {
	if s.host == nil {
		s.host = &consensus.Host{
			DB: s.DB, NodeID: s.nodeID, Raft: s.Config.Raft, Paxos: s.Config.Paxos,
			LogKeepEntries: s.Config.LogKeepEntries, LogTruncateEntries: s.Config.LogTruncateEntries,
			LogKeepBytes: s.Config.LogKeepBytes, LogTruncateBytes: s.Config.LogTruncateBytes,
			Logger: s.Logger, RaftLogger: s.raftLogger,
			Seed:           s.rng.Uint64,
			Ticks:          func() int64 { return s.Quiesce.ticks },
			SnapshotFailed: func() { s.faulted(consensus.FaultSnapshot) },
			OpenSnapshot:   s.openSnapshot,
			SnapshotHeld:   s.snapshotHeld,
		}
	}
	return s.host
}

// MetaCore returns meta's Raft core (meta is always a Raft group).
func MetaCore(r *replica) *consensus.RaftCore {
	c, ok := r.Core.(*consensus.RaftCore)
	if !ok {
		panic(fmt.Sprintf("kv: range %d (meta) runs %s, not raft", r.desc.ID, r.Core.Protocol()))
	}
	return c
}

// founder reports whether node holds one of desc's founding replicas,
// leaving or not, not one a move added (catalog.ReplicaDescriptor.Added).
func founder(desc *catalog.RangeDescriptor, node uint64) bool {
	for _, rep := range slices.Concat(desc.Replicas, desc.Leaving) {
		if rep.NodeID == node {
			return !rep.Added
		}
	}
	return false
}
