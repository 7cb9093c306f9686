package consensus

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// ProtocolRaft labels the metrics of Raft ranges.
const ProtocolRaft = "raft"

// RaftCore is a range's Raft core: raft.RawNode over RaftLog.
type RaftCore struct {
	h       *Host
	rg      Range
	Log     *RaftLog
	RawNode *raft.RawNode
	// rd is the Ready taken by ready, until advance.
	rd raft.Ready
	// state is the last role reported, to count elections.
	state raft.StateType
	// lastSnap is the last snapshot handed to raft for a follower. It is
	// handed out again while this node holds its data and the log still
	// goes on from its index, so that a leader probing a follower that is
	// still pulling a snapshot does not open a new one each time.
	lastSnap raft.Snapshot
	// synced is the hard state known durable: Log.HardState, but for
	// what rounds not synced yet wrote (AdvanceWritten). Eager messages
	// must carry its term. advances counts Readys advanced, syncedAt is
	// the count synced was taken at: a Synced for an older Ready (after a
	// later one was synced by a split's commit) leaves it.
	synced             raft.HardState
	advances, syncedAt uint64
}

var (
	_ Core      = (*RaftCore)(nil)
	_ AsyncCore = (*RaftCore)(nil)
)

// AsyncCore is a Core whose Ready the store may advance before the
// round's batch is synced: raft ranges (raft.RawNode.AdvanceWritten).
type AsyncCore interface {
	Core
	// AdvanceWritten is Advance for a Ready whose writes are committed to
	// Pebble but maybe not synced; the store calls Synced with what it
	// returns once they are, after it sent the Ready's Messages.
	AdvanceWritten() Written
	Synced(w Written)
}

// Written is what AdvanceWritten returns, for Synced.
type Written struct {
	raft raft.Written
	hs   raft.HardState
	at   uint64 // RaftCore.advances
}

// NewRaftCore opens the range's Raft log (bootstrapping a new one with the
// descriptor's replicas as founding voters) and starts its core. It sets
// *rg.applied from Pebble.
func NewRaftCore(h *Host, rg Range) (*RaftCore, error) {
	desc := rg.Desc
	log, err := LoadRaftLog(h.DB, desc.ID)
	if err != nil {
		return nil, err
	}
	// A range's founding replicas bootstrap it with the same configuration.
	// Meta is founded only by the node that founds the cluster (in
	// bootstrap); on other nodes it starts empty and learns everything
	// from meta's leader once that adds it.
	if log.Last == 0 && log.HardState.IsEmpty() && desc.ID != catalog.MetaRangeID && rg.Founder {
		if err := bootstrapRaftRange(h.DB, log, desc); err != nil {
			return nil, err
		}
		*rg.Applied = 1
	}
	c := &RaftCore{h: h, rg: rg, Log: log, synced: log.HardState}
	log.BuildSnapshot = c.snapshot
	cfg := h.Raft
	cfg.ID = h.NodeID
	cfg.Storage = log
	cfg.Applied = *rg.Applied
	cfg.Logger = h.RaftLogger.With("range", desc.ID)
	cfg.Rand = rand.New(rand.NewPCG(h.Seed(), desc.ID))
	if rg.ReadLease {
		cfg.ReadOnly = raft.ReadOnlyLeaseBased
	}
	if c.RawNode, err = raft.NewRawNode(cfg); err != nil {
		return nil, fmt.Errorf("kv: range %d: %w", desc.ID, err)
	}
	return c, nil
}

// ConfStateOf is the founding configuration of a range.
func ConfStateOf(desc *catalog.RangeDescriptor) raft.ConfState {
	cs := raft.ConfState{Geometry: desc.Geometry}
	for _, rep := range desc.Replicas {
		cs.Voters = append(cs.Voters, raft.Member{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
	}
	return cs
}

func bootstrapRaftRange(db *storage.DB, log *RaftLog, desc *catalog.RangeDescriptor) error {
	hs, ents, err := raft.BootstrapState(ConfStateOf(desc))
	if err != nil {
		return fmt.Errorf("kv: bootstrap range %d: %w", desc.ID, err)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := log.Append(b, ents); err != nil {
		return err
	}
	if err := log.SetHardState(b, hs); err != nil {
		return err
	}
	// Entry 1 holds only the founding configuration: nothing to apply, and
	// counting it applied lets the core start with its configuration (and
	// a lone voter campaign at once).
	if err := b.Set(storage.AppliedStateKey(desc.ID), AppliedState(1)); err != nil {
		return err
	}
	return b.Commit(true)
}

func (c *RaftCore) Protocol() string { return ProtocolRaft }
func (c *RaftCore) Tick()            { c.RawNode.Tick() }
func (c *RaftCore) ForgetLease()     { c.RawNode.ForgetLease() }

func (c *RaftCore) Step(m PeerMessage) error {
	if m.Raft == nil {
		return fmt.Errorf("kv: a %s message for raft range %d", m.Kind(), c.rg.Desc.ID)
	}
	return c.RawNode.Step(*m.Raft)
}

func (c *RaftCore) Propose(data []byte) error   { return c.RawNode.Propose(data) }
func (c *RaftCore) ReadIndex(rctx []byte) error { return c.RawNode.ReadIndex(rctx) }

func (c *RaftCore) CampaignAtStart(self uint64, first bool) {
	cs := c.RawNode.ConfState()
	alone := len(cs.Voters) == 1 && cs.Voters[0].ID == self && !cs.Joint()
	// BootstrapState founds a range at term 1; every election raises it.
	if alone || (first && c.Log.HardState.Term <= 1) {
		_ = c.RawNode.Campaign() // a refusal just means an election is under way
	}
}

func (c *RaftCore) HasReady() bool { return c.RawNode.HasReady() }

func (c *RaftCore) HasCommittedEntries() bool { return c.RawNode.HasCommittedEntries() }

func (c *RaftCore) Ready() Ready {
	c.rd = c.RawNode.Ready()
	rd := &c.rd
	out := Ready{MustSync: rd.MustSync}
	if rd.SoftState != nil {
		out.Soft = &SoftState{Leader: rd.SoftState.Lead, Role: raftRole(rd.SoftState.State)}
	}
	if !rd.Snapshot.IsEmpty() {
		out.Snapshot = &RangeSnapshot{Index: rd.Snapshot.Metadata.Index, Data: rd.Snapshot.Data}
	}
	if len(rd.Messages) > 0 {
		out.Messages = make([]PeerMessage, len(rd.Messages))
		for i := range rd.Messages {
			out.Messages[i] = PeerMessage{Raft: &rd.Messages[i]}
		}
		after := rd.HardState
		if after.IsEmpty() {
			after = c.Log.HardState
		}
		splitEager(&out, func(m PeerMessage) bool { return eagerRaft(m.Raft, after, c.synced) })
	}
	if len(rd.CommittedEntries) > 0 {
		out.Committed = make([]CommittedEntry, len(rd.CommittedEntries))
		for i, e := range rd.CommittedEntries {
			out.Committed[i].Index = e.Index
			if e.Type == raft.EntryNormal && len(e.Data) > 0 {
				out.Committed[i].Cmd = e.Data
			}
			// Configuration entries take effect in the core at Advance.
		}
	}
	for _, rs := range rd.ReadStates {
		out.Reads = append(out.Reads, ReadState{Index: rs.Index, Ctx: rs.RequestCtx})
	}
	return out
}

func raftRole(st raft.StateType) Role {
	switch st {
	case raft.StateLeader:
		return RoleLeader
	case raft.StateCandidate:
		return RoleCandidate
	case raft.StatePreCandidate:
		return RolePreCandidate
	}
	return RoleFollower
}

// Persist writes the snapshot point, then the entries, then the hard
// state, as raft.Ready asks. The snapshot's data is the store's.
func (c *RaftCore) Persist(b *storage.Batch) error {
	rd := &c.rd
	if !rd.Snapshot.IsEmpty() {
		if err := c.Log.InstallSnapshot(b, rd.Snapshot.Metadata); err != nil {
			return err
		}
	}
	if err := c.Log.Append(b, rd.Entries); err != nil {
		return err
	}
	if !rd.HardState.IsEmpty() {
		return c.Log.SetHardState(b, rd.HardState)
	}
	return nil
}

func (c *RaftCore) Advance() {
	c.RawNode.Advance()
	c.advanced()
	c.synced, c.syncedAt = c.Log.HardState, c.advances
}

func (c *RaftCore) AdvanceWritten() Written {
	rw := c.RawNode.AdvanceWritten()
	c.advanced()
	return Written{raft: rw, hs: c.Log.HardState, at: c.advances}
}

func (c *RaftCore) Synced(w Written) {
	c.RawNode.Synced(w.raft)
	if w.at > c.syncedAt {
		c.synced, c.syncedAt = w.hs, w.at
	}
}

// AdvancePaused is Advance for a Ready whose committed entries were
// applied only up to index applied: the apply stops there until
// ResumeApply (raft.RawNode.AdvancePaused; kv/store writes a split's file
// meanwhile). Raft ranges only.
func (c *RaftCore) AdvancePaused(applied uint64) {
	c.RawNode.AdvancePaused(applied)
	c.advanced()
	// Its round synced when the split committed (kv/store's commitSoFar).
	c.synced, c.syncedAt = c.Log.HardState, c.advances
}

// ResumeApply: the next Ready hands out the committed entries after the
// applied index again.
func (c *RaftCore) ResumeApply() { c.RawNode.ResumeApply() }

// advanced finishes an Advance.
func (c *RaftCore) advanced() {
	c.advances++
	// The leader waits in StateSnapshot for the follower's answer or for
	// ReportSnapshot. The transport cannot tell whether a snapshot or the
	// answer to it arrived, so every snapshot is reported sent once handed
	// to it: the leader then probes the follower, which accepts the probe
	// if the snapshot arrived and rejects it otherwise, and a rejection
	// sends a new snapshot. Without this, one lost message (the snapshot
	// or the acknowledgement) stalled the follower for good.
	for _, m := range c.rd.Messages {
		if m.Type == raft.MsgSnap {
			c.RawNode.ReportSnapshot(m.To, false /* failed */)
		}
	}
	c.rd = raft.Ready{}
}

func (c *RaftCore) Status() Status {
	return Status{Term: c.Log.HardState.Term, Commit: c.Log.HardState.Commit}
}

// Compact drops applied log entries beyond what slow followers are likely
// to need; a follower further behind gets a snapshot. An entry that
// cannot be read is a fault of the range, found before anything is
// written to the batch.
func (c *RaftCore) Compact(batch func() *storage.Batch, applied uint64) error {
	index, err := c.compactTo(applied)
	if err != nil || index == 0 {
		return err
	}
	if _, err := c.Log.Term(index); err != nil {
		return NewRangeFault(FaultCompact, fmt.Errorf("kv: range %d: the term of entry %d: %w", c.rg.Desc.ID, index, err))
	}
	return c.Log.Truncate(batch(), index, c.RawNode.ConfState())
}

// compactTo returns the index to truncate the log to once entries up to
// applied are applied, or 0 to leave it: the log is truncated once its
// applied entries are more than LogTruncateEntries+LogKeepEntries, or
// weigh more than LogTruncateBytes+LogKeepBytes, down to the last
// LogKeepEntries applied entries, fewer if they weigh more than
// LogKeepBytes. Bytes matter as much as entries: 10,000 entries of 256
// KiB values are 2.5 GiB of log, which would sit on disk and make a new
// replica catch up by replaying it through the memtables, where a
// snapshot streams in bounded memory.
func (c *RaftCore) compactTo(applied uint64) (uint64, error) {
	cfg, trunc := c.h, c.Log.Trunc.Index
	if applied <= trunc {
		return 0, nil
	}
	sizes, total, err := c.Log.Sizes()
	if err != nil {
		return 0, NewRangeFault(FaultCompact, fmt.Errorf("kv: range %d: the sizes of its log entries: %w", c.rg.Desc.ID, err))
	}
	n := min(applied-trunc, uint64(len(sizes))) // applied entries in the log
	for _, sz := range sizes[n:] {
		total -= uint64(sz) // the few entries not applied yet
	}
	if n < cfg.LogTruncateEntries+cfg.LogKeepEntries && total < cfg.LogTruncateBytes+cfg.LogKeepBytes {
		return 0, nil
	}
	keep, kept := uint64(0), uint64(0)
	for keep < min(n, cfg.LogKeepEntries) {
		sz := uint64(sizes[n-keep-1])
		if kept+sz > cfg.LogKeepBytes {
			break
		}
		keep, kept = keep+1, kept+sz
	}
	if keep == n {
		return 0, nil
	}
	return trunc + n - keep, nil
}

// CaughtUp: voter id's match index is the leader's last index.
func (c *RaftCore) CaughtUp(id uint64) bool {
	pr, ok := c.RawNode.Status().Progress[id]
	return ok && pr.Match == c.Log.Last
}

// TransferLeader hands leadership to the voter other than self that may
// take it with the highest match index (Raft hands it over once that one
// holds the leader's log; until then the range takes no proposal).
func (c *RaftCore) TransferLeader(self uint64, may func(uint64) bool) bool {
	var best, bestMatch uint64
	progress := c.RawNode.Status().Progress
	for _, v := range c.RawNode.ConfState().Voters {
		pr, ok := progress[v.ID]
		if v.ID == self || !ok || !may(v.ID) {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = v.ID, pr.Match
		}
	}
	return best != 0 && c.RawNode.TransferLeader(best) == nil
}

// snapshot is raft.Storage's Snapshot: the range's state at the applied
// index, for a follower the log can no longer catch up. Its data is a
// handle; the follower pulls the range's data in chunks (kv/store). raft
// panics on any error but raft.ErrSnapshotTemporarilyUnavailable, after
// which it leaves the follower behind and asks again later; a snapshot
// that cannot be opened (the store is stopping) is a fault of the range
// that it serves despite, opened again only after a wait (snapshotFault).
func (c *RaftCore) snapshot() (raft.Snapshot, error) {
	f := c.rg.SnapFault
	now := c.h.Ticks()
	f.Asked = now
	if f.Err != nil && now < f.RetryAt {
		return raft.Snapshot{}, fmt.Errorf("%w: %v", raft.ErrSnapshotTemporarilyUnavailable, f.Err)
	}
	snap, err := c.buildSnapshot()
	if err != nil {
		f.Failed(now, err)
		c.h.SnapshotFailed()
		c.h.Logger.Warn("a follower needs a snapshot of the range that cannot be built; the range serves, the follower stays behind",
			"range", c.rg.Desc.ID, "keyspace", c.rg.Desc.Keyspace, "attempts", f.failures, "retry_in_ticks", f.RetryAt-now, "err", err)
		return raft.Snapshot{}, fmt.Errorf("%w: %v", raft.ErrSnapshotTemporarilyUnavailable, err)
	}
	if f.Err != nil {
		c.h.Logger.Info("the range's snapshot could be built again", "range", c.rg.Desc.ID, "attempts", f.failures)
	}
	*f = SnapshotFault{}
	return snap, nil
}

// buildSnapshot returns a snapshot of the range at its applied index,
// the last one again while it is still held, reaches the log and carries
// the present configuration: one taken before a configuration change
// (a learner added since) would be refused by the very replica it is for,
// which is not in it, and the leader would send it again and again.
func (c *RaftCore) buildSnapshot() (raft.Snapshot, error) {
	if last := c.lastSnap; !last.IsEmpty() && last.Metadata.Index >= c.Log.Trunc.Index &&
		last.Metadata.ConfState.Equal(c.RawNode.ConfState()) && c.h.SnapshotHeld(last.Data) {
		return last, nil
	}
	applied := *c.rg.Applied
	term, err := c.Log.Term(applied)
	if err != nil {
		return raft.Snapshot{}, err
	}
	data, err := c.h.OpenSnapshot(c.rg.Desc.ID, applied)
	if err != nil {
		return raft.Snapshot{}, err
	}
	c.lastSnap = raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: applied, Term: term, ConfState: c.RawNode.ConfState()},
		Data:     data,
	}
	return c.lastSnap, nil
}

// ReportUnreachable: a leader replicating to the follower probes it.
func (c *RaftCore) ReportUnreachable(to uint64) { c.RawNode.ReportUnreachable(to) }

func (c *RaftCore) LearnCommit(self, leader, term, commit uint64) error {
	// The leader quiesced when this replica held its whole log; the cap
	// only keeps a message that broke that promise from crashing the node.
	commit = min(commit, c.Log.Last)
	return c.RawNode.Step(raft.Message{Type: raft.MsgHeartbeat, From: leader, To: self, Term: term, Commit: commit})
}

// Quiescible: this node leads, is a voter of the configuration it
// applied, every entry is committed and applied here, and every voter and
// learner holds the whole log and was heard from recently (so it knows
// the commit index from the last heartbeat). A leader a configuration
// change removed never quiesces its followers: its replica is deleted
// soon (catalog.CatalogOp.Left), and followers quiesced under it would
// wait for it forever, its node still alive.
func (c *RaftCore) Quiescible(self uint64) ([]uint64, uint64, uint64, bool) {
	st := c.RawNode.Status()
	if st.State != raft.StateLeader || c.Log.HardState.Commit != c.Log.Last || st.Applied != c.Log.Last ||
		!slices.ContainsFunc(c.RawNode.ConfState().Voters, func(m raft.Member) bool { return m.ID == self }) {
		return nil, 0, 0, false
	}
	var followers []uint64
	for id, pr := range st.Progress {
		if id == self {
			continue
		}
		if pr.Match != c.Log.Last || !pr.RecentActive || pr.State != raft.StateReplicate {
			return nil, 0, 0, false
		}
		followers = append(followers, id)
	}
	slices.Sort(followers)
	return followers, c.Log.HardState.Term, c.Log.HardState.Commit, true
}
