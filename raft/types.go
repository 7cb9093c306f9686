package raft

import (
	"fmt"
	"slices"
)

// None is the node ID that means "no node": no vote, no known leader.
const None uint64 = 0

// EntryType says how the application interprets an Entry's Data.
type EntryType uint8

const (
	// EntryNormal carries an application command, or nothing: the empty
	// entry a new leader appends to commit earlier Terms' entries.
	EntryNormal EntryType = iota
	// EntryConfChange carries an encoded ConfState: the configuration that
	// takes effect when the entry is applied.
	EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "EntryNormal"
	case EntryConfChange:
		return "EntryConfChange"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one slot of the replicated log.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// entryOverhead approximates the encoded size of an Entry's fixed fields,
// so that empty entries are not free in the byte limits.
const entryOverhead = 16

// Size is the number of bytes the entry is charged in message and
// in-flight byte limits.
func (e Entry) Size() uint64 { return uint64(len(e.Data)) + entryOverhead }

// PayloadSize is the number of bytes the entry is charged in the
// uncommitted-log limit: only its Data, so that empty entries (a new
// leader's) are never refused.
func (e Entry) PayloadSize() uint64 { return uint64(len(e.Data)) }

func entsSize(ents []Entry) uint64 {
	var s uint64
	for _, e := range ents {
		s += e.Size()
	}
	return s
}

func payloadsSize(ents []Entry) uint64 {
	var s uint64
	for _, e := range ents {
		s += e.PayloadSize()
	}
	return s
}

// HardState is the state a node must persist before it sends any message
// that depends on it: a vote must never be forgotten (else two leaders in
// one Term), nor the Term (else an old vote could be cast again).
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// IsEmpty reports whether h is the zero HardState.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// Member is a node of a configuration, as its geometry sees it.
type Member struct {
	ID     uint64
	Zone   string // read by the zones geometry
	Weight int    // read by the weighted geometry; 0 means 1
}

// ConfState is a configuration: a geometry over its voters, and learners
// that receive the log without voting or counting for commit. During a
// joint configuration change the outgoing geometry and voters are kept too,
// and quorums must be quorums of both.
type ConfState struct {
	// Geometry is a quorum.ParseSpec string, e.g. "majority" or "grid:3x3".
	Geometry string
	// Voters in the order the geometry lays them out (a grid's rows).
	Voters []Member
	// Learners receive the log but neither vote nor count for commit.
	Learners []uint64

	// OutgoingGeometry and VotersOutgoing are the old configuration while
	// joint; both are empty otherwise.
	OutgoingGeometry string
	VotersOutgoing   []Member
	// LearnersNext are outgoing voters that become learners when the joint
	// configuration is left. They stay voters of the old side until then,
	// and a node is never a voter and a learner at once.
	LearnersNext []uint64
}

// Joint reports whether cs is a joint configuration.
func (cs ConfState) Joint() bool { return len(cs.VotersOutgoing) > 0 }

// Clone returns a deep copy of cs.
func (cs ConfState) Clone() ConfState {
	cs.Voters = slices.Clone(cs.Voters)
	cs.Learners = slices.Clone(cs.Learners)
	cs.VotersOutgoing = slices.Clone(cs.VotersOutgoing)
	cs.LearnersNext = slices.Clone(cs.LearnersNext)
	return cs
}

// Equal reports whether a and b describe the same configuration.
func (cs ConfState) Equal(o ConfState) bool {
	return cs.Geometry == o.Geometry && slices.Equal(cs.Voters, o.Voters) &&
		slices.Equal(cs.Learners, o.Learners) && cs.OutgoingGeometry == o.OutgoingGeometry &&
		slices.Equal(cs.VotersOutgoing, o.VotersOutgoing) && slices.Equal(cs.LearnersNext, o.LearnersNext)
}

// SnapshotMetadata says which prefix of the log a snapshot replaces.
type SnapshotMetadata struct {
	Index     uint64    // the last log index the snapshot includes
	Term      uint64    // the Term of that entry
	ConfState ConfState // the configuration applied at Index
}

// Snapshot is the application's state at Metadata.Index.
type Snapshot struct {
	Metadata SnapshotMetadata
	Data     []byte
}

// IsEmpty reports whether s is the empty snapshot (index 0).
func (s Snapshot) IsEmpty() bool { return s.Metadata.Index == 0 }

// MessageType is the kind of a Message between nodes.
type MessageType uint8

const (
	// MsgApp carries entries after (Index, LogTerm) and the leader's Commit.
	MsgApp MessageType = 1 + iota
	// MsgAppResp acknowledges a MsgApp or MsgSnap up to Index, or rejects
	// the MsgApp at Index with a hint (RejectHint, LogTerm) for back-off.
	MsgAppResp
	// MsgVote asks for a vote in Term; (Index, LogTerm) is the candidate's
	// last entry, for the up-to-date rule.
	MsgVote
	MsgVoteResp
	// MsgPreVote asks whether the receiver would vote in Term, without
	// anyone changing Term: a node that cannot win (a partitioned one)
	// does not disturb the cluster by raising Terms.
	MsgPreVote
	MsgPreVoteResp
	// MsgHeartbeat keeps followers from campaigning and carries the
	// leader's Commit and a read round (ReadSeq) to confirm ReadIndex.
	MsgHeartbeat
	MsgHeartbeatResp
	// MsgSnap carries a snapshot to a follower whose next entries the
	// leader has compacted.
	MsgSnap
	// MsgTimeoutNow tells the target of a leader transfer to campaign at
	// once, even inside the leader's lease.
	MsgTimeoutNow
)

var msgNames = [...]string{
	MsgApp: "MsgApp", MsgAppResp: "MsgAppResp", MsgVote: "MsgVote", MsgVoteResp: "MsgVoteResp",
	MsgPreVote: "MsgPreVote", MsgPreVoteResp: "MsgPreVoteResp", MsgHeartbeat: "MsgHeartbeat",
	MsgHeartbeatResp: "MsgHeartbeatResp", MsgSnap: "MsgSnap", MsgTimeoutNow: "MsgTimeoutNow",
}

func (t MessageType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// voteRespType returns the response type of a vote request type.
func voteRespType(t MessageType) MessageType {
	switch t {
	case MsgVote:
		return MsgVoteResp
	case MsgPreVote:
		return MsgPreVoteResp
	}
	panic(fmt.Sprintf("raft: %s is not a vote request", t))
}

// Message is what nodes send each other. Which fields are meaningful
// depends on Type (see the MessageType constants).
type Message struct {
	Type     MessageType
	To, From uint64
	// Term is the sender's Term; 0 never appears on the wire.
	Term uint64
	// LogTerm is the Term of the entry at Index (MsgApp, MsgVote,
	// MsgPreVote), or the Term of the rejection hint (MsgAppResp).
	LogTerm uint64
	Index   uint64
	Entries []Entry
	Commit  uint64
	// Snapshot is set on MsgSnap only.
	Snapshot *Snapshot
	// Reject and RejectHint: a refused vote, or a MsgApp whose (Index,
	// LogTerm) does not match; RejectHint is the follower's index from
	// which the leader should probe.
	Reject     bool
	RejectHint uint64
	// Transfer marks votes of a leader transfer: they may interrupt a
	// lease, since the leader asked for them.
	Transfer bool
	// ReadSeq numbers the leader's heartbeat rounds: an acknowledged round
	// confirms every ReadIndex request made before it was sent.
	ReadSeq uint64
}

// ReadState is a confirmed ReadIndex request: once the application has
// applied Index, a read made at Index is linearizable.
type ReadState struct {
	Index      uint64
	RequestCtx []byte
}

// StateType is a node's role.
type StateType uint8

const (
	StateFollower StateType = iota
	StateCandidate
	StateLeader
	StatePreCandidate
)

func (s StateType) String() string {
	switch s {
	case StateFollower:
		return "follower"
	case StateCandidate:
		return "candidate"
	case StateLeader:
		return "leader"
	case StatePreCandidate:
		return "pre-candidate"
	}
	return fmt.Sprintf("StateType(%d)", uint8(s))
}

// SoftState is volatile state worth telling the application about; it
// need not be persisted.
type SoftState struct {
	Lead  uint64
	State StateType
}
