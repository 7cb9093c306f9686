package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/raft"
)

// Range merges (raft ranges): two neighbouring ranges of one keyspace,
// both small, with the same replicas, become the left one. The protocol is
// CockroachDB's (subsume, wait, merge), with the logs of the two ranges as
// the only places where their replicas agree on anything:
//
//  1. The leader of the left range L, which must lead the right range R
//     too (it hands L's leadership to R's leader otherwise, and neither is
//     handed away by leadership balancing while the pair is mergeable:
//     holdLeadership), sees both small (their splitState.bytes summed
//     below StoreConfig.MergeBelowBytes), both at the catalog's span, the
//     same replicas in the catalog and in both Raft configurations, with
//     no configuration change, split or move in flight, and every
//     replica's node heard from lately and not draining (allHeard;
//     driveMerges). It proposes Subsume{Into: L} in R's log.
//  2. Every replica of R applies it at the same index s (applySubsume):
//     R's split state records it, durably (the entries up to s are
//     committed, synced, in that apply), and from then on R refuses every
//     write, read and split with ErrKeyMoved (retried until the catalog
//     routes the key to L). Its data and dedup state never change again.
//     Each replica then tells every other node of R, on every tick, that
//     it applied s (ControlSubsumed).
//  3. Once every voter of L's configuration has said so, L's leader
//     proposes Merge{Right: R, SubsumeIndex: s, Voters} in L's log.
//  4. Every replica of L applies it at the same index m (applyMerge): the
//     entries before m are committed, synced; then one staged sstable,
//     read from a Pebble snapshot, moves R's data and its live dedup
//     answers under L's prefix, widens L's span, writes L's applied index
//     m, deletes all of R's replica state and leaves R's split state as a
//     tombstone (subsumed into L) that keeps refusing R's keys; it is
//     ingested whole. R's replica here stops.
//  5. L's leader records catalog.CatalogOp.Merge, again and again until
//     meta has it (MergeTasks, kv.Node's merge pass), and routing follows.
//
// Why it is safe:
//
//   - One group per key: up to s, R's keys are R's; from s on R refuses
//     them at propose, apply and read (Holds checks the applied state
//     after the read, and R's state only stops holding); from m on they
//     are L's. Between s and m nobody serves them, so nothing acknowledged
//     between is lost and a read cannot see a state older than a write.
//   - The data L takes is R's at s on every replica: R applies nothing
//     after s (no write, no dedup horizon, no split), and every replica of
//     L finds its replica of R at s when it applies m, because every voter
//     of L's configuration at m reported it before m was proposed (the
//     configuration at m is the leader's when it proposed: no change was
//     pending in its log, like a split's), and the report is sent only
//     once the subsume is synced. A replica of L that applies m and finds
//     its R not subsumed at s (a broken promise, not a race) stops the
//     range here with a fault, loudly, rather than merge a wrong state.
//   - A replica of L that was down across m applies m from its log later:
//     its replica of R was subsumed and synced before m was proposed, and
//     is kept until then (reconcile keeps a subsumed replica whose left
//     neighbour here has not merged it, even once the catalog dropped R;
//     after a restart R is not started at all, its state waits in Pebble).
//     A replica of L that gets a snapshot past m gets the merged range, and
//     its stale R goes once the snapshot is installed and the catalog has
//     dropped R, whether R runs here or not, leaving the tombstone m would
//     have left (mergedaway.go).
//   - A replica added to L after m gets L by snapshot past m; one added
//     before m would be a voter of L without a report, so m is not
//     proposed (the configuration must be the catalog's, unchanged).
//   - A crash: the subsume is one synced commit with its applied index;
//     the merge's effects and L's applied index are one ingested file
//     (written and ingested as a split's, splitfile.go): before the ingest
//     L replays m, after it L is merged. A staged file left behind is
//     removed at start (recoverInstalls).
//
// Which ranges merge: only a right range born of a split (Parent != 0),
// so a keyspace never has fewer ranges than it was created with
// (catalog.Mergeable). Paxos and eventual ranges do not merge: paxos
// ranges never record a span, and eventual ranges have no log to order a
// subsume in; the catalog refuses their merges.
//
// Not yet: a subsume is never undone. A subsume waits until every
// replica's node is heard from and none drains (allHeard), so a merge
// normally finishes within a round of reports; but a node of the pair
// that dies between the subsume and the merge leaves R refusing its keys
// until it comes back, or, once placement has moved its replicas, until
// the two ranges have the same replicas again (placement picks each
// range's new node on its own, so they may differ). CockroachDB aborts
// such a merge and lets R serve again; that needs the abort decided in
// L's log first (a merge L's log holds after the abort must be refused on
// every replica), and is left for later. Neighbours whose replica sets
// differ (after growth, rebalancing or repair) do not merge: CockroachDB
// relocates the right range's replicas first; we do not yet.

// mergeEveryTicks is how often driveMerges runs: once a second with the
// default tick.
const mergeEveryTicks = 10

// mergeState is the store's merge bookkeeping, owned by its goroutine.
type mergeState struct {
	// reports are the subsumes other nodes said they applied: range R ->
	// node -> subsume index (ControlSubsumed).
	reports map[uint64]map[uint64]uint64
	// held are the ranges whose leaderships balancing leaves here: both
	// ranges of a pair this node is merging.
	held map[uint64]bool
	// waiting are the subsumed ranges whose state this node holds and
	// does not run, by range, with their split states (findWaiting,
	// mergedaway.go).
	waiting map[uint64]splitState
}

// subsumedRefusal refuses a command to a subsumed range (the subsume
// itself, a retry, is answered with its index).
func (r *replica) subsumedRefusal(cmd *command.Command) (command.Result, bool) {
	if r.split.subsumedInto == 0 || cmd.Op == command.OpCatalog {
		return command.Result{}, false
	}
	return command.Result{Err: &KeyMovedError{RangeID: r.desc.ID, Span: r.split.span}}, true
}

// applyMergeCommand applies a Subsume or a Merge, and refuses every other
// command to a subsumed range. done says the command was one of those.
func (r *replica) applyMergeCommand(s *Store, w *applyWriter, index uint64, cmd *command.Command, ab *applyBatch) (command.Result, bool, error) {
	switch {
	case cmd.Op == command.OpSubsume:
		res, err := r.applySubsume(s, w, index, cmd, ab)
		return res, true, err
	case cmd.Op == command.OpMerge:
		res, err := r.applyMerge(s, w, index, cmd, ab)
		return res, true, err
	}
	res, refused := r.subsumedRefusal(cmd)
	return res, refused, nil
}

// applySubsume applies a Subsume at index (step 2 above).
func (r *replica) applySubsume(s *Store, w *applyWriter, index uint64, cmd *command.Command, ab *applyBatch) (command.Result, error) {
	var sb command.Subsume
	if err := json.Unmarshal(cmd.Value, &sb); err != nil {
		return command.Result{}, fmt.Errorf("%w: subsume command at %d: %v", codec.ErrCorrupt, index, err)
	}
	id := r.desc.ID
	refuse := func(why string) (command.Result, error) {
		return command.Result{Version: index, Err: fmt.Errorf("%w: range %d refused to be subsumed into range %d: %s", catalog.ErrMerge, id, sb.Into, why)}, nil
	}
	_, isRaft := r.Core.(*consensus.RaftCore)
	switch {
	case r.split.subsumedInto == sb.Into && sb.Into != 0:
		return command.Result{Version: r.split.subsumedAt}, nil // a retry
	case !isRaft:
		return refuse("only raft ranges merge")
	case r.split.subsumedInto != 0:
		return refuse(fmt.Sprintf("it is subsumed into range %d", r.split.subsumedInto))
	case sb.Into == 0 || sb.Into == id || sb.Into == catalog.MetaRangeID:
		return refuse("no range to merge into")
	case !r.split.known || r.split.span != (catalog.Span{Lo: sb.Lo, Hi: sb.Hi}):
		return refuse("its span is not the one its leader saw")
	}
	r.split.subsumedInto, r.split.subsumedAt = sb.Into, index
	r.splitDirty = true
	// Synced with its applied index now: this replica tells the others it
	// is subsumed, and a merge counts on it, so a crash must not undo it.
	r.Applied = index
	if err := w.commitApplied(s, r, ab, "subsumed"); err != nil {
		return command.Result{}, err
	}
	s.Logger.Info("range subsumed for a merge", "range", id, "into", sb.Into, "index", index)
	return command.Result{Version: index}, nil
}

// applyMerge applies a Merge at index (step 4 above). A merge that does
// not fit the range's state now is refused, the same way on every
// replica, and changes nothing.
func (r *replica) applyMerge(s *Store, w *applyWriter, index uint64, cmd *command.Command, ab *applyBatch) (command.Result, error) {
	var m command.Merge
	if err := json.Unmarshal(cmd.Value, &m); err != nil {
		return command.Result{}, fmt.Errorf("%w: merge command at %d: %v", codec.ErrCorrupt, index, err)
	}
	id := r.desc.ID
	refuse := func(why string) (command.Result, error) {
		return command.Result{Version: index, Err: fmt.Errorf("%w: range %d refused to merge range %d: %s", catalog.ErrMerge, id, m.Right, why)}, nil
	}
	_, isRaft := r.Core.(*consensus.RaftCore)
	switch {
	case !isRaft:
		return refuse("only raft ranges merge")
	case r.split.subsumedInto != 0:
		return refuse("it is subsumed itself")
	case !r.split.known || r.split.span.Hi != m.Lo || m.Lo == 0:
		return refuse("it does not end where the right range begins")
	case m.Right == id || m.Right <= catalog.MetaRangeID:
		return refuse("no right range")
	}
	if err := w.commitApplied(s, r, ab, "merge-committed"); err != nil {
		return command.Result{}, err
	}
	right, err := s.appliedSpan(m.Right)
	if err != nil {
		return command.Result{}, err
	}
	// The right range may have been subsumed into another range (its left
	// neighbour then, which this one merged since, subsumed itself): any
	// left neighbour may take a subsumed range, and only one ever does,
	// since a subsumed range merges nothing and a merge needs its left
	// range to end where the right one begins.
	want := splitState{known: true, span: catalog.Span{Lo: m.Lo, Hi: m.Hi}, subsumedInto: right.subsumedInto, subsumedAt: m.SubsumeIndex}
	if !s.Config.Canary.MergeWithoutWait && (right.subsumedInto == 0 || right.subsumedAt != m.SubsumeIndex || right.span != want.span) {
		// Every voter reported this before the merge was proposed: a
		// broken promise, and merging would lose R's writes here.
		return command.Result{}, fmt.Errorf("kv: range %d: the merge at %d needs range %d subsumed at %d here, and it is not (subsumed into %d at %d)",
			id, index, m.Right, m.SubsumeIndex, right.subsumedInto, right.subsumedAt)
	}
	if want.subsumedInto == 0 {
		want.subsumedInto = id // the canary's: a tombstone all the same
	}
	p := &mergePlan{left: id, right: m.Right, index: index, leftHorizon: r.dedup.horizon, tombstone: want,
		state: splitState{known: true, span: catalog.Span{Lo: r.split.span.Lo, Hi: m.Hi}, bytes: r.split.bytes,
			lastMid: r.split.lastMid, lastNew: r.split.lastNew}}
	moved, horizon, err := s.ingestMerge(p)
	if err != nil {
		return command.Result{}, fmt.Errorf("kv: range %d: the merge at %d: %w", id, index, err)
	}
	r.Applied, w.durable = index, index
	r.split = p.state
	r.forgetSizes()
	r.split.bytes += moved
	r.splitDirty = false
	// The right range's answers are now the left's too: the filter is
	// built again, and what was collected is looked at again.
	r.dedup = dedupState{horizon: horizon}
	s.stopMerged(m.Right, p.tombstone.span)
	s.Logger.Info("range merged", "range", id, "right", m.Right, "keyspace", r.desc.Keyspace, "index", index,
		"bytes", r.split.bytes, "moved_bytes", moved)
	return command.Result{Version: index}, nil
}

// stopMerged stops this node's replica of range id, which a merge here
// took: its state is gone, and its clients retry on the key's new range.
func (s *Store) stopMerged(id uint64, span catalog.Span) {
	delete(s.merges.waiting, id)
	r, ok := s.Replicas[id]
	if !ok {
		return
	}
	r.failAll(&KeyMovedError{RangeID: id, Span: span})
	delete(s.Replicas, id)
	delete(s.born, id)
	s.ordered = nil
}

// mergedAway reports whether range id was merged into another here (its
// tombstone says so), for a request that finds no replica of it.
func (s *Store) mergedAway(id uint64) *KeyMovedError {
	st, err := s.appliedSpan(id)
	if err != nil || st.subsumedInto == 0 {
		return nil
	}
	return &KeyMovedError{RangeID: id, Span: st.span}
}

// keepSubsumed reports whether reconcile keeps replica r, which the
// catalog no longer lists: it is subsumed, and no range of its keyspace
// here has taken it yet, by the merge or by a snapshot past it (step 4
// needs its state; mergedaway.go). A range of another keyspace holds
// nothing of r's, whatever its span.
func (s *Store) keepSubsumed(r *replica) bool {
	return r.split.subsumedInto != 0 && !s.takenHere(r.desc.Keyspace, r.split.span.Lo, r.desc.ID)
}

// mergeTick tells the other replicas of every subsumed range here that
// this one applied its subsume, and drives merges once a mergeEveryTicks.
// Loop only.
func (s *Store) mergeTick() {
	for _, r := range s.sortedReplicas() {
		st := r.split
		if st.subsumedInto == 0 || r.Applied < st.subsumedAt {
			continue
		}
		s.noteSubsumed(r.desc.ID, s.nodeID, st.subsumedAt)
		for _, rep := range r.desc.Replicas {
			if rep.NodeID != s.nodeID {
				s.sendControl(r.desc.ID, &consensus.ControlMessage{Kind: consensus.ControlSubsumed, From: s.nodeID, To: rep.NodeID, Commit: st.subsumedAt})
			}
		}
	}
	if s.mergesOn.Load() && s.Quiesce.ticks%mergeEveryTicks == 0 {
		s.driveMerges()
	}
}

// EnableMerges lets this store take the merge steps of the ranges it
// leads (driveMerges); without it, it takes none, and only answers the
// merges other nodes drive (it applies their subsumes and merges, and
// reports its subsumes). Call it only where something records the
// merges in the catalog (kv.Node's merge pass, MergeTasks): a merge the
// catalog never hears of leaves the right range's keys routed to a range
// that refuses them as moved, for good.
func (s *Store) EnableMerges() { s.mergesOn.Store(true) }

// noteSubsumed records that node applied range id's subsume at index.
func (s *Store) noteSubsumed(id, node, index uint64) {
	if s.merges.reports == nil {
		s.merges.reports = map[uint64]map[uint64]uint64{}
	}
	if s.merges.reports[id] == nil {
		s.merges.reports[id] = map[uint64]uint64{}
	}
	s.merges.reports[id][node] = index
}

// onSubsumed handles a ControlSubsumed.
func (s *Store) onSubsumed(rangeID uint64, m *consensus.ControlMessage) {
	s.noteSubsumed(rangeID, m.From, m.Commit)
}

// mergeBelow is the summed size below which two ranges merge; 0 if
// merges are off.
func (s *Store) mergeBelow() uint64 {
	if s.Config.MergeBelowBytes < 0 {
		return 0
	}
	if s.Config.MergeBelowBytes == 0 {
		return uint64(max(s.Config.RangeMaxBytes, 0)) / 4
	}
	return uint64(s.Config.MergeBelowBytes)
}

// driveMerges takes the merge steps of the ranges this node leads (see
// the top of the file, steps 1 and 3). Loop only.
func (s *Store) driveMerges() {
	s.merges.held = map[uint64]bool{}
	below := s.mergeBelow()
	busy := map[uint64]bool{}
	for _, l := range s.sortedReplicas() {
		ld, ok := s.cat.Ranges[l.desc.ID]
		if !ok || l.Role != consensus.RoleLeader || ld.ID == catalog.MetaRangeID || ld.Mode != catalog.ModeRaft || busy[ld.ID] {
			continue
		}
		rd := s.rightNeighbour(ld)
		if rd == nil || busy[rd.ID] {
			continue
		}
		r := s.Replicas[rd.ID]
		if r == nil {
			continue
		}
		switch {
		case r.split.subsumedInto != 0 && l.split.subsumedInto == 0:
			// Subsumed into ld, or into a range ld merged since.
			busy[ld.ID], busy[rd.ID] = true, true
			s.merges.held[ld.ID], s.merges.held[rd.ID] = true, true
			s.proposeMerge(l, ld, r, rd)
		case r.split.subsumedInto != 0 || below == 0 || s.merging(rd.ID):
		case s.mergeable(l, ld, r, rd, below) == "":
			busy[ld.ID], busy[rd.ID] = true, true
			if r.Role == consensus.RoleLeader {
				s.merges.held[ld.ID], s.merges.held[rd.ID] = true, true
				s.proposeSubsume(r, rd, ld.ID)
				continue
			}
			// Both leaderships on one node: hand L's to R's leader.
			to := r.Leader
			if to != 0 && to != s.nodeID && s.mayLead(to) && l.Core.CaughtUp(to) {
				s.wake(l)
				l.Core.TransferLeader(s.nodeID, func(id uint64) bool { return id == to })
			}
		}
	}
}

// rightNeighbour returns the catalog's range that begins where ld ends.
func (s *Store) rightNeighbour(ld *catalog.RangeDescriptor) *catalog.RangeDescriptor {
	if ld.Span.Hi == 0 {
		return nil
	}
	return s.neighbour(ld.Keyspace, func(d *catalog.RangeDescriptor) bool { return d.Span.Lo == ld.Span.Hi })
}

// leftNeighbour returns the catalog's range that ends where rd begins.
func (s *Store) leftNeighbour(rd *catalog.RangeDescriptor) *catalog.RangeDescriptor {
	if rd.Span.Lo == 0 {
		return nil
	}
	return s.neighbour(rd.Keyspace, func(d *catalog.RangeDescriptor) bool { return d.Span.Hi == rd.Span.Lo })
}

// neighbour returns the range of keyspace ks that is; a catalog's spans
// do not overlap, so at most one is, and the map's order does not matter.
// It runs on every leadership balancing pass (holdLeadership): a scan,
// not a sort.
func (s *Store) neighbour(ks string, is func(*catalog.RangeDescriptor) bool) *catalog.RangeDescriptor {
	for _, d := range s.cat.Ranges {
		if d.Keyspace == ks && is(d) {
			return d
		}
	}
	return nil
}

// mergeable says why the pair cannot merge now ("" if it can): both
// small, both at the catalog's span and unsubsumed, the same replicas
// in the catalog and in both settled Raft configurations, no split in
// flight in either log.
func (s *Store) mergeable(l *replica, ld *catalog.RangeDescriptor, r *replica, rd *catalog.RangeDescriptor, below uint64) string {
	if ok, why := catalog.Mergeable(ld, rd); !ok {
		return why
	}
	switch {
	case !s.allHeard(ld):
		return "a replica's node is silent or draining"
	case l.split.bytes+r.split.bytes >= below:
		return "too big"
	case !l.split.known || l.split.span != ld.Span || l.split.subsumedInto != 0:
		return "the left range's applied span is not the catalog's"
	case !r.split.known || r.split.span != rd.Span:
		return "the right range's applied span is not the catalog's"
	}
	if why := settled(l, ld, l.Role == consensus.RoleLeader); why != "" {
		return why
	}
	return settled(r, rd, r.Role == consensus.RoleLeader)
}

// allHeard reports whether every replica of desc is on this node or on a
// node heard from lately (beaconFreshTicks) that does not drain. A
// subsume waits for every replica's report before the merge, and the
// right range serves nothing meanwhile: subsumed with a replica's node
// down, it would refuse its keys until that node came back, or for good
// once placement moved the replica (the two ranges would no longer have
// the same replicas; a subsume is not undone), and a draining node's
// replicas are about to move. Loop only.
func (s *Store) allHeard(desc *catalog.RangeDescriptor) bool {
	for _, rep := range desc.Replicas {
		if rep.NodeID != s.nodeID && !s.mayLead(rep.NodeID) {
			return false
		}
	}
	return true
}

// settled says why range r's configuration is not desc's replicas with
// nothing pending ("" if it is). The log past applied is looked at only
// on a leader (a follower's may be behind).
func settled(r *replica, desc *catalog.RangeDescriptor, leader bool) string {
	c, ok := r.Core.(*consensus.RaftCore)
	if !ok {
		return "not a raft range"
	}
	cs := c.RawNode.ConfState()
	if cs.Joint() || len(cs.Learners) > 0 || len(cs.LearnersNext) > 0 || len(cs.Voters) != len(desc.Replicas) {
		return "its configuration is changing"
	}
	for _, v := range cs.Voters {
		if !desc.HasReplica(v.ID) {
			return "its configuration is not the catalog's"
		}
	}
	if !leader {
		return ""
	}
	pending, err := splitOrConfPending(c, r.Applied)
	if err != nil || pending {
		return "a split or configuration change is in its log"
	}
	return ""
}

// splitOrConfPending reports whether the leader's log holds a
// configuration change or a split past applied.
func splitOrConfPending(c *consensus.RaftCore, applied uint64) (bool, error) {
	last := c.Log.Last
	if applied >= last {
		return false, nil
	}
	ents, err := c.Log.Entries(applied+1, last+1, 1<<62)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ents, func(e raft.Entry) bool {
		if e.Type != raft.EntryNormal {
			return true
		}
		cmd, err := command.DecodeCommand(e.Data)
		return err != nil || cmd.Op == command.OpSplit
	}), nil
}

// proposeSubsume proposes step 1's Subsume in r's log (this node leads
// it); a refusal or a lost proposal is retried by the next pass.
func (s *Store) proposeSubsume(r *replica, rd *catalog.RangeDescriptor, into uint64) {
	sb := command.Subsume{Into: into, Lo: rd.Span.Lo, Hi: rd.Span.Hi}
	_, err := s.StartPropose(rd.ID, &command.Command{Op: command.OpSubsume, Value: catalog.MustJSON(sb)}, func(res command.Result) {
		if res.Err != nil {
			s.Logger.Debug("a subsume was refused", "range", rd.ID, "into", into, "err", res.Err)
		}
	})
	if err != nil {
		s.Logger.Debug("cannot subsume a range now", "range", rd.ID, "into", into, "err", err)
		return
	}
	s.Logger.Info("subsuming a range to merge it", "range", rd.ID, "into", into, "bytes", r.split.bytes)
}

// proposeMerge proposes step 3's Merge in l's log once every voter of l
// reported r subsumed, if l's configuration is the catalog's and
// settled. A merge proposed twice is refused the second time (l no
// longer ends where r begins).
func (s *Store) proposeMerge(l *replica, ld *catalog.RangeDescriptor, r *replica, rd *catalog.RangeDescriptor) {
	if why := settled(l, ld, true); why != "" || !l.split.known || l.split.span != ld.Span || l.split.subsumedInto != 0 {
		return
	}
	at := r.split.subsumedAt
	c := l.Core.(*consensus.RaftCore)
	m := command.Merge{Right: rd.ID, Lo: r.split.span.Lo, Hi: r.split.span.Hi, SubsumeIndex: at}
	for _, v := range c.RawNode.ConfState().Voters {
		if !s.Config.Canary.MergeWithoutWait && s.merges.reports[rd.ID][v.ID] != at {
			return // not yet
		}
		m.Voters = append(m.Voters, v.ID)
	}
	_, err := s.StartPropose(ld.ID, &command.Command{Op: command.OpMerge, Value: catalog.MustJSON(m)}, func(res command.Result) {
		if res.Err != nil {
			s.Logger.Debug("a merge was refused", "range", ld.ID, "right", rd.ID, "err", res.Err)
		}
	})
	if err == nil {
		s.Logger.Info("merging a subsumed range", "range", ld.ID, "right", rd.ID, "subsume_index", at)
	}
}

// holdLeadership reports whether balancing must leave r's leadership
// here: it is one of a pair this node is merging, or one of a mergeable
// pair whose two leaderships are both here. The second is checked on
// every pass, not only on driveMerges' (once a mergeEveryTicks): a left
// range's leadership handed here to merge it, taken by balancing back to
// its preferred leader before driveMerges ran, was handed here again by
// that leader's next pass, for as long as the pair was mergeable (three
// neighbouring pairs did so for a whole simulated minute; seed 2 of
// TestSimMergeEmptied). Loop only.
func (s *Store) holdLeadership(r *replica) bool {
	if s.merges.held[r.desc.ID] || r.split.subsumedInto != 0 {
		return true
	}
	below := s.mergeBelow()
	d, ok := s.cat.Ranges[r.desc.ID]
	if !s.mergesOn.Load() || below == 0 || !ok || d.Mode != catalog.ModeRaft {
		return false
	}
	led := func(id uint64) *replica {
		if x := s.Replicas[id]; x != nil && x.Role == consensus.RoleLeader {
			return x
		}
		return nil
	}
	if rd := s.rightNeighbour(d); rd != nil {
		if x := led(rd.ID); x != nil && s.mergeable(r, d, x, rd, below) == "" {
			return true
		}
	}
	if ld := s.leftNeighbour(d); ld != nil {
		if x := led(ld.ID); x != nil && s.mergeable(x, ld, r, d, below) == "" {
			return true
		}
	}
	return false
}

// MergeTask is a merge for kv.Node to record in the catalog: range Left,
// which this node leads, took range Right, whose span ended at Hi.
type MergeTask struct {
	Left, Right, Hi uint64
}

// MergeTasks returns the merges of the ranges this node leads that the
// catalog does not have yet: the range's applied span reaches past the
// catalog's to the end of its right neighbour's, and the replica has
// applied everything its range committed (appliedAll). A replica behind
// its log also holds a span wider than the catalog's, when the catalog
// already has a split the replica has not applied (a leader elected
// since, a split whose file is still being written): read as a merge,
// that span dropped the split's new range from the catalog, and its
// replicas with their data (found on real processes). Loop only.
func (s *Store) MergeTasks() []MergeTask {
	var out []MergeTask
	for _, r := range s.sortedReplicas() {
		desc, ok := s.cat.Ranges[r.desc.ID]
		st := r.split
		if !ok || r.Role != consensus.RoleLeader || desc.Mode != catalog.ModeRaft || !st.known ||
			st.span.Lo != desc.Span.Lo || st.span.Hi == desc.Span.Hi || desc.Span.Hi == 0 || !appliedAll(r) {
			continue
		}
		// One neighbour at a time: the range may have taken several (it
		// took one that had taken another), and the catalog follows each.
		if rd := s.rightNeighbour(desc); rd != nil && st.span.Contains(rd.Span.Lo) && (st.span.Hi == 0 || rd.Span.Hi != 0 && rd.Span.Hi <= st.span.Hi) {
			out = append(out, MergeTask{Left: desc.ID, Right: rd.ID, Hi: rd.Span.Hi})
		}
	}
	return out
}

// appliedAll reports whether leader r has applied every entry its range
// committed: it has committed an entry of its own term (so its commit
// index covers every entry committed before it led), applied up to its
// commit index, and writes no split's file. A split the catalog records
// was committed in the range's log first, so such a replica has applied
// it: a span wider than the catalog's is then a merge it applied.
func appliedAll(r *replica) bool {
	c, ok := r.Core.(*consensus.RaftCore)
	if !ok || r.splitting != nil {
		return false
	}
	hs := c.Log.HardState
	term, err := c.Log.Term(hs.Commit)
	return err == nil && term == hs.Term && r.Applied >= hs.Commit
}

// MergeWork is MergeTasks from any goroutine.
func (s *Store) MergeWork(ctx context.Context) ([]MergeTask, error) {
	var out []MergeTask
	err := s.Do(ctx, func() { out = s.MergeTasks() })
	return out, err
}

// merging reports whether range id's right neighbour is subsumed here:
// id must neither split nor be subsumed itself until it merged it (the
// merge needs id to end where the subsumed range begins, and a subsumed
// range merges nothing). Loop only.
func (s *Store) merging(id uint64) bool {
	l, ok := s.Replicas[id]
	if !ok || !l.split.known || l.split.span.Hi == 0 {
		return false
	}
	for _, r := range s.Replicas {
		if r.split.subsumedInto != 0 && r.split.span.Lo == l.split.span.Hi {
			return true
		}
	}
	return false
}
