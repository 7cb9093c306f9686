package kv

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/quorumkv/quorumkv/kv/consensus"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// protocolRaft labels the metrics of Raft ranges.
const protocolRaft = "raft"

// raftCore is a range's Raft core: raft.RawNode over raftLog.
type raftCore struct {
	s   *Store
	r   *replica
	log *consensus.RaftLog
	rn  *raft.RawNode
	// rd is the Ready taken by ready, until advance.
	rd raft.Ready
	// state is the last role reported, to count elections.
	state raft.StateType
}

var _ consensus.Core = (*raftCore)(nil)

// newRaftCore opens the range's Raft log (bootstrapping a new one with the
// descriptor's replicas as founding voters) and starts its core. It sets
// r.applied from Pebble.
func newRaftCore(s *Store, r *replica) (*raftCore, error) {
	desc := r.desc
	log, err := consensus.LoadRaftLog(s.db, desc.ID)
	if err != nil {
		return nil, err
	}
	// A range's founding replicas bootstrap it with the same configuration.
	// Meta is founded only by the node that founds the cluster (in
	// bootstrap); on other nodes it starts empty and learns everything
	// from meta's leader once that adds it.
	if log.Last == 0 && log.HardState.IsEmpty() && desc.ID != catalog.MetaRangeID {
		if err := bootstrapRaftRange(s.db, log, desc); err != nil {
			return nil, err
		}
		r.applied = 1
	}
	c := &raftCore{s: s, r: r, log: log}
	log.BuildSnapshot = c.snapshot
	cfg := s.cfg.Raft
	cfg.ID = s.nodeID
	cfg.Storage = log
	cfg.Applied = r.applied
	cfg.Logger = s.raftLogger.With("range", desc.ID)
	cfg.Rand = rand.New(rand.NewPCG(s.rng.Uint64(), desc.ID))
	if c.rn, err = raft.NewRawNode(cfg); err != nil {
		return nil, fmt.Errorf("kv: range %d: %w", desc.ID, err)
	}
	return c, nil
}

// confStateOf is the founding configuration of a range.
func confStateOf(desc *catalog.RangeDescriptor) raft.ConfState {
	cs := raft.ConfState{Geometry: desc.Geometry}
	for _, rep := range desc.Replicas {
		cs.Voters = append(cs.Voters, raft.Member{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
	}
	return cs
}

func bootstrapRaftRange(db *storage.DB, log *consensus.RaftLog, desc *catalog.RangeDescriptor) error {
	hs, ents, err := raft.BootstrapState(confStateOf(desc))
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
	if err := b.Set(storage.AppliedStateKey(desc.ID), appliedState(1)); err != nil {
		return err
	}
	return b.Commit(true)
}

func (c *raftCore) Protocol() string { return protocolRaft }
func (c *raftCore) Tick()            { c.rn.Tick() }

func (c *raftCore) Step(m consensus.PeerMessage) error {
	if m.Raft == nil {
		return fmt.Errorf("kv: a %s message for raft range %d", m.Kind(), c.r.desc.ID)
	}
	return c.rn.Step(*m.Raft)
}

func (c *raftCore) Propose(data []byte) error   { return c.rn.Propose(data) }
func (c *raftCore) ReadIndex(rctx []byte) error { return c.rn.ReadIndex(rctx) }

func (c *raftCore) CampaignAtStart(self uint64, first bool) {
	cs := c.rn.ConfState()
	alone := len(cs.Voters) == 1 && cs.Voters[0].ID == self && !cs.Joint()
	// BootstrapState founds a range at term 1; every election raises it.
	if alone || (first && c.log.HardState.Term <= 1) {
		_ = c.rn.Campaign() // a refusal just means an election is under way
	}
}

func (c *raftCore) HasReady() bool { return c.rn.HasReady() }

func (c *raftCore) Ready() consensus.Ready {
	c.rd = c.rn.Ready()
	rd := &c.rd
	out := consensus.Ready{MustSync: rd.MustSync}
	if rd.SoftState != nil {
		out.Soft = &consensus.SoftState{Leader: rd.SoftState.Lead, Role: raftRole(rd.SoftState.State)}
	}
	if !rd.Snapshot.IsEmpty() {
		out.Snapshot = &consensus.RangeSnapshot{Index: rd.Snapshot.Metadata.Index, Data: rd.Snapshot.Data}
	}
	if len(rd.Messages) > 0 {
		out.Messages = make([]consensus.PeerMessage, len(rd.Messages))
		for i := range rd.Messages {
			out.Messages[i] = consensus.PeerMessage{Raft: &rd.Messages[i]}
		}
	}
	if len(rd.CommittedEntries) > 0 {
		out.Committed = make([]consensus.CommittedEntry, len(rd.CommittedEntries))
		for i, e := range rd.CommittedEntries {
			out.Committed[i].Index = e.Index
			if e.Type == raft.EntryNormal && len(e.Data) > 0 {
				out.Committed[i].Cmd = e.Data
			}
			// Configuration entries take effect in the core at Advance.
		}
	}
	for _, rs := range rd.ReadStates {
		out.Reads = append(out.Reads, consensus.ReadState{Index: rs.Index, Ctx: rs.RequestCtx})
	}
	return out
}

func raftRole(st raft.StateType) consensus.Role {
	switch st {
	case raft.StateLeader:
		return consensus.RoleLeader
	case raft.StateCandidate:
		return consensus.RoleCandidate
	case raft.StatePreCandidate:
		return consensus.RolePreCandidate
	}
	return consensus.RoleFollower
}

// persist writes the snapshot point, then the entries, then the hard
// state, as raft.Ready asks. The snapshot's data is the store's.
func (c *raftCore) Persist(b *storage.Batch) error {
	rd := &c.rd
	if !rd.Snapshot.IsEmpty() {
		if err := c.log.InstallSnapshot(b, rd.Snapshot.Metadata); err != nil {
			return err
		}
	}
	if err := c.log.Append(b, rd.Entries); err != nil {
		return err
	}
	if !rd.HardState.IsEmpty() {
		return c.log.SetHardState(b, rd.HardState)
	}
	return nil
}

func (c *raftCore) Advance() {
	c.rn.Advance()
	// The leader waits in StateSnapshot for the follower's answer or for
	// ReportSnapshot. The transport cannot tell whether a snapshot or the
	// answer to it arrived, so every snapshot is reported sent once handed
	// to it: the leader then probes the follower, which accepts the probe
	// if the snapshot arrived and rejects it otherwise, and a rejection
	// sends a new snapshot. Without this, one lost message (the snapshot
	// or the acknowledgement) stalled the follower for good.
	for _, m := range c.rd.Messages {
		if m.Type == raft.MsgSnap {
			c.rn.ReportSnapshot(m.To, false /* failed */)
		}
	}
	c.rd = raft.Ready{}
}

func (c *raftCore) Status() consensus.Status {
	return consensus.Status{Term: c.log.HardState.Term, Commit: c.log.HardState.Commit}
}

// compact drops applied log entries beyond what slow followers are likely
// to need; a follower further behind gets a snapshot. An entry that
// cannot be read is a fault of the range, found before anything is
// written to the batch.
func (c *raftCore) Compact(batch func() *storage.Batch, applied uint64) error {
	cfg := c.s.cfg
	if applied < c.log.Trunc.Index+cfg.LogTruncateEntries+cfg.LogKeepEntries {
		return nil
	}
	index := applied - cfg.LogKeepEntries
	if _, err := c.log.Term(index); err != nil {
		return newRangeFault(faultCompact, fmt.Errorf("kv: range %d: the term of entry %d: %w", c.r.desc.ID, index, err))
	}
	return c.log.Truncate(batch(), index, c.rn.ConfState())
}

// transferLeader hands leadership to the voter other than self with the
// highest match index among those recently active.
func (c *raftCore) TransferLeader(self uint64) bool {
	var best, bestMatch uint64
	progress := c.rn.Status().Progress
	for _, v := range c.rn.ConfState().Voters {
		pr, ok := progress[v.ID]
		if v.ID == self || !ok || !pr.RecentActive {
			continue
		}
		if best == 0 || pr.Match > bestMatch {
			best, bestMatch = v.ID, pr.Match
		}
	}
	return best != 0 && c.rn.TransferLeader(best) == nil
}

// snapshot is raft.Storage's Snapshot: the range's data at the applied
// index, for a follower the log can no longer catch up. raft panics on
// any error but raft.ErrSnapshotTemporarilyUnavailable, after which it
// leaves the follower behind and asks again later; a snapshot that cannot
// be built (over MaxSnapshotBytes, a read error) is a fault of the range
// that it serves despite, built again only after a wait (snapshotFault).
func (c *raftCore) snapshot() (raft.Snapshot, error) {
	f := &c.r.snapshotFault
	now := c.s.quiesce.ticks
	f.asked = now
	if f.err != nil && now < f.retryAt {
		return raft.Snapshot{}, fmt.Errorf("%w: %v", raft.ErrSnapshotTemporarilyUnavailable, f.err)
	}
	snap, err := c.buildSnapshot()
	if err != nil {
		f.failed(now, err)
		c.s.faulted(faultSnapshot)
		c.s.logger.Warn("a follower needs a snapshot of the range that cannot be built; the range serves, the follower stays behind",
			"range", c.r.desc.ID, "keyspace", c.r.desc.Keyspace, "attempts", f.failures, "retry_in_ticks", f.retryAt-now, "err", err)
		return raft.Snapshot{}, fmt.Errorf("%w: %v", raft.ErrSnapshotTemporarilyUnavailable, err)
	}
	if f.err != nil {
		c.s.logger.Info("the range's snapshot could be built again", "range", c.r.desc.ID, "attempts", f.failures)
	}
	*f = snapshotFault{}
	return snap, nil
}

func (c *raftCore) buildSnapshot() (raft.Snapshot, error) {
	applied := c.r.applied
	term, err := c.log.Term(applied)
	if err != nil {
		return raft.Snapshot{}, err
	}
	data, err := c.s.rangeData(c.r.desc.ID)
	if err != nil {
		return raft.Snapshot{}, err
	}
	return raft.Snapshot{
		Metadata: raft.SnapshotMetadata{Index: applied, Term: term, ConfState: c.rn.ConfState()},
		Data:     data,
	}, nil
}

// metaCore returns meta's Raft core (meta is always a Raft group).
func metaCore(r *replica) *raftCore {
	c, ok := r.core.(*raftCore)
	if !ok {
		panic(fmt.Sprintf("kv: range %d (meta) runs %s, not raft", r.desc.ID, r.core.Protocol()))
	}
	return c
}

// reportUnreachable: a leader replicating to the follower probes it.
func (c *raftCore) ReportUnreachable(to uint64) { c.rn.ReportUnreachable(to) }

func (c *raftCore) LearnCommit(self, leader, term, commit uint64) error {
	// The leader quiesced when this replica held its whole log; the cap
	// only keeps a message that broke that promise from crashing the node.
	commit = min(commit, c.log.Last)
	return c.rn.Step(raft.Message{Type: raft.MsgHeartbeat, From: leader, To: self, Term: term, Commit: commit})
}

// quiescible: this node leads, every entry is committed and applied here,
// and every voter and learner holds the whole log and was heard from
// recently (so it knows the commit index from the last heartbeat).
func (c *raftCore) Quiescible(self uint64) ([]uint64, uint64, uint64, bool) {
	st := c.rn.Status()
	if st.State != raft.StateLeader || c.log.HardState.Commit != c.log.Last || st.Applied != c.log.Last {
		return nil, 0, 0, false
	}
	var followers []uint64
	for id, pr := range st.Progress {
		if id == self {
			continue
		}
		if pr.Match != c.log.Last || !pr.RecentActive || pr.State != raft.StateReplicate {
			return nil, 0, 0, false
		}
		followers = append(followers, id)
	}
	slices.Sort(followers)
	return followers, c.log.HardState.Term, c.log.HardState.Commit, true
}
