package quorum

import (
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func nodes(n int) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: uint64(i + 1), Zone: "z"}
	}
	return out
}

// The sizes of each geometry's quorums, from the definitions in the docs.
func TestQuorumSizes(t *testing.T) {
	for _, c := range []struct {
		geometry string
		nodes    []Node
		min1     int
		min2     int
		f1, f2   int
	}{
		{"majority", nodes(1), 1, 1, 0, 0},
		{"majority", nodes(2), 2, 2, 0, 0},
		{"majority", nodes(3), 2, 2, 1, 1},
		{"majority", nodes(4), 3, 3, 1, 1},
		{"majority", nodes(5), 3, 3, 2, 2},
		{"majority", nodes(6), 4, 4, 2, 2},
		{"majority", nodes(7), 4, 4, 3, 3},
		{"flexible:4,2", nodes(5), 4, 2, 1, 3},
		{"grid:3x3", nodes(9), 3, 3, 2, 2},
		{"grid:2x3", nodes(6), 3, 2, 1, 2},
		{"weighted", []Node{{ID: 1, Weight: 3}, {ID: 2}, {ID: 3}}, 1, 1, 0, 0},
		{"weighted", []Node{{ID: 1, Weight: 2}, {ID: 2}, {ID: 3}}, 2, 2, 0, 0},
		{"weighted", []Node{{ID: 1, Weight: 2}, {ID: 2, Weight: 2}, {ID: 3}}, 2, 2, 1, 1},
		{"zones", []Node{{ID: 1, Zone: "a"}, {ID: 2, Zone: "a"}, {ID: 3, Zone: "b"}, {ID: 4, Zone: "b"}, {ID: 5, Zone: "c"}, {ID: 6, Zone: "c"}}, 3, 2, 1, 2},
		{"zones", []Node{{ID: 1, Zone: "a"}, {ID: 2, Zone: "b"}, {ID: 3, Zone: "c"}}, 3, 1, 0, 2},
	} {
		s, err := Parse(c.geometry, c.nodes)
		if err != nil {
			t.Fatalf("%s: %v", c.geometry, err)
		}
		r, err := Prove(s)
		if err != nil {
			t.Fatalf("%s: %v", c.geometry, err)
		}
		if r.Phase1.MinSize != c.min1 || r.Phase2.MinSize != c.min2 || r.Phase1.Tolerates != c.f1 || r.Phase2.Tolerates != c.f2 {
			t.Errorf("%s on %d nodes: sizes %d,%d tolerating %d,%d; want %d,%d tolerating %d,%d", c.geometry, len(c.nodes),
				r.Phase1.MinSize, r.Phase2.MinSize, r.Phase1.Tolerates, r.Phase2.Tolerates, c.min1, c.min2, c.f1, c.f2)
		}
	}
}

// The theorems the geometries stand on: majorities and weighted votes meet
// in both phases; a grid's rows meet its columns; every zone's full set
// meets a set with a node in every zone; flexible sizes meet iff Q1+Q2 > N.
func TestPropertyKnownIntersections(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genSystem(t, "", 1)
		r, err := Prove(s)
		if err != nil {
			t.Fatal(err)
		}
		n := len(s.Voters())
		switch g := s.(type) {
		case majority, weighted:
			if !r.Intersect || !r.Phase1Intersect {
				t.Fatalf("%s on %d: quorums must meet in both phases", s, n)
			}
		case grouped:
			if !r.Intersect {
				t.Fatalf("%s on %d: phase 1 must meet phase 2", s, n)
			}
		case flexible:
			if r.Intersect != (g.q1+g.q2 > n) {
				t.Fatalf("%s on %d: Intersect %v", s, n, r.Intersect)
			}
			if r.Phase1Intersect != (2*g.q1 > n) {
				t.Fatalf("%s on %d: Phase1Intersect %v", s, n, r.Phase1Intersect)
			}
		}
	})
}

func TestNewRejects(t *testing.T) {
	for _, c := range []struct {
		geometry string
		nodes    []Node
	}{
		{"majority", nil},
		{"majority", []Node{{ID: 0}}},
		{"majority", []Node{{ID: 1}, {ID: 1}}},
		{"grid:2x2", nodes(3)},
		{"flexible:4,1", nodes(3)},
		{"zones", []Node{{ID: 1}}},
		{"weighted", []Node{{ID: 1, Weight: -1}}},
		{"weighted", []Node{{ID: 1, Weight: MaxWeight + 1}}},
		{"grid:1x1x1", nodes(1)},
		{" flexible:1, 2", nodes(3)},
		{"Majority", nodes(3)},
	} {
		if _, err := Parse(c.geometry, c.nodes); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q, %d nodes) = %v, want ErrInvalid", c.geometry, len(c.nodes), err)
		}
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, s := range []string{"majority", "weighted", "zones", "grid:3x3", "grid:1x5", "flexible:4,2"} {
		spec, err := ParseSpec(s)
		if err != nil || spec.String() != s {
			t.Errorf("ParseSpec(%q) = %v, %v", s, spec, err)
		}
	}
	if spec, err := ParseSpec("  grid:2x2 "); err != nil || spec.String() != "grid:2x2" {
		t.Errorf("surrounding spaces: %v, %v", spec, err)
	}
}

func TestParseNodeList(t *testing.T) {
	l, err := ParseNodeList("a@east:2, b@east,c")
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{{ID: 1, Zone: "east", Weight: 2}, {ID: 2, Zone: "east", Weight: 1}, {ID: 3, Zone: "default", Weight: 1}}
	for i, n := range want {
		if l.Nodes[i] != n {
			t.Errorf("node %d = %+v, want %+v", i, l.Nodes[i], n)
		}
	}
	if l.Name(2) != "b" || l.Name(99) != "99" {
		t.Errorf("names: %q %q", l.Name(2), l.Name(99))
	}
	for _, bad := range []string{"", "a,,b", "a@b@c", "a:1:2", "a b", "-1", "1025", "x:1048577"} {
		if _, err := ParseNodeList(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseNodeList(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestProtocols(t *testing.T) {
	for _, p := range Protocols {
		if got, err := ParseProtocol(string(p)); got != p || err != nil {
			t.Errorf("ParseProtocol(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParseProtocol("naive-raft"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown protocol accepted: %v", err)
	}
}
