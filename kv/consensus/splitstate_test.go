package consensus

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/storage"
)

// A paxos range split off at a slot is founded with the configurations
// the slots up to it chose, and only if that is the one configuration the
// split carries: a change chosen fewer than alpha-1 slots before the
// split (it governs a slot after the split's, not the next) refuses it, as does a split that carries another configuration. The
// founding written is a snapshot point at the slot, commit at the slot,
// no promise, and the configuration; its replicas are the
// configuration's.
func TestPaxosSplitFounding(t *testing.T) {
	one := paxos.Membership{Geometry: "majority", Voters: []quorum.Node{{ID: 1, Zone: "a"}}}
	rn, err := paxos.NewRawNode(paxos.Config{ID: 1, Rand: rand.New(rand.NewPCG(1, 1)), ElectionTicks: 10, HeartbeatTicks: 2, MaxOpenSlots: 4},
		paxos.Bootstrap(one))
	if err != nil {
		t.Fatal(err)
	}
	c := &PaxosCore{rn: rn, rg: Range{Desc: &catalog.RangeDescriptor{ID: 9}}}
	drain := func() {
		for i := 0; rn.HasReady() && i < 100; i++ {
			rn.Advance(rn.Ready())
		}
	}
	rn.Campaign()
	drain()
	before := rn.Status().Commit
	moved := paxos.Membership{Geometry: "majority", Voters: []quorum.Node{{ID: 1, Zone: "b"}}}
	if err := rn.ProposeConfig(moved); err != nil {
		t.Fatal(err)
	}
	drain()
	for range 8 {
		if err := rn.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		drain()
	}
	at := before + 1 // the change's slot
	voters := func(zone string) []catalog.ReplicaDescriptor {
		return []catalog.ReplicaDescriptor{{NodeID: 1, Zone: zone}}
	}
	for _, tc := range []struct {
		slot   uint64
		zone   string
		refuse string
	}{
		{before, "a", ""},
		{before, "b", "its configuration is"},
		{at, "a", "a configuration change is under way"},
		{at + 2, "b", "a configuration change is under way"},
		{at + 3, "b", ""},
		{at + 3, "a", "its configuration is"},
	} {
		f, why, err := c.SplitFounding(tc.slot, voters(tc.zone), "majority")
		if err != nil {
			t.Fatal(err)
		}
		if why == "" != (tc.refuse == "") || !strings.HasPrefix(why, tc.refuse) {
			t.Errorf("a split at slot %d (change chosen at %d, alpha 4) carrying zone %s: refusal %q, want %q", tc.slot, at, tc.zone, why, tc.refuse)
			continue
		}
		if why != "" {
			continue
		}
		if reps, g := f.Replicas(); len(reps) != 1 || reps[0].Zone != tc.zone || g != "majority" {
			t.Errorf("a split at slot %d: replicas %+v in %q", tc.slot, reps, g)
		}
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := db.NewBatch()
		if err := f.Write(b, 12); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		l, ents, err := LoadPaxosLog(db, 12)
		db.Close()
		switch {
		case err != nil:
			t.Fatal(err)
		case !l.Founded || l.Snap.Slot != tc.slot || l.HardState.Commit != tc.slot || !l.HardState.Promised.IsZero() || len(ents) != 0:
			t.Errorf("founded at slot %d: %+v, %d entries", tc.slot, l, len(ents))
		case len(l.Snap.Configs) != 1 || l.Snap.Configs[0].Membership.Voters[0].Zone != tc.zone:
			t.Errorf("founded at slot %d with configurations %+v", tc.slot, l.Snap.Configs)
		}
	}
}
