package paxos

import (
	"fmt"
	"strings"
)

// MessageType is the kind of a Multi-Paxos message.
type MessageType uint8

const (
	// MsgPrepare (candidate to acceptors): phase 1 at Ballot for every slot
	// from Slot on.
	MsgPrepare MessageType = 1 + iota
	// MsgPromise (acceptor to candidate): the grant or refusal of a
	// Prepare, with every entry the acceptor holds from Slot on.
	MsgPromise
	// MsgAccept (leader to acceptors): phase 2 at Ballot for Entries, with
	// the leader's Commit piggybacked for learners.
	MsgAccept
	// MsgAccepted (acceptor to leader): which Slots were accepted, and the
	// acceptor's own Commit, which tells the leader what it lacks.
	MsgAccepted
	// MsgHeartbeat (leader to all): "I still lead at Ballot", with Commit,
	// and a read Context to confirm.
	MsgHeartbeat
	// MsgHeartbeatResp (acceptor to leader): the acknowledgement.
	MsgHeartbeatResp
	// MsgSnapshot (leader to a lagging acceptor): the slots it lacks are
	// already compacted; here is the state after them.
	MsgSnapshot
	// MsgTimeoutNow (leader to a voter): take over now (TransferLeader).
	// Its Ballot is the leader's.
	MsgTimeoutNow
)

var msgNames = [...]string{"", "Prepare", "Promise", "Accept", "Accepted", "Heartbeat", "HeartbeatResp", "Snapshot", "TimeoutNow"}

func (t MessageType) String() string {
	if int(t) < len(msgNames) && t > 0 {
		return msgNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is a Multi-Paxos message. The core never sends one to itself.
type Message struct {
	Type     MessageType
	From, To uint64
	// Ballot is the ballot of the leader or candidate the message is
	// about, in requests and replies alike.
	Ballot Ballot
	// Reject refuses Ballot; Hint is then the acceptor's promise, above
	// Ballot, so the proposer skips past it. On a Prepare with Transfer,
	// Hint is the ballot of the leader that asked for the transfer (its
	// MsgTimeoutNow's): an acceptor with leases on lets the Prepare past
	// its deferral only if it defers to that very ballot (lease.go).
	Reject bool
	Hint   Ballot
	// Slot: on a Prepare, the first slot it covers; on a HeartbeatResp,
	// the leader's commit index that the heartbeat carried.
	Slot uint64
	// Commit: on Accept and Heartbeat, the leader's commit index; on
	// replies, the acceptor's.
	Commit uint64
	// Entries: on a Promise, what the acceptor accepted from Slot on; on
	// an Accept, the values to accept (their Ballot fields are ignored).
	Entries []Entry
	// Slots: on an Accepted, the slots accepted at Ballot.
	Slots []uint64
	// Snapshot: on MsgSnapshot, or on a Promise from an acceptor that has
	// compacted slots the Prepare covers.
	Snapshot *Snapshot
	// Context identifies a read on a Heartbeat and its response.
	Context []byte
	// Seq numbers a leader's heartbeat rounds within its ballot, from 1,
	// when the leader has leases on (Config.ReadLease); 0 otherwise. A
	// HeartbeatResp echoes it only from an acceptor that has leases on
	// too: its answer then vouches that it grants no other proposer's
	// Prepare for ElectionTicks of its own ticks (lease.go).
	Seq uint64
	// Transfer marks a Prepare of a candidate the leader asked to take
	// over (MsgTimeoutNow): acceptors grant it even while they hear that
	// leader, which they otherwise defer to (deferToLeader).
	Transfer bool
	// Joining marks an Accepted or HeartbeatResp from an acceptor that
	// knows no configuration yet (it joined the group empty): the leader
	// sends it a snapshot (reconfig.go).
	Joining bool
}

func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s %v", m.From, m.To, m.Type, m.Ballot)
	if m.Reject {
		fmt.Fprintf(&b, " reject (promised %v)", m.Hint)
	}
	switch m.Type {
	case MsgPrepare:
		fmt.Fprintf(&b, " from slot %d", m.Slot)
		if m.Transfer {
			fmt.Fprintf(&b, " transfer (leader %v)", m.Hint)
		}
	case MsgPromise, MsgAccept:
		if !m.Reject {
			fmt.Fprintf(&b, " commit %d", m.Commit)
			for _, e := range m.Entries {
				if m.Type == MsgAccept {
					e.Ballot = m.Ballot
				}
				fmt.Fprintf(&b, " [%v]", e)
			}
		}
	case MsgAccepted:
		if !m.Reject {
			fmt.Fprintf(&b, " slots %v commit %d", m.Slots, m.Commit)
		}
	case MsgHeartbeat, MsgHeartbeatResp:
		if !m.Reject {
			fmt.Fprintf(&b, " commit %d", m.Commit)
		}
		if m.Seq > 0 {
			fmt.Fprintf(&b, " seq %d", m.Seq)
		}
	}
	if m.Joining {
		b.WriteString(" joining")
	}
	if m.Snapshot != nil {
		fmt.Fprintf(&b, " snapshot@%d", m.Snapshot.Slot)
	}
	if len(m.Context) > 0 {
		fmt.Fprintf(&b, " ctx %q", m.Context)
	}
	return b.String()
}
