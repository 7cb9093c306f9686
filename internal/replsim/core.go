package replsim

import (
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/quorum"
)

// Core is one node's protocol core as the harness drives it: a thin
// adapter over raft.RawNode or paxos.RawNode, written in that package's
// tests. The harness calls it from the simulation goroutine only, and
// never calls Step, Tick, Propose, ReadIndex or ProposeConfig between a
// Ready and its Advance: a node is single-threaded, and a message that
// arrives while its disk is syncing waits in the node's inbox.
type Core interface {
	// Tick advances the core's logical clock by one tick.
	Tick()
	// Step hands the core a message another core sent.
	Step(msg any)
	// Propose appends data to the log if this node leads; otherwise it
	// returns an error and the client is told to go elsewhere.
	Propose(data []byte) error
	// ReadIndex asks for a linearizable read identified by ctx.
	ReadIndex(ctx []byte) error
	// ProposeConfig asks the leader to move to configuration m.
	ProposeConfig(m Membership) error
	// TransferLeader asks the leader to hand leadership to node to.
	TransferLeader(to uint64) error
	// HasReady reports whether Ready would return work.
	HasReady() bool
	// Ready returns the next batch of work; see Ready.
	Ready() Ready
	// Advance reports that the last Ready was persisted, sent and applied.
	Advance()
	// Leader reports whether the core leads, and the term or ballot it
	// leads (Owner is the ballot's node, 0 for Raft Terms).
	Leader() (term, owner uint64, ok bool)
	// Hint returns the leader this node believes in, 0 if none.
	Hint() uint64
	// Compact snapshots the application state data taken at applied index
	// index (the last Ready's, already Advanced) and persists the
	// snapshot to disk (unsynced: losing it loses nothing).
	Compact(index uint64, data []byte, disk *sim.Disk) error
}

// AsyncCore is a Core that can go on while its writes sync
// (Scenario.AsyncPersist): the harness writes a Ready, sends its Eager
// messages, applies it and calls AdvanceWritten at once; once the disk's
// sync returns, it sends the Ready's other messages and calls Synced with
// what AdvanceWritten returned, in the Readys' order.
type AsyncCore interface {
	Core
	AdvanceWritten() any
	Synced(w any)
}

// LeaseCore is a Core that may serve reads from a lease. The harness then
// checks, after every step, that no node holding a lease (not busy, its
// ticks all given) sees another node lead at a higher term or ballot: the
// promise a lease counts on is that no rival wins before it ends. That
// catches a broken promise whether or not a read lands in the window.
type LeaseCore interface {
	// Lease reports whether the core leads and would serve a read now
	// without a round.
	Lease() bool
}

// Ready is the protocol-independent view of a core's Ready. The harness
// handles it in the order the cores' contracts require:
//
//  1. Persist (if set) writes to the node's disk; if Sync, the harness
//     then waits one fsync and syncs, and only then
//  2. sends Messages,
//  3. loads Snapshot into the state machine, then applies Committed,
//  4. serves Reads once their Index is applied,
//  5. calls Core.Advance.
type Ready struct {
	Persist  func(d *sim.Disk)
	Sync     bool
	Messages []Envelope
	// Accepted are the log records Persist writes: what the observer
	// checks for "one value per slot per term or ballot".
	Accepted  []Record
	Snapshot  *Snapshot
	Committed []Entry
	Reads     []ReadState
}

// Envelope is a message and its destination.
type Envelope struct {
	To  uint64
	Msg any
	// Promise says whether the message promises durable state: the
	// moments a crash hurts most, which the crash-after-promise faults aim
	// at.
	Promise Promise
	// Eager: with Scenario.AsyncPersist, the message may go out before
	// the writes of its Ready are durable (a leader's append in a term
	// that was durable before); otherwise it waits for their sync.
	// Ignored without AsyncPersist.
	Eager bool
}

// Promise is the kind of durable state a message vouches for.
type Promise uint8

const (
	NoPromise Promise = iota
	// PromiseVote: a granted vote, or a Paxos promise.
	PromiseVote
	// PromiseAck: an acknowledgement of entries (Raft MsgAppResp, Paxos
	// Accepted).
	PromiseAck
)

// Record is one log slot as a node persisted it.
type Record struct {
	Index uint64
	// Term and Owner say who wrote the slot: a Raft Term (Owner 0) or a
	// Paxos ballot (Round, NodeID). One writer writes one value per slot.
	Term, Owner uint64
	Value       string // the kind and data, compared for equality
}

// EntryKind is what a committed slot holds, for the state machine.
type EntryKind uint8

const (
	// EntryCommand is a client command (Data is an encoded command).
	EntryCommand EntryKind = iota + 1
	// EntryNoop is an empty entry (a new leader's, or a filled hole).
	EntryNoop
	// EntryConfig is a configuration change.
	EntryConfig
)

// Entry is one committed slot, handed to the state machine in order.
type Entry struct {
	Index uint64
	Kind  EntryKind
	Data  []byte
}

// Snapshot is a state-machine snapshot the core hands over (a leader's,
// installed on a lagging follower) or restarts from.
type Snapshot struct {
	Index uint64
	Data  []byte
}

// ReadState is a confirmed read: serve it once Index is applied.
type ReadState struct {
	Index uint64
	Ctx   []byte
}

// Membership is a configuration both protocols understand: voters laid
// out in order (a grid's rows) and a quorum.ParseSpec geometry.
type Membership struct {
	Geometry string
	Voters   []quorum.Node
}

// System builds the quorum system of m.
func (m Membership) System() (quorum.System, error) { return quorum.Parse(m.Geometry, m.Voters) }

// IDs returns the voters' IDs in order.
func (m Membership) IDs() []uint64 {
	ids := make([]uint64, len(m.Voters))
	for i, n := range m.Voters {
		ids[i] = n.ID
	}
	return ids
}

func (m Membership) String() string {
	parts := make([]string, len(m.Voters))
	for i, n := range m.Voters {
		parts[i] = fmt.Sprint(n.ID)
		if n.Zone != "" {
			parts[i] += "@" + n.Zone
		}
		if n.Weight > 1 {
			parts[i] += fmt.Sprintf("*%d", n.Weight)
		}
	}
	return m.Geometry + "(" + strings.Join(parts, " ") + ")"
}

// Majority returns a majority configuration of ids.
func Majority(ids ...uint64) Membership {
	m := Membership{Geometry: "majority"}
	for _, id := range ids {
		m.Voters = append(m.Voters, quorum.Node{ID: id})
	}
	return m
}

// Grid3x3 is grid:3x3 over nodes 1..9, row by row.
func Grid3x3() Membership {
	m := Majority(1, 2, 3, 4, 5, 6, 7, 8, 9)
	m.Geometry = "grid:3x3"
	return m
}

// Zones3x2 is the zones geometry over nodes 1..6 in zones a, a, b, b, c, c.
func Zones3x2() Membership {
	m := Membership{Geometry: "zones"}
	for i, z := range []string{"a", "a", "b", "b", "c", "c"} {
		m.Voters = append(m.Voters, quorum.Node{ID: uint64(i + 1), Zone: z})
	}
	return m
}

// Weighted5 is a weighted geometry over nodes 1..5 with weights 3 2 1 1 1:
// a quorum is 5 of the 8 votes, so node 1 plus node 2, or node 1 plus two
// others, or every node but 1.
func Weighted5() Membership {
	m := Membership{Geometry: "weighted"}
	for i, w := range []int{3, 2, 1, 1, 1} {
		m.Voters = append(m.Voters, quorum.Node{ID: uint64(i + 1), Weight: w})
	}
	return m
}

// Protocol is what a protocol's tests give the harness.
type Protocol struct {
	Name string
	// Start builds node id's core from what disk holds. A node with an
	// empty disk starts as a new node: a founding member of init if it is
	// one of init's voters, else an empty node that learns the
	// configuration from the leader. It returns the snapshot the core
	// restarted from, if any, for the state machine to load.
	Start func(env *sim.Env, id uint64, init Membership, disk *sim.Disk) (Core, *Snapshot)
	// ChosenByQuorum says that a value accepted at one term or ballot by a
	// phase-2 quorum is chosen (Paxos; not Raft, whose Figure 8 shows an
	// earlier Term's entry on a quorum being overwritten). The observer
	// then checks at most one value is chosen per slot, from acceptances
	// alone, whatever the nodes believe.
	ChosenByQuorum bool
}
