package paxos_test

import (
	"math/rand/v2"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
)

// soloNode is a group of one voter, leading, with alpha 4.
func soloNode(t *testing.T) *paxos.RawNode {
	t.Helper()
	cfg := paxos.Config{ID: 1, Rand: rand.New(rand.NewPCG(1, 1)), ElectionTicks: 10, HeartbeatTicks: 2, MaxOpenSlots: 4}
	rn, err := paxos.NewRawNode(cfg, paxos.Bootstrap(majority(1)))
	if err != nil {
		t.Fatal(err)
	}
	rn.Campaign()
	drain(rn, true)
	if rn.Status().Role != paxos.Leader {
		t.Fatalf("node 1: %v, want leader", rn.Status().Role)
	}
	return rn
}

// drain hands out Readies until there is none, advancing each (if
// advance), and returns the slots of the chosen entries handed out.
func drain(rn *paxos.RawNode, advance bool) []uint64 {
	var slots []uint64
	for i := 0; rn.HasReady() && i < 100; i++ {
		rd := rn.Ready()
		for _, e := range rd.CommittedEntries {
			slots = append(slots, e.Slot)
		}
		if advance {
			rn.Advance(rd)
		}
	}
	return slots
}

// AdvancePaused stops the hand-out of chosen entries after the slot the
// application applied: the node goes on choosing, Ready hands out no
// chosen entry (and HasReady does not report them) until ResumeApply,
// which hands them out from the slot after the pause.
func TestAdvancePaused(t *testing.T) {
	rn := soloNode(t)
	for _, v := range []string{"a", "b", "c"} {
		if err := rn.Propose([]byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	var rd paxos.Ready
	for i := 0; len(rd.CommittedEntries) < 3 && i < 10; i++ {
		if len(rd.CommittedEntries) > 0 {
			t.Fatalf("chosen entries handed out over several Readies: %+v", rd.CommittedEntries)
		}
		rd = rn.Ready()
		if len(rd.CommittedEntries) == 0 {
			rn.Advance(rd)
		}
	}
	if len(rd.CommittedEntries) < 3 {
		t.Fatalf("the proposals were not chosen: %+v", rn.Status())
	}
	// The application applies the first of the three and pauses.
	pausedAt := rd.CommittedEntries[len(rd.CommittedEntries)-3].Slot
	rn.AdvancePaused(rd, pausedAt)
	if err := rn.Propose([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := drain(rn, true); len(got) > 0 {
		t.Fatalf("slots %v handed out while the apply is paused", got)
	}
	if st := rn.Status(); st.Applied != pausedAt || st.Commit < pausedAt+3 || !rn.ApplyPaused() {
		t.Fatalf("while paused: %+v (paused %v), want applied %d and commit past %d", st, rn.ApplyPaused(), pausedAt, pausedAt+3)
	}
	rn.ResumeApply()
	got := drain(rn, true)
	if len(got) < 3 || got[0] != pausedAt+1 {
		t.Fatalf("after ResumeApply: slots %v handed out, want from %d on", got, pausedAt+1)
	}
}

// ConfigsAt is the configurations the slots up to a slot chose for the
// slots after it, whatever was chosen since: before a change is chosen,
// the founding one; at the change's slot and within alpha after it, both;
// once the change is in force, only the new one.
func TestConfigsAt(t *testing.T) {
	rn := soloNode(t)
	first := rn.Status().Commit
	next := paxos.Membership{Geometry: "majority", Voters: []quorum.Node{{ID: 1, Zone: "z"}}}
	if err := rn.ProposeConfig(next); err != nil {
		t.Fatal(err)
	}
	drain(rn, true)
	for i := 0; i < 8; i++ {
		if err := rn.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		drain(rn, true)
	}
	zones := func(slot uint64) []string {
		var out []string
		for _, c := range rn.ConfigsAt(slot) {
			out = append(out, c.Membership.Voters[0].Zone)
		}
		return out
	}
	// The change is chosen in the first slot after first whose ConfigsAt
	// holds two configurations.
	var at uint64
	for s := first; s <= rn.Status().Commit && at == 0; s++ {
		if len(rn.ConfigsAt(s)) == 2 {
			at = s
		}
	}
	if at == 0 {
		t.Fatalf("no slot up to %d chose the change", rn.Status().Commit)
	}
	for _, c := range []struct {
		slot uint64
		want string
	}{{at - 1, "[]"}, {at, "[ z]"}, {at + 2, "[ z]"}, {at + 3, "[z]"}, {at + 5, "[z]"}} {
		if got := fmtZones(zones(c.slot)); got != c.want {
			t.Errorf("ConfigsAt(%d) (change chosen at %d, alpha 4): zones %s, want %s", c.slot, at, got, c.want)
		}
	}
}

func fmtZones(z []string) string {
	s := "["
	for i, x := range z {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s + "]"
}
