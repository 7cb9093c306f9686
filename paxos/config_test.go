package paxos_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

func TestConfigValidate(t *testing.T) {
	good := paxos.Config{ID: 1, Rand: rand.New(rand.NewPCG(1, 1))}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	leased := good
	leased.ReadLease = true
	if err := leased.Validate(); err != nil {
		t.Fatalf("defaults with ReadLease: %v", err)
	}
	for name, mutate := range map[string]func(*paxos.Config){
		"zero ID":                   func(c *paxos.Config) { c.ID = 0 },
		"no rand":                   func(c *paxos.Config) { c.Rand = nil },
		"heartbeat >= election":     func(c *paxos.Config) { c.HeartbeatTicks = c.ElectionTicks },
		"window 0":                  func(c *paxos.Config) { c.MaxOpenSlots = -1 },
		"msg above uncommitted":     func(c *paxos.Config) { c.MaxSizePerMsg = c.MaxUncommittedBytes + 1 },
		"no room for pending reads": func(c *paxos.Config) { c.MaxPendingReads = -1 },
		"lease within a heartbeat":  func(c *paxos.Config) { c.ReadLease, c.HeartbeatTicks = true, c.ElectionTicks-2 },
	} {
		c := good
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, paxos.ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestMembershipRoundTrip(t *testing.T) {
	m := paxos.Membership{Geometry: "zones", Voters: []quorum.Node{{ID: 1, Zone: "east", Weight: 2}, {ID: 7, Zone: "west"}}}
	got, err := paxos.UnmarshalMembership(m.Marshal())
	if err != nil || got.String() != m.String() || got.Voters[0] != m.Voters[0] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := paxos.UnmarshalMembership(m.Marshal()[:3]); !errors.Is(err, paxos.ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

// A leader refuses a configuration whose Prepare and Accept quorums can
// miss each other, and a proposal on a follower is refused.
func TestProposeRefusals(t *testing.T) {
	rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Rand: rand.New(rand.NewPCG(1, 1))}, paxos.Bootstrap(majority(1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := rn.Propose([]byte("x")); !errors.Is(err, paxos.ErrNotLeader) {
		t.Fatalf("follower Propose: %v", err)
	}
	rn.Campaign() // a one-node group wins at once
	if st := rn.Status(); st.Role != paxos.Leader {
		t.Fatalf("one-node campaign: %+v", st)
	}
	unsafe := members("flexible:2,2", 1, 2, 3, 4, 5)
	if err := rn.ProposeConfig(unsafe); !errors.Is(err, paxos.ErrInvalidConfig) {
		t.Fatalf("unsafe geometry: %v", err)
	}
	big := make([]byte, paxos.DefaultMaxUncommittedBytes)
	if err := rn.Propose(big); !errors.Is(err, paxos.ErrProposalDropped) {
		t.Fatalf("oversized proposal: %v", err)
	}
	if err := rn.Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	rd := rn.Ready()
	if len(rd.CommittedEntries) != 1 || string(rd.CommittedEntries[0].Data) != "x" || !rd.MustSync {
		t.Fatalf("one-node Ready: %+v", rd)
	}
	rn.Advance(rd)
}
