package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// Range splits (raft and paxos ranges; DESIGN.md §2: a range splits in
// two by halving its interval of the hash space, so nothing is rehashed).
// Below, "index" is a Raft log index or a Multi-Paxos slot: the two
// protocols split the same way, through consensus.SplitCore.
//
// A range's log is the only place where its replicas agree on anything,
// so a split is a command in it, and the catalog follows:
//
//  1. The range's leader sees its data pass StoreConfig.RangeMaxBytes (a
//     size kept in the range's replicated state, splitState.bytes) while
//     no split or replica move of the range is in flight (SplitTasks).
//     kv.Node asks meta for a new range ID (catalog.CatalogOp.ReserveRange)
//     and proposes Split{Lo, Hi, Mid, NewRange, configuration} in the
//     range's log (StartSplit).
//  2. Every replica applies it at the same index i (applySplit): the
//     keys of the right half [Mid, Hi) move from the range's storage
//     prefix to the new range's, with a copy of the range's dedup state;
//     the range's split state records its new span, and from then on the
//     range refuses keys outside it with ErrKeyMoved (nothing written,
//     retried once the catalog moves); the new range's consensus state
//     is written as if it had installed a snapshot at i
//     (consensus.SplitFounding), so every replica of the new range starts
//     identical: for Raft, with the term of entry i and the configuration
//     the command carries; for Multi-Paxos, with no promise, commit i, and
//     the configuration the slots up to i chose for the slots after it,
//     which must be the one the command carries (else every replica
//     refuses the split alike: a move was chosen fewer than alpha
//     slots before i, to take effect after it). The new range's log starts after i, so a version of a
//     moved value (its old range's index) names no write of the new
//     range: it stays valid for compare-and-swap (kv's
//     inheritedVersion). The new range's replica starts
//     here once the split is ingested (startBorn), and the
//     replica that led the old range campaigns for the new one.
//  3. The leader proposes catalog.CatalogOp.Split to meta, again and again
//     until meta has it (a retry changes nothing): SplitTasks returns that
//     step as long as the range's applied span is narrower than the
//     catalog's. Until the catalog has the new range, reconcile keeps the
//     replicas that splits started here (Store.born).
//
// Why it is safe:
//
//   - One group per key: before i, the key is the old range's; from i on,
//     the old range refuses it at apply (and at propose), and the new
//     range's log starts after i. A read checks the range's span after it
//     read the key (Store.Holds), and the span only shrinks.
//   - A replica that never applied the split (it was down, or got the old
//     range by a snapshot past i: the snapshot carries the split state and
//     the left half only) starts the new range from the catalog, whose
//     replicas of a split range are all marked Added: it never founds a
//     log, it waits for the new range's leader to send a snapshot. Had it
//     founded one, two logs would claim the range. If it applies the split
//     later, from the log, the new range's state here is left alone (it
//     may be ahead), and only the old range's right half goes.
//   - A crash: the split's effects and both ranges' applied indexes are
//     one ingested file (below); the new range's replica starts from what
//     it wrote.
//
// How a split of any size is written. The right half may be far larger
// than a batch (storage's MaxBatchBytes, 64 MiB by default, and a batch is
// held in memory): a range grows past RangeMaxBytes whenever its splits
// are held up (meta unavailable, a move in flight, the limit lowered), and
// must split then all the same. So a split writes no batch. It is applied
// in three steps, and only the range that splits waits for them
// (splitjob.go):
//
//  a. On the store's goroutine, in the middle of the round's apply: the
//     entries before i, applied to the replica's batch, are committed with
//     the round's batch, synced, with applied index i-1
//     (applyWriter.commitSoFar; the round's other ranges' writes are
//     complete, and each range needs only its own writes atomic). A Pebble
//     snapshot of the database is taken, and the range's apply stops at i:
//     the round tells its core so (SplitCore.AdvancePaused), the core
//     goes on appending, voting and committing (Raft) or promising,
//     accepting and learning what is chosen (Multi-Paxos), and the loop
//     goes on with every other range.
//  b. On a goroutine of its own (splitJob; at most maxSplitWrites at
//     once), writeSplit streams the split's whole effect on this node,
//     read from that snapshot, into one staged sstable
//     (storage.CreateStaged), in key order: the new range's consensus
//     state;
//     both ranges' applied index i; a range deletion of the old range's
//     data and its left half again; a range deletion of the new range's
//     data and the right half under its prefix; the old range's new split
//     state; a range deletion of the new range's dedup span, the copied
//     dedup state and the new range's split state. The file is synced.
//  c. Back on the store's goroutine, at the start of the next round once
//     the file is written (takeSplits): it is ingested in one IngestStaged,
//     all or nothing after a crash, as a snapshot install's (snapshot.go);
//     the split's proposal is answered, the new range's replica starts,
//     and the apply resumes (SplitCore.ResumeApply) with the entries after
//     i, in the next round's batch.
//
// Between a and c nothing writes the range's keys (its apply is stopped)
// nor the new range's (reconcile does not start it: founding), so the
// file, read from the state a left, is still the split's whole effect when
// c ingests it. A replica removed or failed, a snapshot its core takes, or
// the store's shutdown, cancels b (cancelSplit, stopSplits), and its file
// is removed.
//
// A crash before c's ingest leaves the range at i-1 (its log replays the
// split, and start removes the staged file: recoverInstalls); after it,
// the range is at i, split. Step a is synced because an ingest is not in
// the WAL's order: an unsynced batch before it could be lost while the
// ingest survives.
//
// Why the old range's whole data is deleted and its left half written
// again: keys sort by user key within a range's prefix, and a half of the
// hash space is not a span of user keys, so no range deletion covers the
// right half alone. One range deletion of the whole span, with the left
// half in the same file (a range deletion does not delete the points of
// its own file), leaves exactly the left half, and no tombstone per moved
// key for the old range's reads and scans to step over. The price is that
// a split writes the whole range, not half of it: about 2 s per GiB on a
// disk of 500 MiB/s (7.5 s for a range of 1 GiB on a shared machine of 2
// cores: TestSplitFileMemory with QKV_SPLIT_BIG=1024), during which the
// range's apply waits (its reads past i - 1 and its proposals' answers
// with it) while the node's other ranges go on. Memory is a Pebble
// iterator and the sstable writer's blocks, whatever the range's size (3
// MiB of heap for that split); the Pebble snapshot held meanwhile keeps
// the versions it sees from being compacted away.
//
// Eventual ranges have no log to split in: they split in the catalog
// alone (kv/eventual/split.go), and SplitTasks leaves them out. Paxos
// ranges split but do not merge (merge.go is raft-only; a paxos range's
// Subsume or Merge is refused at apply, and the merge driver skips it).

// DefaultRangeMaxBytes is StoreConfig.RangeMaxBytes's default (SPEC.md's
// --range-max-bytes).
const DefaultRangeMaxBytes = 64 << 20

// splitFormatV1 is the first byte of an encoded split state; V2 adds a
// merge's subsume (merge.go), written only by a subsumed range.
const (
	splitFormatV1 byte = 1
	splitFormatV2 byte = 2
)

// ErrKeyMoved: the key is no longer in the range the request reached: the
// range split, and the catalog will name the range that holds it now.
// Nothing was written; the request may be retried. It is an
// ErrUnavailable.
var ErrKeyMoved = fmt.Errorf("%w: the key's range split or merged", ErrUnavailable)

// KeyMovedError is ErrKeyMoved for one range.
type KeyMovedError struct {
	RangeID uint64
	Span    catalog.Span
}

func (e *KeyMovedError) Error() string {
	return fmt.Sprintf("%v: range %d now holds only [%016x, %016x); retry once the catalog names the key's new range",
		ErrKeyMoved, e.RangeID, e.Span.Lo, e.Span.Hi)
}

func (e *KeyMovedError) Is(target error) bool {
	return target == ErrKeyMoved || target == ErrUnavailable
}

// splitState is a range's split state (storage.SplitStateKey): replicated
// state, changed only by applying the range's log or installing its
// snapshot, so every replica holds the same at the same index.
type splitState struct {
	// known says the span was recorded: a range that never split has none
	// and accepts every key the catalog routes to it.
	known bool
	span  catalog.Span
	// bytes is the size of the range's data, as splitBytes counts it.
	bytes uint64
	// lastMid and lastNew are the range's last split: it gave [lastMid,
	// its old end) to range lastNew.
	lastMid, lastNew uint64
	// subsumedInto is the range this one is merging into, from its
	// Subsume at index subsumedAt on (merge.go): it holds no key.
	subsumedInto, subsumedAt uint64
}

// holds reports whether hash h is in the range's span.
func (st *splitState) holds(h uint64) bool {
	return st.subsumedInto == 0 && (!st.known || st.span.Contains(h))
}

func (st *splitState) encode() []byte {
	e := codec.Enc{}
	e.Byte(splitFormatV1)
	if st.subsumedInto != 0 {
		e.Buf[0] = splitFormatV2
	}
	e.Bool(st.known)
	e.Uint(st.span.Lo)
	e.Uint(st.span.Hi)
	e.Uint(st.bytes)
	e.Uint(st.lastMid)
	e.Uint(st.lastNew)
	if st.subsumedInto != 0 {
		e.Uint(st.subsumedInto)
		e.Uint(st.subsumedAt)
	}
	return e.Buf
}

func decodeSplitState(b []byte) (splitState, error) {
	d := codec.Dec{Buf: b}
	v := d.Byte()
	if v != splitFormatV1 && v != splitFormatV2 {
		d.Fail("split state version")
	}
	st := splitState{known: d.Bool()}
	st.span.Lo, st.span.Hi = d.Uint(), d.Uint()
	st.bytes, st.lastMid, st.lastNew = d.Uint(), d.Uint(), d.Uint()
	if v == splitFormatV2 {
		st.subsumedInto, st.subsumedAt = d.Uint(), d.Uint()
	}
	return st, d.Done()
}

// splitBytes is what one key counts toward its range's size: its key and
// value and a few bytes of overhead. Deterministic, not exact.
func splitBytes(key []byte, v *command.Value) uint64 {
	if v == nil {
		return 0
	}
	return uint64(len(key) + len(v.Data) + 8)
}

// loadSplitState reads the range's split state. A range that has none yet
// (created before splits existed, or never written) counts its data
// once; the next apply records it.
func loadSplitState(db *storage.DB, rangeID uint64) (splitState, error) {
	raw, err := db.Get(storage.SplitStateKey(rangeID))
	if err == nil {
		st, err := decodeSplitState(raw)
		if err != nil {
			return splitState{}, fmt.Errorf("kv: range %d split state: %w", rangeID, err)
		}
		return st, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return splitState{}, err
	}
	var st splitState
	err = command.EachData(db, rangeID, nil, nil, func(key, raw []byte) (bool, error) {
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, err
		}
		st.bytes += splitBytes(key, &v)
		return true, nil
	})
	return st, err
}

// keyMoved returns the refusal of key by r, or nil if r holds it.
func (r *replica) keyMoved(s *Store, key []byte) error {
	if s.Config.Canary.ServeMovedKeys || r.split.holds(catalog.HashKey(key)) {
		return nil
	}
	return &KeyMovedError{RangeID: r.desc.ID, Span: r.split.span}
}

// bornRange is a range a split started on this node, before the catalog
// has it.
type bornRange struct {
	desc *catalog.RangeDescriptor
	// campaign: this node led the range that split, so its replica of
	// the new one campaigns at once.
	campaign bool
}

// applySplit applies a split at index (see the top of the file). A split
// that does not fit the range's state now (a split, move or subsume came
// first) is refused, the same way on every replica, and changes nothing.
func (r *replica) applySplit(s *Store, w *applyWriter, index uint64, cmd *command.Command, ab *applyBatch) (command.Result, error) {
	var sp command.Split
	if err := json.Unmarshal(cmd.Value, &sp); err != nil {
		return command.Result{}, fmt.Errorf("%w: split command at %d: %v", codec.ErrCorrupt, index, err)
	}
	id := r.desc.ID
	refuse := func(why string) (command.Result, error) {
		return command.Result{Version: index, Err: fmt.Errorf("%w: range %d refused the split at %016x: %s", catalog.ErrSplit, id, sp.Mid, why)}, nil
	}
	span := catalog.Span{Lo: sp.Lo, Hi: sp.Hi}
	c, ok := r.Core.(consensus.SplitCore)
	switch {
	case !ok:
		return refuse("only raft and paxos ranges split")
	case r.split.subsumedInto != 0:
		return refuse(fmt.Sprintf("it is subsumed into range %d", r.split.subsumedInto))
	case r.split.known && r.split.span != span:
		return refuse(fmt.Sprintf("its span is [%016x, %016x) now", r.split.span.Lo, r.split.span.Hi))
	case !span.Contains(sp.Mid) || sp.Mid == sp.Lo:
		return refuse("not strictly inside its span")
	case sp.NewRange <= catalog.MetaRangeID || sp.NewRange == id || len(sp.Voters) == 0:
		return refuse("no new range, or no configuration")
	}
	found, why, err := c.SplitFounding(index, sp.Voters, sp.Geometry)
	if err != nil {
		return command.Result{}, err
	}
	if why != "" {
		return refuse(why)
	}
	if s.Config.Canary.SplitFoundsLow && found.Paxos {
		found.Index = 1
	}
	// The new range's state here is written only if it has none: a
	// replica that started it from the catalog before applying the split
	// may be ahead of index already.
	create := s.Replicas[sp.NewRange] == nil && s.Failed[sp.NewRange] == nil
	if create {
		has, err := consensus.HasRangeState(s.DB, sp.NewRange)
		if err != nil {
			return command.Result{}, err
		}
		create = !has
	}
	// What the entries before this one did is committed first, synced, so
	// that the file reads it from Pebble and a crash cannot keep the
	// ingest while losing them (an ingest is not in the WAL's order).
	if err := w.commitApplied(s, r, ab, "committed"); err != nil {
		return command.Result{}, err
	}
	p := &splitPlan{old: id, born: sp.NewRange, index: index, span: span, mid: sp.Mid, create: create, found: found,
		horizon: r.dedup.horizon, dropLastKey: s.Config.Canary.SplitDropsLastKey}
	// The file is written off the loop; the apply stops here until it is
	// ingested (splitjob.go), and the split's result comes then.
	j := s.startSplitJob(r, p, span)
	j.cmdID = cmd.ID
	return command.Result{Version: index}, nil
}

// splitApplied records j's split, whose file is ingested: Pebble now holds
// the range as applied through the split's index, with its new span. The
// new range's replica here, if the split founded it, is started with the
// range's next round (startBorn).
func (s *Store) splitApplied(r *replica, j *splitJob) {
	p, sz := j.p, j.sizes
	r.Applied = p.index
	r.split = splitState{known: true, span: catalog.Span{Lo: p.span.Lo, Hi: p.mid}, bytes: sz.left, lastMid: p.mid, lastNew: p.born}
	r.forgetSizes()
	r.splitDirty = false
	if p.create {
		reps, geometry := p.found.Replicas()
		desc := &catalog.RangeDescriptor{ID: p.born, Keyspace: r.desc.Keyspace, Span: p.right(), Geometry: geometry,
			Mode: r.desc.Mode, Parent: p.old}
		for _, v := range reps {
			v.Added = true
			desc.Replicas = append(desc.Replicas, v)
		}
		r.born = append(r.born, bornRange{desc: desc, campaign: r.Role == consensus.RoleLeader})
	}
	s.Config.Metrics.Splits.Inc()
	s.Logger.Info("range split", "range", p.old, "keyspace", r.desc.Keyspace, "index", p.index, "mid", fmt.Sprintf("%016x", p.mid),
		"new_range", p.born, "left_bytes", sz.left, "moved_bytes", sz.right, "new_replica_here", p.create)
}

// startBorn starts the replicas that r's split created, whose state the
// split ingested. Loop only.
func (s *Store) startBorn(r *replica) error {
	born := r.born
	r.born = nil
	for _, b := range born {
		id := b.desc.ID
		if s.Replicas[id] != nil {
			continue
		}
		nr, err := newReplica(s, b.desc)
		if err != nil && openFault(err) {
			s.startFailed(b.desc, err)
			continue
		}
		if err != nil {
			return err
		}
		s.Replicas[id] = nr
		s.ordered = nil
		if _, ok := s.cat.Ranges[id]; !ok {
			s.born[id] = true
		}
		if c, ok := nr.Core.(consensus.SplitCore); ok && b.campaign {
			c.Campaign()
		}
		s.Logger.Info("started the replica of a range born of a split", "range", id, "parent", b.desc.Parent, "keyspace", b.desc.Keyspace)
	}
	return nil
}

// SplitTask is a step of a split of a range this node leads, for kv.Node
// to take (it needs meta, which may lead elsewhere).
type SplitTask struct {
	Range uint64
	// Catalog: the range split at Mid, giving the rest to NewRange, and
	// the catalog does not have it yet: propose catalog.CatalogOp.Split.
	// Otherwise the range is over RangeMaxBytes: reserve an ID
	// (CatalogOp.ReserveRange) and call ProposeSplit.
	Catalog       bool
	Mid, NewRange uint64
	// Bytes is the range's size.
	Bytes uint64
}

// SplitTasks returns the split steps of the raft and paxos ranges this
// node leads, in range order. Loop only.
func (s *Store) SplitTasks() []SplitTask {
	var out []SplitTask
	for _, r := range s.sortedReplicas() {
		id := r.desc.ID
		desc, ok := s.cat.Ranges[id]
		if id == catalog.MetaRangeID || !ok || r.Role != consensus.RoleLeader || !catalog.Splits(desc.Mode) {
			continue
		}
		st := r.split
		switch {
		case r.splitting != nil:
			// Its apply waits for a split's file (splitjob.go); the span
			// and size are those before it.
		case st.known && st.span != desc.Span:
			if st.span.Lo == desc.Span.Lo && st.span.Hi == st.lastMid && desc.Span.Contains(st.lastMid) {
				out = append(out, SplitTask{Range: id, Catalog: true, Mid: st.lastMid, NewRange: st.lastNew, Bytes: st.bytes})
			}
		case st.bytes > uint64(s.Config.RangeMaxBytes) && !s.merging(id):
			if _, _, ok := desc.Span.Split(); ok {
				out = append(out, SplitTask{Range: id, Bytes: st.bytes})
			}
		}
	}
	return out
}

// SplitWork is SplitTasks from any goroutine.
func (s *Store) SplitWork(ctx context.Context) ([]SplitTask, error) {
	var out []SplitTask
	err := s.Do(ctx, func() { out = s.SplitTasks() })
	return out, err
}

// StartSplit proposes the split of range rangeID in halves, the right one
// to become range newRange (an ID meta reserved), if this node leads it
// and no split or move of it is in flight: its applied span is the
// catalog's, the catalog moves none of its replicas, and its Raft or
// Multi-Paxos configuration is the catalog's replicas with no change
// pending. done is called as for StartPropose. Loop only.
func (s *Store) StartSplit(rangeID, newRange uint64, done func(command.Result)) (uint64, error) {
	r, err := s.leaderReplica(rangeID)
	if err != nil {
		return 0, err
	}
	desc, ok := s.cat.Ranges[rangeID]
	if _, splits := r.Core.(consensus.SplitCore); !ok || !splits || !catalog.Splits(desc.Mode) {
		return 0, fmt.Errorf("%w: range %d is not a raft or paxos range of the catalog", catalog.ErrSplit, rangeID)
	}
	left, _, ok := desc.Span.Split()
	busy := func(why string) (uint64, error) {
		return 0, fmt.Errorf("%w: range %d cannot split now: %s", ErrUnavailable, rangeID, why)
	}
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: range %d's span cannot be halved", catalog.ErrSplit, rangeID)
	case r.splitting != nil:
		return busy("its last split is being written")
	case r.split.known && r.split.span != desc.Span:
		return busy("its last split is not in the catalog yet")
	case len(desc.Leaving) > 0:
		return busy("a replica move is in flight")
	case s.merging(rangeID) || r.split.subsumedInto != 0:
		return busy("a merge is in flight")
	}
	voters, geometry, why := splitConfig(r, desc)
	if why != "" {
		return busy(why)
	}
	sp := command.Split{Lo: desc.Span.Lo, Hi: desc.Span.Hi, Mid: left.Hi, NewRange: newRange, Voters: voters, Geometry: geometry}
	return s.StartPropose(rangeID, &command.Command{Op: command.OpSplit, Value: catalog.MustJSON(sp)}, done)
}

// splitConfig returns the configuration a split of leader r carries, the
// one in force, or why there is none to carry now: it is changing, or is
// not the catalog's replicas yet (the new range gets the catalog's
// replicas of r, so they must be one).
func splitConfig(r *replica, desc *catalog.RangeDescriptor) ([]catalog.ReplicaDescriptor, string, string) {
	var voters []catalog.ReplicaDescriptor
	var geometry string
	switch c := r.Core.(type) {
	case *consensus.RaftCore:
		cs := c.RawNode.ConfState()
		if cs.Joint() || len(cs.Learners) > 0 || len(cs.LearnersNext) > 0 {
			return nil, "", "its configuration is changing"
		}
		if pending, err := confChangePending(c, r.Applied); err != nil || pending {
			return nil, "", fmt.Sprintf("a configuration change is not applied yet (%v)", err)
		}
		for _, v := range cs.Voters {
			voters = append(voters, catalog.ReplicaDescriptor{NodeID: v.ID, Zone: v.Zone, Weight: v.Weight})
		}
		geometry = cs.Geometry
	case *consensus.PaxosCore:
		// One configuration governs every slot after the applied one:
		// none is chosen and waiting to take effect, nor proposed.
		cs := c.Configs()
		if len(cs) != 1 || c.ConfigChangePending() {
			return nil, "", "its configuration is changing"
		}
		for _, v := range cs[0].Membership.Voters {
			voters = append(voters, catalog.ReplicaDescriptor{NodeID: v.ID, Zone: v.Zone, Weight: v.Weight})
		}
		geometry = cs[0].Membership.Geometry
	default:
		return nil, "", "it runs no consensus"
	}
	if len(voters) != len(desc.Replicas) {
		return nil, "", "its configuration is changing"
	}
	for _, v := range voters {
		if !desc.HasReplica(v.NodeID) {
			return nil, "", "its configuration is not the catalog's yet"
		}
	}
	return voters, geometry, ""
}

// confChangePending reports whether the leader's log holds a
// configuration change past applied: the configuration a split carries
// must be the one in force at its entry.
func confChangePending(c *consensus.RaftCore, applied uint64) (bool, error) {
	last := c.Log.Last
	if applied >= last {
		return false, nil
	}
	ents, err := c.Log.Entries(applied+1, last+1, 1<<62)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ents, func(e raft.Entry) bool { return e.Type != raft.EntryNormal }), nil
}

// ProposeSplit is StartSplit from any goroutine, waiting until the split
// is applied here (see Propose for the errors).
func (s *Store) ProposeSplit(ctx context.Context, rangeID, newRange uint64) (command.Result, error) {
	done := make(chan command.Result, 1)
	var id uint64
	var err error
	if derr := s.Do(ctx, func() {
		id, err = s.StartSplit(rangeID, newRange, func(res command.Result) { done <- res })
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
		_ = s.Do(context.Background(), func() { s.ForgetProposal(rangeID, id) })
		return command.Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// Holds reports whether this node's replica of range rangeID, as applied
// now, holds key: false once a split moved it to another range. Reads
// call it after they read the key: the span only shrinks, and a split
// changes the data and the span in one ingest, so a key still held then
// was read before any split moved it. Safe on any goroutine.
func (s *Store) Holds(rangeID uint64, key []byte) (bool, error) {
	if s.Config.Canary.ServeMovedKeys {
		return true, nil
	}
	st, err := s.appliedSpan(rangeID)
	if err != nil {
		return false, err
	}
	return st.holds(catalog.HashKey(key)), nil
}

// HoldsSpan reports whether this node's replica of range rangeID, as
// applied now, still holds all of span (what a scan of it expects).
func (s *Store) HoldsSpan(rangeID uint64, span catalog.Span) (bool, error) {
	if s.Config.Canary.ServeMovedKeys {
		return true, nil
	}
	st, err := s.appliedSpan(rangeID)
	if err != nil {
		return false, err
	}
	return st.subsumedInto == 0 && (!st.known || st.span == span || (st.span.Lo <= span.Lo && (st.span.Hi == 0 || span.Hi != 0 && span.Hi <= st.span.Hi))), nil
}

// appliedSpan reads the split state of range rangeID from Pebble (not the
// loop's copy: any goroutine may call).
func (s *Store) appliedSpan(rangeID uint64) (splitState, error) {
	raw, err := s.DB.Get(storage.SplitStateKey(rangeID))
	if errors.Is(err, storage.ErrNotFound) {
		return splitState{}, nil
	}
	if err != nil {
		return splitState{}, err
	}
	return decodeSplitState(raw)
}
