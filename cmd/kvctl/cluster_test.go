package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
)

// `kvctl cluster ranges` shows the answering node's range errors (a range
// stopped by a fault of its own), and "-" for the others.
func TestPrintRangesShowsErrors(t *testing.T) {
	var out bytes.Buffer
	c := cli.NewContext(&cli.App{Writer: &out}, nil, nil)
	err := printRanges(c, []*v1.Range{
		{Keyspace: "px", RangeId: 12, Replicas: []*v1.Replica{{NodeId: "n1"}}, Error: "compact failed: kv: range 12 holds more than 2048 bytes"},
		{Keyspace: "px", RangeId: 13, Replicas: []*v1.Replica{{NodeId: "n1"}}, Leader: "n1", Term: 2, CommitIndex: 9},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "ERROR") ||
		!strings.HasSuffix(lines[1], "compact failed: kv: range 12 holds more than 2048 bytes") || !strings.HasSuffix(lines[2], " -") {
		t.Fatalf("kvctl cluster ranges printed:\n%s", out.String())
	}
}

// Members are shown with their catalog ID and UUID: two nodes of one
// name (one that lost its data dir and came back) are told apart, and a
// node gossip knows that the catalog does not has no ID; a node being
// decommissioned says so, and each shows the replicas it holds.
func TestPrintMembers(t *testing.T) {
	var out bytes.Buffer
	err := printMembers(&out, []*v1.Member{
		{Id: 3, NodeId: "n3", Uuid: "84c08c43-78e7-4acf-af78-ce094eb3a153", Address: "10.0.0.3:7070", Zone: "z3", Weight: 1,
			State: v1.MemberState_MEMBER_STATE_DEAD},
		{Id: 4, NodeId: "n3", Uuid: "8ce0b34b-67c7-4e61-b99b-339ea99555b3", Address: "10.0.0.3:7070", Zone: "z3", Weight: 1,
			State: v1.MemberState_MEMBER_STATE_ALIVE, Version: "dev", Decommissioning: true, Replicas: 7},
		{Id: 5, NodeId: "n5", Uuid: "55555555-5555-4555-8555-555555555555", State: v1.MemberState_MEMBER_STATE_UNSPECIFIED},
		{NodeId: "n6", Uuid: "66666666-6666-4666-8666-666666666666", State: v1.MemberState_MEMBER_STATE_ALIVE},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"ID", "NODE", "UUID", "ADDRESS", "ZONE", "WEIGHT", "STATE", "REPLICAS", "VERSION"},
		{"3", "n3", "84c08c43-78e7-4acf-af78-ce094eb3a153", "10.0.0.3:7070", "z3", "1", "dead", "0"},
		{"4", "n3", "8ce0b34b-67c7-4e61-b99b-339ea99555b3", "10.0.0.3:7070", "z3", "1", "alive,decommissioning", "7", "dev"},
		{"5", "n5", "55555555-5555-4555-8555-555555555555", "0", "unknown", "0"},
		{"-", "n6", "66666666-6666-4666-8666-666666666666", "0", "alive", "0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
}
