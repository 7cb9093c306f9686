package paxos

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/quorum"
)

// EntryType says what a slot holds.
type EntryType uint8

const (
	// EntryNormal is an application command.
	EntryNormal EntryType = 1 + iota
	// EntryNoop fills a hole: a new leader chooses it for a slot no
	// acceptor of its phase-1 quorum had accepted anything for.
	EntryNoop
	// EntryConfig holds a Membership (see reconfig.go).
	EntryConfig
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is the content of one slot as an acceptor holds it: the value it
// accepted and the ballot it accepted it at. Once the slot is chosen the
// ballot no longer matters.
type Entry struct {
	Slot   uint64
	Ballot Ballot
	Type   EntryType
	Data   []byte
}

func (e Entry) String() string {
	switch e.Type {
	case EntryNoop:
		return fmt.Sprintf("%d@%v noop", e.Slot, e.Ballot)
	case EntryConfig:
		m, err := UnmarshalMembership(e.Data)
		if err != nil {
			return fmt.Sprintf("%d@%v config <%v>", e.Slot, e.Ballot, err)
		}
		return fmt.Sprintf("%d@%v config %v", e.Slot, e.Ballot, m)
	}
	return fmt.Sprintf("%d@%v %q", e.Slot, e.Ballot, e.Data)
}

func (e Entry) size() uint64 { return uint64(len(e.Data)) + 16 }

// HardState is the durable state of a node besides its entries.
type HardState struct {
	// Promised is the acceptor's promise: it refuses every Prepare, Accept
	// and heartbeat below it. Losing it in a crash breaks Paxos.
	Promised Ballot
	// Commit is the highest slot such that every slot up to it is known to
	// be chosen. It may be lost (it is learned again); it is kept to spare
	// the work.
	Commit uint64
}

// Membership is a configuration: the voters and the quorum geometry over
// them, in the syntax of quorum.ParseSpec.
type Membership struct {
	Voters   []quorum.Node
	Geometry string
}

// System builds the quorum system of m.
func (m Membership) System() (quorum.System, error) {
	return quorum.Parse(m.Geometry, m.Voters)
}

func (m Membership) String() string {
	ids := make([]string, len(m.Voters))
	for i, n := range m.Voters {
		ids[i] = fmt.Sprint(n.ID)
		if n.Zone != "" && n.Zone != "default" {
			ids[i] += "@" + n.Zone
		}
		if n.Weight > 1 {
			ids[i] += fmt.Sprintf(":%d", n.Weight)
		}
	}
	return fmt.Sprintf("%s%v", m.Geometry, ids)
}

func (m Membership) hasVoter(id uint64) bool {
	return slices.ContainsFunc(m.Voters, func(n quorum.Node) bool { return n.ID == id })
}

// Marshal encodes m for an EntryConfig.
func (m Membership) Marshal() []byte {
	var e encoder
	e.uvarint(uint64(len(m.Voters)))
	for _, n := range m.Voters {
		e.uvarint(n.ID)
		e.bytes([]byte(n.Zone))
		e.uvarint(uint64(n.Weight))
	}
	e.bytes([]byte(m.Geometry))
	return e.b
}

// UnmarshalMembership decodes what Membership.Marshal wrote.
func UnmarshalMembership(b []byte) (Membership, error) {
	d := decoder{b: b}
	n := d.uvarint()
	if n > quorum.MaxNodeList {
		return Membership{}, fmt.Errorf("%w: membership of %d voters", ErrCorrupt, n)
	}
	var m Membership
	for range n {
		m.Voters = append(m.Voters, quorum.Node{ID: d.uvarint(), Zone: string(d.bytes()), Weight: int(d.uvarint())})
	}
	m.Geometry = string(d.bytes())
	if d.err != nil || len(d.b) != 0 {
		return Membership{}, fmt.Errorf("%w: membership: %v (%d trailing bytes)", ErrCorrupt, d.err, len(d.b))
	}
	return m, nil
}

// ConfigState is a configuration and the first slot it governs.
type ConfigState struct {
	Effective  uint64
	Membership Membership
}

// Snapshot is the application's state after every slot up to Slot, with
// the configurations that govern the slots after it.
type Snapshot struct {
	Slot uint64
	// Configs are in ascending Effective order; the first governs Slot+1.
	Configs []ConfigState
	Data    []byte
}

// PersistentState is what a node restarts from: everything it was asked
// to persist. Entries are the accepted entries above Snapshot.Slot, in any
// order (a later write to a slot replaces the earlier one).
type PersistentState struct {
	HardState HardState
	Snapshot  Snapshot
	Entries   []Entry
}

// Bootstrap is the PersistentState of a node of a new group whose first
// configuration is m.
func Bootstrap(m Membership) PersistentState {
	return PersistentState{Snapshot: Snapshot{Configs: []ConfigState{{Effective: 1, Membership: m}}}}
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) {
	e.b = appendUvarint(e.b, v)
}

func (e *encoder) bytes(v []byte) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}
