package paxos

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Role is what a node is doing in the group.
type Role uint8

const (
	// Follower: an acceptor and learner that defers to the leader it hears.
	Follower Role = iota
	// Candidate: running phase 1 for every open slot at its own ballot.
	Candidate
	// Leader: phase 1 done; sends Accepts for one slot after another at
	// the same ballot.
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Ready is the work a RawNode hands to its caller. The caller MUST, in
// this order:
//
//  1. persist HardState, Entries and Snapshot (if MustSync, durably),
//  2. send Messages,
//  3. load Snapshot into the application if set, then apply
//     CommittedEntries in order, and serve each ReadState once the
//     application has applied its Index,
//  4. call Advance(rd).
//
// Sending before persisting can break a promise in a crash. Ready hands
// its slices over: the RawNode keeps no reference to them.
type Ready struct {
	Role   Role
	Leader uint64
	// HardState is the state to persist; MustSync says its promise,
	// Entries or Snapshot changed since the last Ready. A change of its
	// Commit alone needs no sync: a commit index lost in a crash is
	// learned again, and what was applied after it is lost with it (the
	// caller's writes reach the disk in order).
	HardState HardState
	MustSync  bool
	// Entries are accepted entries to persist, each replacing what its
	// slot held.
	Entries []Entry
	// Snapshot, if set, came from the leader: persist it, drop the entries
	// up to its Slot, and load it into the application.
	Snapshot *Snapshot
	Messages []Message
	// CommittedEntries are chosen entries to apply, in slot order, with no
	// gaps, starting right after the last applied slot.
	CommittedEntries []Entry
	ReadStates       []ReadState
}

// ReadState says that a read requested with Context may be served once
// the application has applied slot Index.
type ReadState struct {
	Index   uint64
	Context []byte
}

// Status is a node's state at a glance.
type Status struct {
	ID       uint64
	Role     Role
	Leader   uint64
	Promised Ballot
	Commit   uint64
	Applied  uint64
	LastSlot uint64
	// Config governs the slot after Commit; empty on a joiner.
	Config Membership
	// Joining: this node knows no configuration yet (it joined a running
	// group empty) and waits for the leader's snapshot.
	Joining bool
}

// RawNode is a Multi-Paxos node: acceptor, learner, and when it wins
// phase 1, leader. It is not safe for concurrent use.
type RawNode struct {
	id  uint64
	cfg Config
	rng *rand.Rand

	role     Role
	promised Ballot
	log      *slotLog
	configs  *configSet
	maxSeen  Ballot // highest ballot heard of, to skip past when campaigning
	leader   uint64 // the leader this node last heard from, 0 if none

	electionElapsed  int
	electionTimeout  int // randomized, in [ElectionTicks, 2*ElectionTicks)
	heartbeatElapsed int
	// startTicks counts the ticks since the node started, up to
	// ElectionTicks; startGuard says it had promised a ballot before it
	// started: with leases on it then grants no Prepare until startTicks
	// reaches ElectionTicks (lease.go, rule 2).
	startTicks int
	startGuard bool

	ballot Ballot // own ballot, as candidate or leader
	cand   *candidate
	lead   *leader

	msgs       []Message
	unstable   []Entry
	snapOut    *Snapshot
	readStates []ReadState
	prevHS     HardState
	// prevRole and prevLeader are the last Ready's: a change of either
	// makes a Ready, so the caller learns of a step-down that changed
	// nothing else (a refusal's higher ballot).
	prevRole   Role
	prevLeader uint64
}

// NewRawNode restarts a node from what it persisted (Bootstrap for a new
// group). A node added to a running group starts from the zero
// PersistentState, or from what it persisted since, and joins: it knows
// no configuration until the leader's snapshot arrives (reconfig.go). It
// keeps the slices of ps.
func NewRawNode(cfg Config, ps PersistentState) (*RawNode, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ps.HardState.Promised.Less(maxAcceptedBallot(ps.Entries)) && !cfg.canary.forgetPromise {
		return nil, fmt.Errorf("%w: persisted entries accepted above the persisted promise %v", ErrCorrupt, ps.HardState.Promised)
	}
	configs, err := newConfigSet(uint64(cfg.MaxOpenSlots), ps.Snapshot.Configs)
	if err != nil {
		return nil, err
	}
	if g := cfg.canary.joinerGuess; g != nil && !configs.known() {
		// canary: the joiner takes the configuration it was told about
		// for the one in force, from slot 1 on.
		if configs, err = newConfigSet(uint64(cfg.MaxOpenSlots), []ConfigState{{Effective: 1, Membership: *g}}); err != nil {
			return nil, err
		}
	}
	if !configs.known() && (ps.Snapshot.Slot > 0 || ps.HardState.Commit > 0) {
		return nil, fmt.Errorf("%w: a snapshot at slot %d or commit %d without a configuration", ErrCorrupt, ps.Snapshot.Slot, ps.HardState.Commit)
	}
	r := &RawNode{id: cfg.ID, cfg: cfg, rng: cfg.Rand, configs: configs, startGuard: !ps.HardState.Promised.IsZero()}
	r.promised = ps.HardState.Promised
	if cfg.canary.forgetPromise {
		r.promised = Ballot{} // canary: the promise never reached the disk
	}
	r.log = newSlotLog(ps, cfg.Applied)
	for s := ps.Snapshot.Slot + 1; s <= r.log.commit; s++ {
		if e, _ := r.log.get(s); e.Type == EntryConfig {
			r.configs.add(s, e.Data)
		}
	}
	r.prevHS = r.hardState()
	r.becomeFollower(0)
	return r, nil
}

func maxAcceptedBallot(es []Entry) Ballot {
	var b Ballot
	for _, e := range es {
		b = maxBallot(b, e.Ballot)
	}
	return b
}

func (r *RawNode) hardState() HardState {
	return HardState{Promised: r.promised, Commit: r.log.commit}
}

// Status returns the node's state.
func (r *RawNode) Status() Status {
	st := Status{
		ID: r.id, Role: r.role, Leader: r.leader, Promised: r.promised,
		Commit: r.log.commit, Applied: r.log.applied, LastSlot: r.log.last(),
		Joining: !r.configs.known(),
	}
	if !st.Joining {
		st.Config = r.configs.at(r.log.commit + 1).Membership
	}
	return st
}

// Configs returns the configurations that govern the slots after the
// applied one, in the order they take effect, the first governing
// applied+1: the configuration in force for the application and every
// one chosen since, in force or not yet. None on a joiner. A node that
// leaves every one of them out is no longer counted on by this node's
// view of the group. The slices are copies.
func (r *RawNode) Configs() []ConfigState {
	if !r.configs.known() {
		return nil
	}
	var out []ConfigState
	for _, a := range r.configs.from(r.log.applied + 1) {
		m := a.Membership
		m.Voters = slices.Clone(m.Voters)
		out = append(out, ConfigState{Effective: a.Effective, Membership: m})
	}
	return out
}

// ConfigChangePending reports, on a leader, whether a configuration
// change is under way: proposed and not yet chosen, or chosen and not
// yet in force for the slots the leader fills next. ProposeConfig refuses
// another one until it is not.
func (r *RawNode) ConfigChangePending() bool {
	if r.role != Leader {
		return false
	}
	l := r.lead
	return l.configInFlight || slices.ContainsFunc(l.pending, func(e Entry) bool { return e.Type == EntryConfig }) ||
		r.configs.last().Effective > l.next
}

// Joined reports, on a leader, whether acceptor id has answered it, since
// it took over and since the last configuration that added id, as an
// acceptor that knows the configuration: one that joined empty has
// installed a snapshot. False on a node that does not lead.
func (r *RawNode) Joined(id uint64) bool {
	return r.role == Leader && (id == r.id || r.lead.joined[id])
}

// NeedsSnapshot reports, on a leader, that a joining acceptor waits for a
// snapshot and the leader has none to send (it never compacted its log):
// the application should Compact at its applied slot. Compact clears it.
func (r *RawNode) NeedsSnapshot() bool {
	return r.role == Leader && r.lead.needSnapshot
}

// Tick advances logical time by one tick.
func (r *RawNode) Tick() {
	if r.startTicks < r.cfg.ElectionTicks {
		r.startTicks++
	}
	if r.role == Leader {
		r.tickLeader()
		return
	}
	r.electionElapsed++
	// electionTimeout is never below ElectionTicks, and electionElapsed
	// counts from the last admission and never passes startTicks: a
	// campaign by timeout keeps the lease promises (lease.go).
	if r.electionElapsed >= r.electionTimeout && r.isVoter() {
		r.campaign(Ballot{} /* not a transfer */)
	}
}

// Campaign starts phase 1 now instead of waiting for a timeout, e.g. to
// hand leadership to this node. A leader stays leader, and a joiner, which
// knows no configuration to prepare with, does nothing. With leases on, a
// node bound not to promise anyone but the leader it hears (or restarted
// lately) campaigns only once that ends (lease.go): its own acceptor's
// promise must keep the lease of that leader, and it cannot tell whether
// that leader, or one it acknowledged before restarting, still serves
// reads.
func (r *RawNode) Campaign() {
	if r.role == Leader || !r.configs.known() {
		return
	}
	if r.cfg.ReadLease && r.bound(r.id) {
		// Campaign at the first tick the promise allows, unless the
		// leader is heard again meanwhile.
		r.electionTimeout = r.cfg.ElectionTicks
		return
	}
	r.campaign(Ballot{} /* not a transfer */)
}

// TransferLeader asks voter to to take over from this leader now (a
// graceful stop), rather than after an election timeout: it runs phase 1
// at once, and acceptors grant it although they still hear this leader.
// This node goes on leading until the new ballot reaches it. With to = 0
// the leader picks the lowest-ID voter it heard from lately (any other
// voter if it heard from none since its last quorum check). It fails on
// a node that does not lead, or when to is not another voter.
func (r *RawNode) TransferLeader(to uint64) error {
	if r.role != Leader {
		return ErrNotLeader
	}
	m := r.configs.at(r.log.commit + 1).Membership
	if to == 0 {
		for _, v := range m.Voters {
			if v.ID != r.id && r.lead.active[v.ID] && (to == 0 || v.ID < to) {
				to = v.ID
			}
		}
		for _, v := range m.Voters {
			if to == 0 && v.ID != r.id {
				to = v.ID
			}
		}
		if to == 0 {
			return fmt.Errorf("paxos: node %d has no other voter to hand leadership to", r.id)
		}
	}
	if to == r.id || !m.hasVoter(to) {
		return fmt.Errorf("paxos: node %d cannot hand leadership to node %d: not another voter", r.id, to)
	}
	// The target's Prepares pass the acceptors' deferral, so they may
	// promise it at any time from now on, a delayed one even after they
	// acknowledged a later round: the lease ends for the rest of the
	// ballot, even if the transfer fails.
	r.lead.lease.ended = true
	r.send(Message{Type: MsgTimeoutNow, To: to, Ballot: r.ballot})
	return nil
}

// ForgetLease ends the leader's read lease (Config.ReadLease): no read is
// served from it until a heartbeat round sent after this call is
// acknowledged by a phase-2 quorum. The host calls it when it stops
// ticking the node (an idle range quiesces), or when the node's ticks
// stop following time for any other reason: a lease is counted in ticks.
// It does nothing on a node that does not lead.
func (r *RawNode) ForgetLease() {
	if r.role == Leader {
		r.lead.lease.forget()
	}
}

// isVoter reports whether this node votes in a configuration it knows of
// for the slots ahead; others have no business running phase 1.
func (r *RawNode) isVoter() bool {
	if !r.configs.known() {
		return false // a joiner: it does not know the configuration
	}
	for _, a := range r.configs.from(r.log.commit + 1) {
		if a.Membership.hasVoter(r.id) {
			return true
		}
	}
	return false
}

// Step hands the node a message addressed to it. The node keeps the
// slices of m (entry data, snapshot) rather than copying them.
func (r *RawNode) Step(m Message) error {
	if err := r.checkMessage(m); err != nil {
		return err
	}
	if m.Reject {
		r.maxSeen = maxBallot(r.maxSeen, m.Hint)
	}
	switch m.Type {
	case MsgPrepare:
		r.handlePrepare(m)
	case MsgAccept:
		r.handleAccept(m)
	case MsgHeartbeat:
		r.handleHeartbeat(m)
	case MsgSnapshot:
		r.handleSnapshot(m)
	case MsgTimeoutNow:
		// Only from the leader this node follows, at the ballot it
		// promised: a stale one must not start a needless election.
		if r.role == Follower && m.From == r.leader && m.Ballot == r.promised && r.isVoter() {
			r.campaign(m.Ballot)
		}
	case MsgPromise:
		if r.role == Candidate && m.Ballot == r.ballot {
			r.handlePromise(m)
		}
	case MsgAccepted, MsgHeartbeatResp:
		if r.role != Leader || m.Ballot != r.ballot {
			return nil
		}
		if m.Reject {
			// Someone promised a higher ballot: another proposer ran phase
			// 1 past ours. Stop proposing; the timeouts pick who goes next.
			if r.ballot.Less(m.Hint) {
				r.becomeFollower(0)
			}
			return nil
		}
		r.handleAck(m)
	default:
		return fmt.Errorf("paxos: unknown message type %v", m.Type)
	}
	return nil
}

// Propose asks the leader to choose data in a slot of its own. It is
// chosen and delivered later, or lost if leadership changes first. The
// node keeps data: the caller must not modify it afterwards.
func (r *RawNode) Propose(data []byte) error {
	return r.propose(EntryNormal, data)
}

// ProposeConfig asks the leader to change the configuration to m; once
// chosen in slot s it governs the slots from s+MaxOpenSlots on. One change
// at a time: ErrConfigChangePending until the previous one governs.
func (r *RawNode) ProposeConfig(m Membership) error {
	if err := checkMembership(m); err != nil {
		return err
	}
	if r.role == Leader && (r.lead.configInFlight || r.configs.last().Effective > r.lead.next) {
		return ErrConfigChangePending
	}
	return r.propose(EntryConfig, m.Marshal())
}

// ReadIndex asks for a linearizable read. Once a phase-2 quorum confirms
// this node still leads, or at once if its lease holds (Config.ReadLease),
// a ReadState with ctx comes out of Ready; ctx should be unique among
// pending reads.
func (r *RawNode) ReadIndex(ctx []byte) error {
	if r.role != Leader {
		return ErrNotLeader
	}
	return r.readIndex(ctx)
}

// HasCommittedEntries reports whether chosen entries wait to be handed
// out by Ready.
func (r *RawNode) HasCommittedEntries() bool {
	return r.log.applied < r.log.commit && !r.log.applyPaused
}

// HasReady reports whether Ready has anything to hand out.
func (r *RawNode) HasReady() bool {
	return len(r.msgs) > 0 || len(r.unstable) > 0 || r.snapOut != nil ||
		len(r.readStates) > 0 || r.hardState() != r.prevHS || r.role != r.prevRole || r.leader != r.prevLeader ||
		(r.log.applied < r.log.commit && !r.log.applyPaused) || (r.role == Leader && r.lead.sent < r.sendLimit())
}

// Ready returns the work to do; see Ready for the contract.
func (r *RawNode) Ready() Ready {
	if r.role == Leader {
		r.flushAccepts()
	}
	hs := r.hardState()
	rd := Ready{
		Role: r.role, Leader: r.leader, HardState: hs,
		Entries: r.unstable, Snapshot: r.snapOut, Messages: r.msgs,
		ReadStates:       r.readStates,
		CommittedEntries: r.log.toApply(r.cfg.MaxSizePerMsg),
	}
	rd.MustSync = hs.Promised != r.prevHS.Promised || len(rd.Entries) > 0 || rd.Snapshot != nil
	r.prevHS, r.prevRole, r.prevLeader = hs, r.role, r.leader
	r.unstable, r.snapOut, r.msgs, r.readStates = nil, nil, nil, nil
	return rd
}

// Advance tells the node that rd has been handled.
func (r *RawNode) Advance(rd Ready) {
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.applied = max(r.log.applied, rd.CommittedEntries[n-1].Slot)
	}
}

// AdvancePaused is Advance for an application that applied rd's
// CommittedEntries only up to slot applied and must finish something
// before it applies more (kv/store writes a range split's file off its
// loop): applied is at least the slot before the first of them (or the
// last applied slot if there were none) and at most the last. The
// entries after applied count as not handed out, and Ready hands out no
// chosen entry until ResumeApply, which hands them out again from
// applied+1 on. Everything else goes on meanwhile: the node promises,
// accepts, learns what is chosen, leads, and confirms reads (served once
// the application applies their slot). A snapshot from the leader ends
// the pause: it replaces the state the application paused in.
func (r *RawNode) AdvancePaused(rd Ready, applied uint64) {
	lo, hi := r.log.applied, r.log.applied
	if n := len(rd.CommittedEntries); n > 0 {
		lo, hi = rd.CommittedEntries[0].Slot-1, rd.CommittedEntries[n-1].Slot
	}
	if applied < lo || applied > hi {
		panic(fmt.Sprintf("paxos: AdvancePaused(%d) outside the entries handed out [%d, %d]", applied, lo, hi))
	}
	r.log.applied = max(r.log.applied, applied)
	r.log.applyPaused = true
}

// ResumeApply ends the pause AdvancePaused began: the next Ready hands
// out the chosen entries after the applied slot.
func (r *RawNode) ResumeApply() { r.log.applyPaused = false }

// ApplyPaused reports whether the application paused its apply
// (AdvancePaused) and has not resumed.
func (r *RawNode) ApplyPaused() bool { return r.log.applyPaused }

// ConfigsAt returns the configurations that govern the slots after slot
// as the slots up to slot chose them, in the order they take effect:
// the configuration in force at slot+1 and those chosen in the alpha-1
// slots up to slot, which take effect later. Configurations chosen after
// slot are left out, so every node that knows the chosen prefix up to
// slot returns the same, whatever it learned since: what a group founded
// at slot, a range split off at slot (kv/store), starts with. Slot must
// be chosen and not compacted away; none on a joiner. The slices are
// copies.
func (r *RawNode) ConfigsAt(slot uint64) []ConfigState {
	if !r.configs.known() {
		return nil
	}
	var out []ConfigState
	for _, a := range r.configs.from(slot + 1) {
		if a.Effective > slot+r.configs.alpha {
			continue // chosen in a slot after slot
		}
		m := a.Membership
		m.Voters = slices.Clone(m.Voters)
		out = append(out, ConfigState{Effective: a.Effective, Membership: m})
	}
	return out
}

// Compact drops the slots up to slot, which must be applied, keeping data
// as the snapshot that replaces them; lagging nodes get it instead. The
// caller persists the returned Snapshot. It keeps data. Compacting to the
// snapshot's slot again only replaces its data.
func (r *RawNode) Compact(slot uint64, data []byte) (Snapshot, error) {
	if slot > r.log.applied {
		return Snapshot{}, fmt.Errorf("paxos: compact to slot %d past applied %d", slot, r.log.applied)
	}
	if !r.configs.known() {
		return Snapshot{}, fmt.Errorf("paxos: node %d joins and has nothing to compact yet", r.id)
	}
	if r.lead != nil {
		r.lead.needSnapshot = false
	}
	snap := Snapshot{Slot: slot, Configs: r.configs.states(slot), Data: data}
	r.log.compact(snap)
	r.configs.trim(slot)
	return r.log.snap, nil
}

// SnapshotData is the data of the node's snapshot (nil before any).
func (r *RawNode) SnapshotData() []byte { return r.log.snap.Data }

func (r *RawNode) send(m Message) {
	m.From = r.id
	r.msgs = append(r.msgs, m)
}

func (r *RawNode) resetElectionTimeout() {
	r.electionElapsed = 0
	r.electionTimeout = r.cfg.ElectionTicks + r.rng.IntN(r.cfg.ElectionTicks)
}

// becomeFollower makes the node defer to leader (0: unknown).
func (r *RawNode) becomeFollower(leader uint64) {
	r.role, r.leader = Follower, leader
	r.cand, r.lead = nil, nil
	r.resetElectionTimeout()
}

// onCommit is called when slots from..to join the chosen prefix: it takes
// in the configurations chosen there and closes the leader's open slots.
func (r *RawNode) onCommit(from, to uint64) {
	for s := from; s <= to; s++ {
		e, ok := r.log.get(s)
		if !ok {
			panic(fmt.Sprintf("paxos: node %d: slot %d chosen without an entry", r.id, s))
		}
		if e.Type == EntryConfig {
			r.configs.add(s, e.Data)
		}
		if r.lead != nil {
			r.lead.chosen(s, e)
		}
	}
}

// AllCaughtUp reports whether this node leads and every other voter of
// the configurations in force answered last with a commit index at least
// this node's: it holds every slot chosen so far and knows them chosen.
// A voter that has not answered at this ballot, or is down, is not caught
// up. Nothing about safety depends on it; the node layer quiesces a range
// only once it holds (a range quiesced with a voter behind would leave it
// behind until the next write, one copy short meanwhile).
func (r *RawNode) AllCaughtUp() bool {
	if r.role != Leader {
		return false
	}
	for _, id := range voters(r.configs.from(r.log.commit + 1)) {
		if c, ok := r.lead.commits[id]; id != r.id && (!ok || c < r.log.commit) {
			return false
		}
	}
	return true
}

// Idle reports whether this node leads and has nothing in flight: no
// proposal waiting, no slot open (every slot it knows is chosen and
// applied), no read waiting for its confirmation, no joiner waiting for
// its snapshot. The node layer may then
// stop ticking the group until something happens (quiescence); nothing
// about safety depends on it.
func (r *RawNode) Idle() bool {
	if r.role != Leader {
		return false
	}
	l := r.lead
	return len(l.pending) == 0 && len(l.acks) == 0 && len(l.reads.pending) == 0 && !l.configInFlight && len(l.joining) == 0 &&
		r.log.commit == r.log.last() && r.log.applied == r.log.commit
}
