package raft

import "fmt"

// Ready is what the core asks the application to do, in this order:
//
//  1. Persist Snapshot (if not empty), then Entries, then HardState (if
//     not empty), durably (fsync) when MustSync is set. Entries may replace
//     a suffix of the stored log from Entries[0].Index on.
//  2. Send Messages. Only after step 1: a MsgAppResp acknowledges entries,
//     a MsgVoteResp grants a vote, and a crash must not lose what the
//     message promised. (A simpler contract than etcd's, which lets a
//     leader send its MsgApp before persisting; here nothing is sent early.)
//  3. Apply Snapshot (if not empty), then CommittedEntries, in order.
//  4. Serve each ReadState once the application has applied its Index.
//  5. Call Advance.
//
// The slices belong to the application until Advance and must not be
// modified: the core may still read the entries.
type Ready struct {
	// SoftState is set when the leader or the role changed.
	*SoftState
	// HardState is set (not IsEmpty) when it must be persisted.
	HardState HardState
	// ReadStates are ReadIndex requests confirmed since the last Ready.
	ReadStates []ReadState
	// Entries are to be persisted, before sending Messages.
	Entries []Entry
	// Snapshot is to be persisted and applied.
	Snapshot Snapshot
	// CommittedEntries are to be applied; they are already persisted or
	// in Entries.
	CommittedEntries []Entry
	// Messages are to be sent after persisting.
	Messages []Message
	// MustSync says whether step 1 must be durable before step 2: it is
	// false only when nothing a message depends on changed (for instance
	// only the commit index).
	MustSync bool
}

func (rd Ready) containsUpdates() bool {
	return rd.SoftState != nil || !rd.HardState.IsEmpty() || !rd.Snapshot.IsEmpty() ||
		len(rd.Entries) > 0 || len(rd.CommittedEntries) > 0 || len(rd.Messages) > 0 || len(rd.ReadStates) > 0
}

// RawNode is a Raft node driven by one goroutine (it is not safe for
// concurrent use): call Tick, Step, Propose, ReadIndex as events happen,
// and handle each Ready before calling Advance.
type RawNode struct {
	raft     *raft
	prevSoft SoftState
	prevHard HardState
	// handed is the Ready returned by the last call of Ready, until Advance.
	handed *Ready
}

// NewRawNode builds a node from cfg and the state in cfg.Storage: a new
// node, or one restarting from its snapshot, log and HardState.
func NewRawNode(cfg Config) (*RawNode, error) {
	r, err := newRaft(cfg)
	if err != nil {
		return nil, err
	}
	return &RawNode{raft: r, prevSoft: r.softState(), prevHard: r.hardState()}, nil
}

// Tick advances the logical clock by one tick.
func (rn *RawNode) Tick() { rn.raft.tick() }

// Campaign makes the node campaign now (with a pre-vote if enabled).
func (rn *RawNode) Campaign() error {
	rn.raft.hup(campaignPreElection)
	return nil
}

// Step hands the node a message from another node.
func (rn *RawNode) Step(m Message) error { return rn.raft.Step(m) }

// Propose appends a command to the log, if this node is the leader.
// Followers refuse: the kv/ layer forwards requests to the leader, so no
// proposal travels inside a Raft message that may be silently lost. data is
// kept, not copied.
func (rn *RawNode) Propose(data []byte) error {
	return rn.raft.propose([]Entry{{Data: data}})
}

// ProposeBatch appends several commands at once: one log append and one
// MsgApp per follower for all of them. It appends all or none.
func (rn *RawNode) ProposeBatch(data [][]byte) error {
	ents := make([]Entry, len(data))
	for i, d := range data {
		ents[i].Data = d
	}
	return rn.raft.propose(ents)
}

// ProposeConfChange proposes a configuration change on the leader. It
// returns ErrInvalidConfig wrapped if the resulting configuration cannot
// run Raft (e.g. an unsafe geometry) and ErrProposalDropped wrapped if
// another change is still in progress.
func (rn *RawNode) ProposeConfChange(cc ConfChange) error {
	return rn.raft.proposeConfChange(cc)
}

// ReadIndex asks for a linearizable read. When confirmed, a ReadState
// with rctx appears in a Ready: serve the read once Index is applied.
// Only the leader serves reads; rctx should be unique per request.
func (rn *RawNode) ReadIndex(rctx []byte) error { return rn.raft.readIndex(rctx) }

// ForgetLease ends the leader's lease (ReadOnlyLeaseBased): no read is
// served from it until a heartbeat round sent after this call is
// acknowledged by a phase-2 quorum. The host calls it when the node's
// ticks stopped following time (it stopped ticking an idle range, or its
// clock cannot be vouched for): a lease is counted in ticks.
func (rn *RawNode) ForgetLease() { rn.raft.readOnly.forgetLease() }

// TransferLeader asks the leader to hand leadership to voter to: it
// catches to up, then sends it MsgTimeoutNow.
func (rn *RawNode) TransferLeader(to uint64) error { return rn.raft.transferLeader(to) }

// ReportUnreachable tells the leader that a message to id was not sent.
func (rn *RawNode) ReportUnreachable(id uint64) { rn.raft.reportUnreachable(id) }

// ReportSnapshot tells the leader whether sending a snapshot to id failed.
func (rn *RawNode) ReportSnapshot(id uint64, failed bool) { rn.raft.reportSnapshot(id, failed) }

// HasReady reports whether Ready would return anything to do.
func (rn *RawNode) HasReady() bool {
	r := rn.raft
	r.flush()
	return r.softState() != rn.prevSoft || r.hardState() != rn.prevHard ||
		r.log.unstable.snapshot != nil || len(r.log.unstable.entries) > 0 ||
		len(r.msgs) > 0 || len(r.readStates) > 0 || r.log.hasNextCommittedEnts()
}

// HasCommittedEntries reports whether committed entries wait to be handed
// out by Ready, changing nothing (HasReady flushes pending appends).
func (rn *RawNode) HasCommittedEntries() bool { return rn.raft.log.hasNextCommittedEnts() }

// Ready returns what to persist, send and apply now. Each Ready must be
// followed by Advance before the next call of Ready.
func (rn *RawNode) Ready() Ready {
	if rn.handed != nil {
		panic("raft: Ready called twice without Advance")
	}
	r := rn.raft
	r.flush()
	rd := Ready{
		Entries:          r.log.unstableEntries(),
		CommittedEntries: r.log.nextCommittedEnts(),
		Messages:         r.msgs,
		ReadStates:       r.readStates,
	}
	if ss := r.softState(); ss != rn.prevSoft {
		rd.SoftState = &ss
	}
	hs := r.hardState()
	if hs != rn.prevHard {
		rd.HardState = hs
	}
	if s := r.log.unstable.snapshot; s != nil {
		rd.Snapshot = *s
	}
	// Compared with hs, not rd.HardState, which is empty when nothing
	// changed: an empty one "changes" the term and vote to zero, and made
	// every Ready (a commit, a heartbeat, a read) wait for a sync.
	rd.MustSync = len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty() ||
		hs.Term != rn.prevHard.Term || hs.Vote != rn.prevHard.Vote
	if r.canaries.sendBeforePersist && len(rd.Messages) > 0 && rd.MustSync {
		// Planted bug: hand out the messages now and what they depend on
		// in the next Ready, as if the driver sent before persisting.
		rd = Ready{SoftState: rd.SoftState, Messages: rd.Messages, ReadStates: rd.ReadStates}
	}
	r.msgs, r.readStates = nil, nil
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.acceptApplying(rd.CommittedEntries[n-1].Index)
	}
	rn.handed = &rd
	return rd
}

// Advance tells the node that the last Ready was handled: persisted,
// sent and applied. Configuration entries among its CommittedEntries take
// effect now.
func (rn *RawNode) Advance() {
	rd := rn.takeHanded("Advance")
	rn.advance(rd, rn.appliedAfter(rd), true)
}

// appliedAfter is the applied index once rd's committed entries are all
// applied.
func (rn *RawNode) appliedAfter(rd *Ready) uint64 {
	if n := len(rd.CommittedEntries); n > 0 {
		return rd.CommittedEntries[n-1].Index
	}
	return rn.raft.log.applied
}

// Written names the writes of a Ready handed back by AdvanceWritten: its
// last entry, for Synced.
type Written struct{ Index, Term uint64 }

// AdvanceWritten is Advance for an application that goes on without
// waiting for a Ready's writes to be durable (asynchronous storage
// writes, as etcd's and CockroachDB's): the Ready's snapshot, entries and
// hard state are written where Storage reads them, but may not be synced
// yet. Its committed entries may be applied already: each is durable on a
// phase-2 quorum, which counts this node's copy only once it is synced.
//
// What counts on the writes waits for them: the application sends the
// Ready's Messages once they are durable (its eager ones, a leader's
// appends in a term that was durable before, may go at once), and then
// calls Synced with what AdvanceWritten returned. Until then a leader
// does not count its own copy of the entries toward commit. Later Readys
// may be handled meanwhile; their Messages go out after this one's, and
// their Synced calls come after this one's.
func (rn *RawNode) AdvanceWritten() Written {
	rd := rn.takeHanded("AdvanceWritten")
	rn.advance(rd, rn.appliedAfter(rd), rn.raft.canaries.countUnsynced)
	if n := len(rd.Entries); n > 0 {
		return Written{Index: rd.Entries[n-1].Index, Term: rd.Entries[n-1].Term}
	}
	return Written{}
}

// Synced tells the node that the writes of the Ready that AdvanceWritten
// returned w for are durable: a leader counts its own copy of them now.
func (rn *RawNode) Synced(w Written) {
	if w.Index > 0 {
		rn.raft.onPersisted(w.Index, w.Term)
	}
}

// AdvancePaused is Advance for an application that applied the last
// Ready's CommittedEntries only up to index applied and must finish
// something before it applies more (kv/store writes a range split's file
// off its loop): applied is at least the index before the first of them
// (or the last applied index if there were none) and at most the last.
// The entries after applied count as not handed out: the configuration
// changes among them do not take effect, and Ready hands out no committed
// entry until ResumeApply, which hands them out again from applied+1 on.
// Everything else goes on meanwhile: the node appends, votes, commits,
// sends, and confirms reads (served once the application applies their
// index). A snapshot the node takes meanwhile ends the pause: it replaces
// the state the application paused in.
func (rn *RawNode) AdvancePaused(applied uint64) {
	rd := rn.takeHanded("AdvancePaused")
	lo, hi := rn.raft.log.applied, rn.raft.log.applied
	if !rd.Snapshot.IsEmpty() {
		lo, hi = rd.Snapshot.Metadata.Index, rd.Snapshot.Metadata.Index
	}
	if n := len(rd.CommittedEntries); n > 0 {
		lo, hi = rd.CommittedEntries[0].Index-1, rd.CommittedEntries[n-1].Index
	}
	if applied < lo || applied > hi {
		panic(fmt.Sprintf("raft: AdvancePaused(%d) outside the entries handed out [%d, %d]", applied, lo, hi))
	}
	rn.advance(rd, applied, true)
	rn.raft.log.pauseApplyAt(applied)
}

// ResumeApply ends the pause AdvancePaused began: the next Ready hands
// out the committed entries after the applied index.
func (rn *RawNode) ResumeApply() { rn.raft.log.resumeApply() }

// ApplyPaused reports whether the application paused its apply
// (AdvancePaused) and has not resumed.
func (rn *RawNode) ApplyPaused() bool { return rn.raft.log.applyPaused }

func (rn *RawNode) takeHanded(caller string) *Ready {
	rd := rn.handed
	if rd == nil {
		panic("raft: " + caller + " without Ready")
	}
	rn.handed = nil
	return rd
}

// advance takes in the handled Ready rd whose committed entries were
// applied up to applied; durable says whether its writes are synced.
func (rn *RawNode) advance(rd *Ready, applied uint64, durable bool) {
	r := rn.raft
	if rd.SoftState != nil {
		rn.prevSoft = *rd.SoftState
	}
	if !rd.HardState.IsEmpty() {
		rn.prevHard = rd.HardState
	}
	if !rd.Snapshot.IsEmpty() {
		r.log.stableSnapTo(rd.Snapshot.Metadata.Index)
		r.log.appliedTo(rd.Snapshot.Metadata.Index)
	}
	if n := len(rd.Entries); n > 0 {
		last := rd.Entries[n-1]
		r.log.stableTo(last.Index, last.Term)
		if durable {
			r.onPersisted(last.Index, last.Term)
		}
	}
	var done []Entry
	for i, e := range rd.CommittedEntries {
		if e.Index > applied {
			break
		}
		done = rd.CommittedEntries[:i+1]
	}
	if n := len(done); n > 0 {
		for _, e := range done {
			if e.Type == EntryConfChange {
				r.applyConfChange(e)
			}
		}
		r.log.appliedTo(done[n-1].Index)
		if r.state == StateLeader {
			r.reduceUncommittedSize(payloadsSize(done))
		}
	}
	r.maybeAutoLeave()
}

// Status is a snapshot of a node's state, for tests and the status page.
type Status struct {
	ID uint64
	HardState
	SoftState
	Applied uint64
	// Config is the applied configuration, e.g. "majority(1 2 3)".
	Config string
	// Progress is the leader's view of each member (nil on followers).
	Progress       map[uint64]Progress
	LeadTransferee uint64
}

// Status returns the node's current state.
func (rn *RawNode) Status() Status {
	r := rn.raft
	st := Status{
		ID: r.id, HardState: r.hardState(), SoftState: r.softState(),
		Applied: r.log.applied, Config: r.conf.String(), LeadTransferee: r.leadTransferee,
	}
	if r.state == StateLeader {
		st.Progress = make(map[uint64]Progress, len(r.prs))
		for id, pr := range r.prs {
			cp := *pr
			cp.inflights = nil
			st.Progress[id] = cp
		}
	}
	return st
}

// ConfState returns the applied configuration. With a snapshot taken at
// the applied index, it is the snapshot's ConfState.
func (rn *RawNode) ConfState() ConfState { return rn.raft.conf.cs.Clone() }

func (st Status) String() string {
	return fmt.Sprintf("%d %s term=%d vote=%d lead=%d commit=%d applied=%d config=%s",
		st.ID, st.State, st.Term, st.Vote, st.Lead, st.Commit, st.Applied, st.Config)
}
