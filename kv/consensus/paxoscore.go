package consensus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/storage"
)

// ProtocolPaxos labels the metrics of paxos ranges.
const ProtocolPaxos = "paxos"

// PaxosCore is a paxos range's Multi-Paxos core: paxos.RawNode over
// PaxosLog.
//
// Snapshots. The core keeps its last snapshot (it hands it to lagging
// acceptors, and puts it in promises), whose data is a handle: the node
// holds the range's state as of the snapshot's slot, as a Pebble snapshot,
// for others to pull (kv/store). Compact needs that state as of the very
// slot it compacts to: replaying commands onto a later state is not the
// same state (a compare-and-swap may decide otherwise). So the core
// compacts only to the applied slot, right after its effects are
// committed, and opens the snapshot then. Pebble keeps the snapshot point
// but not the held state; on restart, the applied slot is at or past the
// snapshot point, and the core opens the state at the applied slot again
// (compacting to it if it is past). A held snapshot nobody reads expires;
// the next Compact then opens a new one (at the applied slot, compacting
// to it), as it does when the snapshot's handle names another node (one
// this replica installed).
type PaxosCore struct {
	h   *Host
	rg  Range
	Log *PaxosLog
	rn  *paxos.RawNode
	// rd is the Ready taken by ready, until advance.
	rd paxos.Ready
	// chosenBytes weighs the entries handed to the application since the
	// last compaction or installed snapshot (0 after a restart): Compact
	// compacts by bytes as well as by slots.
	chosenBytes uint64
	// The role and leader last reported, to report changes only.
	role     Role
	leader   uint64
	reported bool
}

var _ Core = (*PaxosCore)(nil)

// membershipOf is the founding configuration of a paxos range.
func membershipOf(desc *catalog.RangeDescriptor) paxos.Membership {
	m := paxos.Membership{Geometry: desc.Geometry}
	for _, rep := range desc.Replicas {
		m.Voters = append(m.Voters, quorum.Node{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
	}
	return m
}

// NewPaxosCore restarts the range's core from Pebble, founding the range
// first if this replica is a founding one with no state yet: every
// founding replica starts from the same paxos.Bootstrap of the
// descriptor's replicas. A replica added later (rg.Founder false) with no
// state starts as a joining acceptor, with no configuration at all: the
// descriptor's replicas are the catalog's intent, not the configuration
// in force, and a replica that took them for it could run phase 1 with
// quorums that miss what the range chose (paxos/reconfig.go). It stays a
// joiner across restarts until the leader's snapshot founds its log.
func NewPaxosCore(h *Host, rg Range) (*PaxosCore, error) {
	desc := rg.Desc
	applied := *rg.Applied
	log, ents, err := LoadPaxosLog(h.DB, desc.ID)
	if err != nil {
		return nil, err
	}
	if !log.Founded && rg.Founder {
		if err := foundPaxosRange(h.DB, log, desc); err != nil {
			return nil, err
		}
	}
	ps := paxos.PersistentState{HardState: log.HardState, Snapshot: log.Snap, Entries: ents}
	snapSlot := ps.Snapshot.Slot
	// The core needs its snapshot's data: it hands the snapshot to lagging
	// acceptors and puts it in promises, and an acceptor given one without
	// data would install an empty range. Data that cannot be held again
	// is a fault of the range, which then starts failed instead of serving
	// without it.
	rebuildFailed := func(err error) error {
		return NewRangeFault(FaultOpen, fmt.Errorf("%w (rebuilding the snapshot of its log at restart)", err))
	}
	switch {
	case applied < snapSlot:
		return nil, fmt.Errorf("%w: paxos range %d applied slot %d is below its snapshot point %d", codec.ErrCorrupt, desc.ID, applied, snapSlot)
	case snapSlot > 0 && applied == snapSlot:
		if ps.Snapshot.Data, err = h.OpenSnapshot(desc.ID, applied); err != nil {
			return nil, rebuildFailed(err)
		}
	}
	cfg := h.Paxos
	cfg.ID = h.NodeID
	cfg.Applied = applied
	cfg.ReadLease = rg.ReadLease
	cfg.Rand = rand.New(rand.NewPCG(h.Seed(), desc.ID))
	c := &PaxosCore{h: h, rg: rg, Log: log}
	if c.rn, err = paxos.NewRawNode(cfg, ps); err != nil {
		return nil, fmt.Errorf("kv: range %d: %w", desc.ID, err)
	}
	if snapSlot > 0 && applied > snapSlot {
		b := h.DB.NewBatch()
		defer b.Close()
		if err := c.compactTo(b, applied); err != nil {
			var f *RangeFault
			if errors.As(err, &f) {
				return nil, rebuildFailed(f.Err)
			}
			return nil, err
		}
		if err := b.Commit(false); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func foundPaxosRange(db *storage.DB, log *PaxosLog, desc *catalog.RangeDescriptor) error {
	ps := paxos.Bootstrap(membershipOf(desc))
	b := db.NewBatch()
	defer b.Close()
	if err := log.SetSnapshot(b, ps.Snapshot); err != nil {
		return err
	}
	return b.Commit(true)
}

func (c *PaxosCore) Protocol() string { return ProtocolPaxos }
func (c *PaxosCore) Tick()            { c.rn.Tick() }

// ForgetLease ends the leader's read lease (paxos.RawNode.ForgetLease).
func (c *PaxosCore) ForgetLease() { c.rn.ForgetLease() }

func (c *PaxosCore) Step(m PeerMessage) error {
	if m.Paxos == nil {
		return fmt.Errorf("kv: a %s message for paxos range %d", m.Kind(), c.rg.Desc.ID)
	}
	return c.rn.Step(*m.Paxos)
}

func (c *PaxosCore) Propose(data []byte) error   { return c.rn.Propose(data) }
func (c *PaxosCore) ReadIndex(rctx []byte) error { return c.rn.ReadIndex(rctx) }

func (c *PaxosCore) CampaignAtStart(self uint64, first bool) {
	voters := c.rn.Status().Config.Voters
	if (len(voters) == 1 && voters[0].ID == self) || (first && c.Log.HardState.Promised.IsZero()) {
		c.rn.Campaign()
	}
}

func (c *PaxosCore) HasReady() bool { return c.rn.HasReady() }

func (c *PaxosCore) HasCommittedEntries() bool { return c.rn.HasCommittedEntries() }

func (c *PaxosCore) Ready() Ready {
	c.rd = c.rn.Ready()
	rd := &c.rd
	out := Ready{MustSync: rd.MustSync}
	if role := paxosRole(rd.Role); !c.reported || role != c.role || rd.Leader != c.leader {
		c.role, c.leader, c.reported = role, rd.Leader, true
		out.Soft = &SoftState{Leader: rd.Leader, Role: role}
	}
	if rd.Snapshot != nil {
		out.Snapshot = &RangeSnapshot{Index: rd.Snapshot.Slot, Data: rd.Snapshot.Data}
		c.chosenBytes = 0
	}
	if len(rd.Messages) > 0 {
		out.Messages = make([]PeerMessage, len(rd.Messages))
		for i := range rd.Messages {
			out.Messages[i] = PeerMessage{Paxos: &rd.Messages[i]}
		}
		splitEager(&out, func(m PeerMessage) bool { return eagerPaxos(m.Paxos, rd.HardState, c.Log.HardState) })
	}
	if len(rd.CommittedEntries) > 0 {
		out.Committed = make([]CommittedEntry, len(rd.CommittedEntries))
		for i, e := range rd.CommittedEntries {
			c.chosenBytes += uint64(len(e.Data))
			out.Committed[i].Index = e.Slot
			if e.Type == paxos.EntryNormal && len(e.Data) > 0 {
				out.Committed[i].Cmd = e.Data
			}
		}
	}
	for _, rs := range rd.ReadStates {
		out.Reads = append(out.Reads, ReadState{Index: rs.Index, Ctx: rs.Context})
	}
	return out
}

func paxosRole(r paxos.Role) Role {
	switch r {
	case paxos.Leader:
		return RoleLeader
	case paxos.Candidate:
		return RoleCandidate
	}
	return RoleFollower
}

// Persist writes the snapshot point, the accepted entries and the hard
// state. The snapshot's data is the store's.
func (c *PaxosCore) Persist(b *storage.Batch) error {
	rd := &c.rd
	if rd.Snapshot != nil {
		if err := c.Log.SetSnapshot(b, *rd.Snapshot); err != nil {
			return err
		}
	}
	if err := c.Log.SetEntries(b, rd.Entries); err != nil {
		return err
	}
	if rd.HardState != c.Log.HardState {
		return c.Log.SetHardState(b, rd.HardState)
	}
	return nil
}

func (c *PaxosCore) Advance() {
	c.rn.Advance(c.rd)
	c.rd = paxos.Ready{}
}

func (c *PaxosCore) Status() Status {
	return Status{Term: c.Log.HardState.Promised.Round, Commit: c.Log.HardState.Commit, Joining: !c.Log.Founded}
}

// Configs returns the configurations that govern the slots after the
// applied one (paxos.RawNode.Configs): none on a joiner.
func (c *PaxosCore) Configs() []paxos.ConfigState { return c.rn.Configs() }

// Membership is the configuration desc's replicas make: what the range
// driver proposes when the catalog moves a replica.
func Membership(desc *catalog.RangeDescriptor) paxos.Membership { return membershipOf(desc) }

// ProposeConfig proposes m as the range's configuration
// (paxos.RawNode.ProposeConfig).
func (c *PaxosCore) ProposeConfig(m paxos.Membership) error { return c.rn.ProposeConfig(m) }

// ConfigChangePending: a configuration change is proposed and not chosen,
// or chosen and not yet in force (paxos.RawNode.ConfigChangePending).
func (c *PaxosCore) ConfigChangePending() bool { return c.rn.ConfigChangePending() }

// Joined reports, on a leader, whether acceptor id has answered it as
// one that knows the configuration: a replica that joined empty has
// installed its snapshot (paxos.RawNode.Joined).
func (c *PaxosCore) Joined(id uint64) bool { return c.rn.Joined(id) }

// Voter reports whether self votes in the configuration that governs the
// next slot this node fills or learns: a leader that is not has been
// removed and must hand its leadership to one that is.
func (c *PaxosCore) Voter(self uint64) bool {
	return slices.ContainsFunc(c.rn.Status().Config.Voters, func(n quorum.Node) bool { return n.ID == self })
}

// Compact compacts to the applied slot once the log holds more than
// LogTruncateEntries+LogKeepEntries applied slots, or entries that weigh
// more than LogTruncateBytes+LogKeepBytes have been applied since the
// last compaction (counted from a restart), or at once when a
// joining acceptor needs a snapshot and this leader has none
// (paxos.RawNode.NeedsSnapshot). Unlike Raft it keeps
// none of them (LogKeepEntries only delays compaction): the snapshot data
// can only be held at the applied slot (see PaxosCore). It compacts at
// once, whatever the log's length, when this node no longer holds its
// snapshot's data.
func (c *PaxosCore) Compact(batch func() *storage.Batch, applied uint64) error {
	cfg := c.h
	stale := c.rn.SnapshotData() != nil && !cfg.SnapshotHeld(c.rn.SnapshotData())
	// A joiner waits for a snapshot this leader never took.
	wanted := c.rn.NeedsSnapshot()
	heavy := cfg.LogTruncateBytes > 0 && c.chosenBytes >= cfg.LogTruncateBytes+cfg.LogKeepBytes
	if !stale && !wanted && !heavy && applied < c.Log.Snap.Slot+cfg.LogTruncateEntries+cfg.LogKeepEntries {
		return nil
	}
	return c.compactTo(batch(), applied)
}

// compactTo compacts the log to slot, the applied slot, whose data is
// committed in Pebble. Data that cannot be held for a snapshot is a
// fault of the range, found before anything changes in the core or b.
func (c *PaxosCore) compactTo(b *storage.Batch, slot uint64) error {
	data, err := c.h.OpenSnapshot(c.rg.Desc.ID, slot)
	if err != nil {
		return NewRangeFault(FaultCompact, err)
	}
	snap, err := c.rn.Compact(slot, data)
	if err != nil {
		return fmt.Errorf("kv: range %d: %w", c.rg.Desc.ID, err)
	}
	c.chosenBytes = 0
	return c.Log.SetSnapshot(b, snap)
}

// CaughtUp: any voter that knows the configuration can take over (see
// TransferLeader); a joiner waiting for its snapshot cannot.
func (c *PaxosCore) CaughtUp(id uint64) bool { return c.rn.Joined(id) }

// TransferLeader asks the lowest-ID voter other than self that may take
// it to run phase 1 now (paxos.RawNode.TransferLeader). Any voter can take
// over: a new leader learns what it lacks from the promises.
func (c *PaxosCore) TransferLeader(self uint64, may func(uint64) bool) bool {
	var to uint64
	for _, v := range c.rn.Status().Config.Voters {
		if v.ID != self && may(v.ID) && (to == 0 || v.ID < to) {
			to = v.ID
		}
	}
	return to != 0 && c.rn.TransferLeader(to) == nil
}

// ReportUnreachable: nothing to do; a Paxos leader resends what is not
// acknowledged on its own (paxos/leader.go).
func (c *PaxosCore) ReportUnreachable(uint64) {}

// LearnCommit: a Paxos heartbeat marks chosen only the slots this acceptor
// holds at the leader's ballot, so an acceptor that is behind learns what
// it can and catches up when the range wakes.
func (c *PaxosCore) LearnCommit(self, leader, term, commit uint64) error {
	return c.rn.Step(paxos.Message{Type: paxos.MsgHeartbeat, From: leader, To: self,
		Ballot: paxos.Ballot{Round: term, NodeID: leader}, Commit: commit})
}

// Quiescible: this node leads, with nothing in flight and every slot it
// knows chosen and applied (paxos.RawNode.Idle), and every other voter
// reported holding and knowing chosen all of them (paxos.RawNode.
// AllCaughtUp), as Raft's Quiescible asks of its followers: a range that
// quiesced with a voter behind (one cut off a moment ago) would leave it
// behind until the next write, with one copy fewer of its data.
func (c *PaxosCore) Quiescible(self uint64) ([]uint64, uint64, uint64, bool) {
	if !c.rn.Idle() || !c.rn.AllCaughtUp() {
		return nil, 0, 0, false
	}
	st := c.rn.Status()
	var followers []uint64
	for _, v := range st.Config.Voters {
		if v.ID != self {
			followers = append(followers, v.ID)
		}
	}
	return followers, c.Log.HardState.Promised.Round, st.Commit, true
}
