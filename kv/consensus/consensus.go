package consensus

import (
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// Core is a range's consensus core as the store drives it: a
// protocol's RawNode together with its log on Pebble. RaftCore runs Raft
// (meta and raft keyspaces), PaxosCore runs Multi-Paxos (paxos
// keyspaces). Everything else about a replica, the store's rounds, the
// batching of persists and syncs, the transport, the apply of commands,
// the waiters and the reads, is written once against this interface
// (DESIGN.md §4). Only the store's goroutine calls it.
//
// One round of the store, for every core whose hasReady is true:
//
//  1. rd := ready(); persist adds the core's state and entries to the
//     round's batch, which is committed (synced if any core's
//     rd.mustSync); the store then loads rd.snapshot's data into the
//     range (kv/store's snapshot install);
//  2. the store sends rd.messages;
//  3. it applies rd.committed in order, and serves rd.reads once the
//     replica has applied their index;
//  4. advance.
//
// A round whose cores that must sync are all AsyncCores does not wait for
// its sync: it sends rd.eager, applies, and advances with AdvanceWritten;
// rd.messages wait until a sync covers the round, and then the cores hear
// Synced (kv/store/syncs.go).
type Core interface {
	// protocol names the protocol for metrics: "raft" or "paxos".
	Protocol() string
	Tick()
	// ForgetLease ends a leader's read lease, if it has one: the host
	// stopped ticking it (see Range.ReadLease).
	ForgetLease()
	// step hands the core a peer's message; a message of the other
	// protocol is refused.
	Step(m PeerMessage) error
	// propose asks for data to be committed; the core keeps data.
	Propose(data []byte) error
	// readIndex asks for a linearizable read confirmed by a phase-2
	// quorum; rctx comes back in a readState.
	ReadIndex(rctx []byte) error
	// campaignAtStart starts an election at once, instead of waiting out
	// an election timeout, when self is the only voter, or when the group
	// never had an election (a range just created) and self is its first
	// replica: the range's first request is then served at once.
	CampaignAtStart(self uint64, first bool)

	HasReady() bool
	// HasCommittedEntries reports, changing nothing, whether committed
	// entries wait for the next Ready: after Advance, those of a group of
	// one voter, whose own append committed them.
	HasCommittedEntries() bool
	// ready takes the core's next Ready. The core keeps the raw Ready
	// until advance.
	Ready() Ready
	// persist adds the state, entries and snapshot point of the Ready
	// taken by ready to b.
	Persist(b *storage.Batch) error
	Advance()

	// status is the core's term (Raft) or ballot round (Paxos) and commit
	// index, as persisted.
	Status() Status
	// compact drops log entries up to at most applied, whose effects are
	// committed to Pebble, once the log is long enough to be worth it,
	// adding the writes to the batch that batch returns (made on first
	// use, so that a round with nothing to compact writes nothing).
	Compact(batch func() *storage.Batch, applied uint64) error
	// transferLeader asks a leader to hand its leadership to a voter other
	// than self that may take it (may reports which: the caller knows which
	// nodes it heard from lately, and which it wants). Raft picks the most
	// caught-up of them. It reports false when there is none.
	TransferLeader(self uint64, may func(id uint64) bool) bool
	// caughtUp reports, on a leader, whether voter id holds its whole log,
	// so that a transfer to it takes a round trip (Paxos: always, a new
	// leader learns what it lacks from the promises).
	CaughtUp(id uint64) bool
	// quiescible reports, for a leader, whether the range is idle and
	// fully replicated (every replica holds and knows committed its whole
	// log), so it may stop ticking; with the followers to tell and the
	// term and commit index to tell them. False when the protocol does not
	// support quiescence.
	Quiescible(self uint64) (followers []uint64, term, commit uint64, ok bool)
	// learnCommit gives a follower the commit index its leader (of term
	// or ballot round term) quiesced at, as a heartbeat would: the leader
	// quiesces only when this follower holds its whole log, so the
	// follower may commit and apply up to it before it stops ticking.
	LearnCommit(self, leader, term, commit uint64) error
	// reportUnreachable says the transport dropped messages to node to.
	ReportUnreachable(to uint64)
}

// Ready is one Ready of a core, in terms common to both protocols.
type Ready struct {
	// Soft is set when the role or the leader changed.
	Soft *SoftState
	// MustSync: the batch holding this Ready must be synced before
	// Messages go out.
	MustSync bool
	// Snapshot, if set, replaces the range's applied data (a follower
	// catching up from the leader's snapshot), which the store has
	// already received.
	Snapshot *RangeSnapshot
	// Eager are messages that may go out before the batch holding this
	// Ready is synced, so that the followers write entries while the
	// leader syncs its own copy (the Raft paper, §10.2.1): a leader's
	// appends, heartbeats and snapshots in a term or ballot that was
	// durable before this Ready (splitEager). Messages wait for the sync.
	Eager    []PeerMessage
	Messages []PeerMessage
	// Committed are the entries to apply, in order, without gaps.
	Committed []CommittedEntry
	Reads     []ReadState
}

type SoftState struct {
	Leader uint64
	Role   Role
}

// RangeSnapshot is a snapshot a core took from a peer: the applied index
// it is at, and its data, which is a handle naming the node that holds
// the range's data at that index (kv/store pulls the data before it hands
// the message to the core).
type RangeSnapshot struct {
	Index uint64
	Data  []byte
}

// CommittedEntry is a committed log entry (Raft index or Paxos slot);
// cmd is nil for entries with nothing to apply (no-ops, configurations).
type CommittedEntry struct {
	Index uint64
	Cmd   []byte
}

// ReadState releases the read with context ctx once index is applied.
type ReadState struct {
	Index uint64
	Ctx   []byte
}

type Status struct {
	// Term is the Raft term, or the round of the Paxos ballot promised.
	Term   uint64
	Commit uint64
	// Joining: a paxos replica added to a running range that has not yet
	// installed its first snapshot: any snapshot is ahead of it.
	Joining bool
}

// Role is a replica's part in its group, in both protocols' terms (Paxos
// has no pre-candidates). Its names are the metrics' role labels.
type Role uint8

const (
	RoleFollower Role = iota
	RoleCandidate
	RolePreCandidate
	RoleLeader
)

var Roles = []Role{RoleLeader, RoleFollower, RoleCandidate, RolePreCandidate}

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "follower"
	case RoleCandidate:
		return "candidate"
	case RolePreCandidate:
		return "pre-candidate"
	case RoleLeader:
		return "leader"
	}
	return "unknown"
}

// PeerMessage is one message between two nodes: a consensus message
// between two replicas of a range (exactly one of Raft and Paxos is set,
// as the range's protocol says), or a store-level Control message.
type PeerMessage struct {
	Raft    *raft.Message
	Paxos   *paxos.Message
	Control *ControlMessage
}

// To is the node the message is for.
func (m PeerMessage) To() uint64 {
	switch {
	case m.Paxos != nil:
		return m.Paxos.To
	case m.Control != nil:
		return m.Control.To
	}
	return m.Raft.To
}

// From is the node that sent the message.
func (m PeerMessage) From() uint64 {
	switch {
	case m.Paxos != nil:
		return m.Paxos.From
	case m.Control != nil:
		return m.Control.From
	}
	return m.Raft.From
}

// Snapshot returns the snapshot the message carries, if any: a Raft
// MsgSnap's, or a Paxos MsgSnapshot's or Promise's. Its data is a handle
// naming where the range's data can be pulled from (kv/store), not the
// data.
func (m PeerMessage) Snapshot() (index uint64, data []byte, ok bool) {
	switch {
	case m.Raft != nil && m.Raft.Snapshot != nil:
		return m.Raft.Snapshot.Metadata.Index, m.Raft.Snapshot.Data, true
	case m.Paxos != nil && m.Paxos.Snapshot != nil:
		return m.Paxos.Snapshot.Slot, m.Paxos.Snapshot.Data, true
	}
	return 0, nil, false
}

// Kind names the message's protocol and type, for logs.
func (m PeerMessage) Kind() string {
	switch {
	case m.Paxos != nil:
		return "paxos " + m.Paxos.Type.String()
	case m.Control != nil:
		return "control " + m.Control.Kind.String()
	}
	return "raft " + m.Raft.Type.String()
}

// ControlKind is the kind of a ControlMessage.
type ControlKind uint8

const (
	// ControlBeacon says "this node is alive", once per tick to each
	// peer: one message per node pair, however many ranges they share.
	// Quiesced followers wake when their leader's node falls silent.
	ControlBeacon ControlKind = 1 + iota
	// ControlQuiesce tells a follower of an idle range that its leader
	// stops ticking it at (Term, Commit); the follower stops too.
	ControlQuiesce
	// ControlSubsumed tells the other replicas of a subsumed range that
	// the sender's replica has applied, durably, the Subsume at index
	// Commit (kv/store/merge.go): the merge waits for every one.
	ControlSubsumed
)

func (k ControlKind) String() string {
	switch k {
	case ControlBeacon:
		return "beacon"
	case ControlQuiesce:
		return "quiesce"
	case ControlSubsumed:
		return "subsumed"
	}
	return fmt.Sprintf("ControlKind(%d)", uint8(k))
}

// ControlMessage is a store-to-store message (see ControlKind).
type ControlMessage struct {
	Kind         ControlKind
	From, To     uint64
	Term, Commit uint64
	// Draining is, in a beacon, whether the sender hands its leaderships
	// away (a drain or a decommission): no store hands it one.
	Draining bool
}

// NotLeading reports whether err is a core's refusal of a proposal or a
// read because it does not lead now: it is a follower (stepped down since
// the host last heard its role, in the Ready it has not taken yet), or a
// Raft leader handing its leadership to another voter. Nothing was
// proposed; the request belongs with the new leader.
func NotLeading(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrTransferring) || errors.Is(err, paxos.ErrNotLeader)
}
