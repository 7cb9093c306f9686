package catalog

import (
	"errors"
	"strings"
	"testing"
)

func ids(cs []Candidate) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestPlace(t *testing.T) {
	nodes := []Candidate{
		{ID: 1, Zone: "east", Replicas: 5}, {ID: 2, Zone: "east", Replicas: 1},
		{ID: 3, Zone: "west", Replicas: 0}, {ID: 4, Zone: "west", Replicas: 0},
		{ID: 5, Zone: "north", Replicas: 2},
	}
	got, err := Place(nodes, 3)
	if err != nil {
		t.Fatal(err)
	}
	// One per zone, least loaded first: west (3), east (2), north (5).
	if want := []uint64{3, 2, 5}; !equal(ids(got), want) {
		t.Errorf("Place 3 = %v, want %v", ids(got), want)
	}
	got, _ = Place(nodes, 5)
	if want := []uint64{3, 2, 5, 4, 1}; !equal(ids(got), want) {
		t.Errorf("Place 5 = %v, want %v", ids(got), want)
	}
	if _, err := Place(nodes, 6); !errors.Is(err, ErrNotEnoughNodes) {
		t.Errorf("Place 6 of 5: %v", err)
	}
	if nodes[0].ID != 1 || nodes[1].ID != 2 {
		t.Error("Place modified its input")
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProveOn(t *testing.T) {
	three := []Candidate{{ID: 1, Zone: "a"}, {ID: 2, Zone: "b"}, {ID: 3, Zone: "c"}}
	d := KeyspaceDescriptor{Name: "z", Mode: ModeRaft, Replicas: 3, Quorum: "zones"}
	if err := d.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, r, err := d.ProveOn(three); err != nil || r.Phase2.MinSize != 1 || r.Phase1.MinSize != 3 {
		t.Fatalf("zones on 3 zones: %v %+v", err, r)
	}
	bad := KeyspaceDescriptor{Name: "f", Mode: ModePaxos, Replicas: 3, Quorum: "flexible:1,2"}
	if err := bad.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bad.ProveOn(three); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "share no node") {
		t.Fatalf("flexible:1,2 on 3 accepted: %v", err)
	}
}
