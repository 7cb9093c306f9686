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
