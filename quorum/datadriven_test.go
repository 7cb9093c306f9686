package quorum

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/scripts. Commands:
//
//	prove    nodes=LIST geometry=G            the Report, as kvctl prints it
//	quorum   nodes=LIST geometry=G set=a,b    is the set a quorum of each phase?
//	index    nodes=LIST geometry=G acked=a:5,b:7
//	                                          the quorum index of each phase
//	vote     nodes=LIST geometry=G granted=a,b refused=c
//	                                          the phase-1 vote and the phase-2 vote
//	joint    old-nodes=LIST old=G new-nodes=LIST new=G [set=...]
//	                                          the joint system's proof, or quorum test
//
// LIST is a count or id[@zone][:weight],... as kvctl quorum check takes it.
// Run with -rewrite to regenerate the expected output.
func TestDataDriven(t *testing.T) {
	files := 0
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		files++
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := runCommand(t, d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
	if files == 0 {
		t.Fatal("no scripts found in testdata/scripts")
	}
}

// names maps node names to IDs across the lists of one command, so that
// the old and new systems of a joint configuration agree on who is who.
type names struct {
	ids   map[string]uint64
	names []string
}

func (n *names) id(name string) uint64 {
	if id, ok := n.ids[name]; ok {
		return id
	}
	n.names = append(n.names, name)
	n.ids[name] = uint64(len(n.names))
	return n.ids[name]
}

func (n *names) name(id uint64) string { return n.names[id-1] }

func (n *names) system(t *testing.T, d *datadriven.TestData, nodesKey, geoKey string) (System, error) {
	var list, geo string
	d.ScanArgs(t, nodesKey, &list)
	d.ScanArgs(t, geoKey, &geo)
	l, err := ParseNodeList(list)
	if err != nil {
		return nil, err
	}
	for i := range l.Nodes {
		l.Nodes[i].ID = n.id(l.Names[i])
	}
	return Parse(geo, l.Nodes)
}

func (n *names) set(list string) []uint64 {
	var ids []uint64
	for _, name := range strings.Split(list, ",") {
		if name != "" {
			ids = append(ids, n.id(name))
		}
	}
	return ids
}

func runCommand(t *testing.T, d *datadriven.TestData) (string, error) {
	n := &names{ids: map[string]uint64{}}
	var s System
	var err error
	if d.Cmd == "joint" {
		var old, new System
		if old, err = n.system(t, d, "old-nodes", "old"); err != nil {
			return "", err
		}
		if new, err = n.system(t, d, "new-nodes", "new"); err != nil {
			return "", err
		}
		s = NewJoint(old, new)
		if !d.HasArg("set") {
			return proveText(s, n)
		}
	} else if s, err = n.system(t, d, "nodes", "geometry"); err != nil {
		return "", err
	}
	var b strings.Builder
	switch d.Cmd {
	case "prove":
		return proveText(s, n)
	case "quorum", "joint":
		var list string
		d.ScanArgs(t, "set", &list)
		ids := n.set(list)
		for _, p := range []Phase{Phase1, Phase2} {
			fmt.Fprintf(&b, "%s: %v\n", p, IsQuorumOf(s, p, ids...))
		}
	case "index":
		var list string
		d.ScanArgs(t, "acked", &list)
		acked := map[uint64]uint64{}
		for _, item := range strings.Split(list, ",") {
			name, idx, _ := strings.Cut(item, ":")
			v, err := strconv.ParseUint(idx, 10, 64)
			if err != nil {
				t.Fatalf("%s: bad acked item %q", d.Pos, item)
			}
			acked[n.id(name)] = v
		}
		for _, p := range []Phase{Phase1, Phase2} {
			fmt.Fprintf(&b, "%s: %d\n", p, s.QuorumIndex(p, func(id uint64) uint64 { return acked[id] }))
		}
	case "vote":
		var granted, refused string
		d.ScanArgs(t, "granted", &granted)
		d.MaybeScanArgs(t, "refused", &refused)
		votes := map[uint64]bool{}
		for _, id := range n.set(granted) {
			votes[id] = true
		}
		for _, id := range n.set(refused) {
			votes[id] = false
		}
		for _, p := range []Phase{Phase1, Phase2} {
			fmt.Fprintf(&b, "%s: %s\n", p, Vote(s, p, votes))
		}
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return b.String(), nil
}

func proveText(s System, n *names) (string, error) {
	r, err := Prove(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := r.WriteText(&b, n.name, slices.Clone(Protocols)); err != nil {
		return "", err
	}
	return b.String(), nil
}
