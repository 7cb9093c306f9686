package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// catalogWithNodes returns a catalog of nodes 1..n and keyspace ks of one
// range on nodes 1, 2 and 3.
func catalogWithNodes(t *testing.T, n int) *Catalog {
	t.Helper()
	c := NewCatalog()
	for i := 1; i <= n; i++ {
		nd := NodeDescriptor{Name: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("h%d:1", i),
			UUID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), SecretHash: strings.Repeat("ab", 32)}
		if _, _, err := c.Apply(&CatalogOp{AddNode: &nd}); err != nil {
			t.Fatal(err)
		}
	}
	ks := KeyspaceDescriptor{Name: "ks", Mode: ModeRaft, Replicas: 3, Ranges: 1}
	if err := ks.Normalize(); err != nil {
		t.Fatal(err)
	}
	reps := [][]ReplicaDescriptor{{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}}
	if _, _, err := c.Apply(&CatalogOp{Create: &ks, Replicas: reps}); err != nil {
		t.Fatal(err)
	}
	return c
}

// A move replaces one replica, puts the new one last and marks it Added,
// keeps the old one as leaving until Left drops it, and leaves the
// descriptor that replicas already hold unchanged.
func TestMoveReplica(t *testing.T) {
	c := catalogWithNodes(t, 4)
	r := c.KeyspaceRanges("ks")[0]
	before := r
	writes, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 2, To: ReplicaDescriptor{NodeID: 4}}})
	if err != nil || len(writes) != 1 {
		t.Fatalf("move: %v, %d writes", err, len(writes))
	}
	after := c.Ranges[r.ID]
	if got := fmt.Sprint(after.Replicas); got != "[{1  0 false false} {3  0 false false} {4  0 true false}]" {
		t.Errorf("replicas after the move: %s", got)
	}
	if got := fmt.Sprint(after.Leaving); got != "[{2  0 false false}]" || !after.Holds(2) || after.HasReplica(2) {
		t.Errorf("leaving after the move: %s", got)
	}
	if before.HasReplica(4) || !before.HasReplica(2) || len(before.Leaving) != 0 {
		t.Errorf("the old descriptor changed: %v, leaving %v", before.Replicas, before.Leaving)
	}
	// Reloading the write gives the same descriptor.
	re := NewCatalog()
	if err := re.Load(writes[0].Key, writes[0].Value); err != nil || fmt.Sprint(re.Ranges[r.ID]) != fmt.Sprint(after) {
		t.Errorf("reloaded %v, %v; want %v", re.Ranges[r.ID], err, after)
	}
	for _, bad := range []MoveReplica{
		{Range: r.ID, From: 2, To: ReplicaDescriptor{NodeID: 1}},     // not in the range any more
		{Range: r.ID, From: 1, To: ReplicaDescriptor{NodeID: 3}},     // already a replica
		{Range: r.ID, From: 1, To: ReplicaDescriptor{NodeID: 9}},     // unknown node
		{Range: r.ID + 9, From: 1, To: ReplicaDescriptor{NodeID: 2}}, // unknown range
		{Range: MetaRangeID, From: 1, To: ReplicaDescriptor{NodeID: 2}},
	} {
		if _, _, err := c.Apply(&CatalogOp{Move: &bad}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("move %+v: %v, want invalid argument", bad, err)
		}
	}
}

// Left drops a leaving replica once, and a second Left (a retry) changes
// nothing. A move to a node whose replica is still leaving undoes the
// move off it: the replica stays, as it was.
func TestLeft(t *testing.T) {
	c := catalogWithNodes(t, 4)
	r := c.KeyspaceRanges("ks")[0]
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 2, To: ReplicaDescriptor{NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	moved := c.Ranges[r.ID]
	writes, _, err := c.Apply(&CatalogOp{Left: &RangeReplica{Range: r.ID, Node: 2}})
	if err != nil || len(writes) != 1 || c.Ranges[r.ID].Holds(2) || len(c.Ranges[r.ID].Leaving) != 0 {
		t.Fatalf("left: %v, %d writes, range %+v", err, len(writes), c.Ranges[r.ID])
	}
	if !moved.IsLeaving(2) {
		t.Errorf("the old descriptor changed: %+v", moved)
	}
	if writes, _, err := c.Apply(&CatalogOp{Left: &RangeReplica{Range: r.ID, Node: 2}}); err != nil || len(writes) != 0 {
		t.Errorf("left again: %v, %d writes; want nothing", err, len(writes))
	}
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 1, To: ReplicaDescriptor{NodeID: 2}}}); err != nil {
		t.Errorf("moving back to node 2 once it left: %v", err)
	}
	// Node 1 is leaving now; node 4 dies, and its replica goes back to 1.
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 4, To: ReplicaDescriptor{NodeID: 1}}}); err != nil {
		t.Fatalf("moving to node 1, leaving: %v", err)
	}
	back := c.Ranges[r.ID]
	if got := fmt.Sprint(back.Replicas, back.Leaving); got != "[{3  0 false false} {2  0 true false} {1  0 false false}] [{4  0 true false}]" {
		t.Errorf("after the move back to the leaving node 1: replicas and leaving %s", got)
	}
}

// A move into an eventual range marks the new replica filling (a raft
// range's is not); Filled clears the mark, once, and a replica that comes
// back to a range it was leaving keeps its data and is not filling.
func TestFilled(t *testing.T) {
	c := catalogWithNodes(t, 5)
	ev := KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, Ranges: 1}
	if err := ev.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Apply(&CatalogOp{Create: &ev, Replicas: [][]ReplicaDescriptor{{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}}}); err != nil {
		t.Fatal(err)
	}
	r := c.KeyspaceRanges("ev")[0]
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 2, To: ReplicaDescriptor{NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	if r := c.Ranges[r.ID]; !r.IsFilling(4) || r.IsFilling(1) || !r.AnyFilling() {
		t.Fatalf("after a move into an eventual range: %v, want node 4 filling", r.Replicas)
	}
	raft := c.KeyspaceRanges("ks")[0]
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: raft.ID, From: 2, To: ReplicaDescriptor{NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	if c.Ranges[raft.ID].AnyFilling() {
		t.Errorf("a raft range's new replica is marked filling: %v", c.Ranges[raft.ID].Replicas)
	}
	writes, _, err := c.Apply(&CatalogOp{Filled: &RangeReplica{Range: r.ID, Node: 4}})
	if err != nil || len(writes) != 1 || c.Ranges[r.ID].AnyFilling() {
		t.Fatalf("Filled: %v, %d writes, replicas %v; want the mark cleared", err, len(writes), c.Ranges[r.ID].Replicas)
	}
	if writes, _, err := c.Apply(&CatalogOp{Filled: &RangeReplica{Range: r.ID, Node: 4}}); err != nil || len(writes) != 0 {
		t.Errorf("Filled again: %v, %d writes; want nothing", err, len(writes))
	}
	// Node 4 moves on to 5 (filling), then 5's replica goes back to the
	// leaving node 4, which has its data.
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 4, To: ReplicaDescriptor{NodeID: 5}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 5, To: ReplicaDescriptor{NodeID: 4}}}); err != nil {
		t.Fatal(err)
	}
	if r := c.Ranges[r.ID]; r.IsFilling(4) || !r.IsLeaving(5) {
		t.Errorf("a replica back from leaving: %v leaving %v; want node 4 not filling", r.Replicas, r.Leaving)
	}
}

// A decommissioning node takes no new replicas, keeps its mark when it
// announces itself, and cannot be decommissioned once removed.
func TestDecommission(t *testing.T) {
	c := catalogWithNodes(t, 4)
	writes, _, err := c.Apply(&CatalogOp{Decommission: 4})
	if err != nil || len(writes) != 1 || !c.Nodes[4].Decommissioning {
		t.Fatalf("decommission: %v, %d writes, node %+v", err, len(writes), c.Nodes[4])
	}
	if writes, _, err := c.Apply(&CatalogOp{Decommission: 4}); err != nil || len(writes) != 0 {
		t.Errorf("decommissioning again: %v, %d writes; want nothing", err, len(writes))
	}
	r := c.KeyspaceRanges("ks")[0]
	if _, _, err := c.Apply(&CatalogOp{Move: &MoveReplica{Range: r.ID, From: 2, To: ReplicaDescriptor{NodeID: 4}}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("moving a replica to a decommissioning node: %v, want invalid argument", err)
	}
	n4 := c.Nodes[4]
	n4.Decommissioning, n4.Addr = false, "h4:2"
	if _, _, err := c.Apply(&CatalogOp{AddNode: &n4}); err != nil || !c.Nodes[4].Decommissioning || c.Nodes[4].Addr != "h4:2" {
		t.Errorf("node 4 announcing itself: %v, node %+v; want its address changed and the mark kept", err, c.Nodes[4])
	}
	if _, _, err := c.Apply(&CatalogOp{RemoveNode: 4}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Apply(&CatalogOp{Decommission: 4}); !errors.Is(err, ErrRemoved) {
		t.Errorf("decommissioning a removed node: %v, want ErrRemoved", err)
	}
	if _, _, err := c.Apply(&CatalogOp{Decommission: 9}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("decommissioning an unknown node: %v, want invalid argument", err)
	}
}

// A removed node stays in the catalog, marked, and may never change its
// entry again, not even with its secret; removing it twice changes
// nothing the second time.
func TestRemoveNode(t *testing.T) {
	c := catalogWithNodes(t, 4)
	writes, _, err := c.Apply(&CatalogOp{RemoveNode: 4})
	if err != nil || len(writes) != 1 || !c.Nodes[4].Removed {
		t.Fatalf("remove: %v, %d writes, node %+v", err, len(writes), c.Nodes[4])
	}
	re := NewCatalog()
	if err := re.Load(writes[0].Key, writes[0].Value); err != nil || !re.Nodes[4].Removed {
		t.Fatalf("reloaded %+v, %v", re.Nodes[4], err)
	}
	if writes, _, err := c.Apply(&CatalogOp{RemoveNode: 4}); err != nil || len(writes) != 0 {
		t.Errorf("removing again: %v, %d writes; want nothing", err, len(writes))
	}
	back := c.Nodes[4]
	back.Removed, back.Addr = false, "h4:2"
	if _, _, err := c.Apply(&CatalogOp{AddNode: &back}); !errors.Is(err, ErrRemoved) {
		t.Errorf("a removed node announcing itself: %v, want ErrRemoved", err)
	}
	if c.Nodes[4].Addr != "h4:1" || !c.Nodes[4].Removed {
		t.Errorf("the refused announcement changed the node: %+v", c.Nodes[4])
	}
	if _, _, err := c.Apply(&CatalogOp{RemoveNode: 9}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("removing an unknown node: %v, want invalid argument", err)
	}
	// A node announcing itself keeps its removal mark untouched: only
	// RemoveNode sets it.
	n1 := c.Nodes[1]
	n1.Removed = true
	if _, _, err := c.Apply(&CatalogOp{AddNode: &n1}); err != nil || c.Nodes[1].Removed {
		t.Errorf("node 1 announcing itself as removed: %v, node %+v; want it ignored", err, c.Nodes[1])
	}
}

// A keyspace grows toward its GrowTo: every range gets its new replicas,
// marked Added, and the keyspace its new N, in one op; a growth that
// does not add up is refused whole.
func TestGrowKeyspace(t *testing.T) {
	c := catalogWithNodes(t, 5)
	ks := KeyspaceDescriptor{Name: "def", Mode: ModeRaft, Replicas: 1, Ranges: 2, GrowTo: 3}
	if err := ks.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Apply(&CatalogOp{Create: &ks, Replicas: [][]ReplicaDescriptor{{{NodeID: 1}}, {{NodeID: 1}}}}); err != nil {
		t.Fatal(err)
	}
	rs := c.KeyspaceRanges("def")
	two := func(a, b uint64) []ReplicaDescriptor { return []ReplicaDescriptor{{NodeID: a}, {NodeID: b}} }
	for _, bad := range []GrowKeyspace{
		{Keyspace: "def", Replicas: 4, Add: []RangeReplicas{{rs[0].ID, two(2, 3)}, {rs[1].ID, two(4, 5)}}}, // past GrowTo
		{Keyspace: "def", Replicas: 3, Add: []RangeReplicas{{rs[0].ID, two(2, 3)}}},                        // a range missing
		{Keyspace: "def", Replicas: 3, Add: []RangeReplicas{{rs[0].ID, two(2, 3)}, {rs[1].ID, two(1, 5)}}}, // node 1 already there
		{Keyspace: "def", Replicas: 3, Add: []RangeReplicas{{rs[0].ID, two(2, 3)}, {rs[0].ID, two(4, 5)}}}, // a range twice
		{Keyspace: "nope", Replicas: 3},
	} {
		if _, _, err := c.Apply(&CatalogOp{Grow: &bad}); err == nil {
			t.Errorf("growth %+v accepted", bad)
		}
	}
	if got := len(c.Ranges[rs[0].ID].Replicas); got != 1 || c.Keyspaces["def"].Replicas != 1 {
		t.Fatalf("a refused growth changed the catalog: %d replicas, N=%d", got, c.Keyspaces["def"].Replicas)
	}
	good := GrowKeyspace{Keyspace: "def", Replicas: 3, Add: []RangeReplicas{{rs[0].ID, two(2, 3)}, {rs[1].ID, two(4, 5)}}}
	writes, _, err := c.Apply(&CatalogOp{Grow: &good})
	if err != nil || len(writes) != 3 {
		t.Fatalf("growth: %v, %d writes", err, len(writes))
	}
	if got := fmt.Sprint(c.Ranges[rs[1].ID].Replicas); got != "[{1  0 false false} {4  0 true false} {5  0 true false}]" || c.Keyspaces["def"].Replicas != 3 {
		t.Errorf("after the growth: range %s, N=%d", got, c.Keyspaces["def"].Replicas)
	}
	if len(rs[0].Replicas) != 1 {
		t.Errorf("the old descriptor changed: %v", rs[0].Replicas)
	}
}
