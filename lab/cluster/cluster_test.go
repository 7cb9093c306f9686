package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/quorum"
)

// The package's runs need a cluster: e2e/lab_test.go runs them against
// kvd processes. These tests cover what needs none.

func TestSurvivable(t *testing.T) {
	for _, tc := range []struct {
		geometry string
		nodes    string // quorum.ParseNodeList
		prefer   uint64
		size     int  // how many may fail
		holds    bool // the set holds prefer
	}{
		// Any one of three; the preferred one when it can be.
		{"majority", "3", 3, 1, true},
		{"majority", "5", 2, 2, true},
		// a holds 2 of 4 votes: only b or c may go, not a.
		{"weighted", "a:2,b,c", 1, 1, false},
		{"weighted", "a:2,b,c", 3, 1, true},
		// Three zones of two: one node in each of two zones, the third
		// zone whole for phase 2.
		{"zones", "a@x,b@x,c@y,d@y,e@z,f@z", 1, 2, true},
		// A 3x3 grid: a row and a column must survive, so 4 nodes
		// outside one row and one column may fail.
		{"grid:3x3", "9", 5, 4, true},
		// One node: it cannot fail.
		{"majority", "1", 1, 0, false},
	} {
		l, err := quorum.ParseNodeList(tc.nodes)
		if err != nil {
			t.Fatal(err)
		}
		sys, err := quorum.Parse(tc.geometry, l.Nodes)
		if err != nil {
			t.Fatal(err)
		}
		got := survivable(sys, tc.prefer)
		if len(got) != tc.size || slices.Contains(got, tc.prefer) != tc.holds {
			t.Errorf("survivable(%s on %s, prefer %d) = %v, want %d nodes, prefer among them %v", tc.geometry, tc.nodes, tc.prefer, got, tc.size, tc.holds)
		}
		alive := func(id uint64) bool { return !slices.Contains(got, id) }
		if !sys.IsQuorum(quorum.Phase1, alive) || !sys.IsQuorum(quorum.Phase2, alive) {
			t.Errorf("%s on %s without %v holds no quorum of some phase", tc.geometry, tc.nodes, got)
		}
	}
}

func TestGeometriesFit(t *testing.T) {
	cluster := func(zones ...string) []*v1.Member {
		var ms []*v1.Member
		for i, z := range zones {
			ms = append(ms, &v1.Member{NodeId: "n" + string(rune('1'+i)), Zone: z})
		}
		return ms
	}
	for _, tc := range []struct {
		name string
		live []*v1.Member
		runs []string // the geometries not skipped
	}{
		{"two nodes", cluster("a", "b"), nil},
		{"three zones of one", cluster("a", "b", "c"), []string{"weighted"}},
		{"two zones of three", cluster("a", "a", "a", "b", "b", "b"), []string{"weighted"}},
		{"three zones of two", cluster("a", "a", "b", "b", "c", "c"), []string{"weighted", "zones"}},
		{"nine in three zones", cluster("a", "a", "a", "b", "b", "b", "c", "c", "c"), []string{"weighted", "zones", "grid:3x3"}},
	} {
		var runs []string
		for _, g := range geometries(tc.live) {
			if g.skip == "" {
				runs = append(runs, g.spec)
			} else if !strings.HasPrefix(g.skip, g.spec+" needs") {
				t.Errorf("%s: %s skipped with %q: the reason should name it", tc.name, g.spec, g.skip)
			}
		}
		if !slices.Equal(runs, tc.runs) {
			t.Errorf("%s: runs %v, want %v", tc.name, runs, tc.runs)
		}
	}
}

func TestUnion(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		iv   [][2]time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[][2]time.Duration{{0, s}}, s},
		{[][2]time.Duration{{2 * s, 3 * s}, {0, s}}, 2 * s},                 // apart
		{[][2]time.Duration{{0, 2 * s}, {s, 3 * s}}, 3 * s},                 // overlapping
		{[][2]time.Duration{{0, 4 * s}, {s, 2 * s}, {5 * s, 6 * s}}, 5 * s}, // nested, then apart
	} {
		if got := lab.Union(tc.iv); got != tc.want {
			t.Errorf("Union(%v) = %v, want %v", tc.iv, got, tc.want)
		}
	}
}

// TestShopJudges: a shop's counts and verdict from its buyers' answers,
// and the moment a second buyer is told "sold" marked as the break.
func TestShopJudges(t *testing.T) {
	r := newRun(lab.Target{})
	s := newShop(r, "raft", "lab-raft-1")
	s.noAnswer("ann", 0, "no answer in time")
	s.sold("bob", 0, "sold")
	s.refused("ann", 0, "sold out")
	s.owner = "bob"
	if res := s.result(); res.Verdict != lab.Correct || res.LostSales != 0 || res.PhonesSold != 1 {
		t.Errorf("one sale kept: verdict %q, lost %d, phones %d", res.Verdict, res.LostSales, res.PhonesSold)
	}
	s.sold("cat", 0, "sold")
	res := s.result()
	if res.Verdict != lab.SoldTwice || res.DoubleSales != 1 || res.LostSales != 1 {
		t.Errorf("two sales: verdict %q, double %d, lost %d", res.Verdict, res.DoubleSales, res.LostSales)
	}
	var broke []lab.Event
	for _, e := range r.timeline(nil).Events {
		if e.Kind == lab.Broke {
			broke = append(broke, e)
		}
	}
	if len(broke) != 1 || broke[0].Lane != "cat" || !strings.HasPrefix(broke[0].Label, "raft: ") {
		t.Errorf("broke events %+v: want one on cat's lane, labelled with the shop", broke)
	}
}

// TestShopResolves: a buyer who gave up with its outcome unknown is told
// "sold" if the final read names it, and only then.
func TestShopResolves(t *testing.T) {
	s := newShop(newRun(lab.Target{}), "", "ks")
	s.unresolved("ann")
	s.unresolved("bob")
	s.owner = "bob"
	s.resolve()
	if got := s.told(); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("told sold %v, want [bob]", got)
	}
}

func TestLocalOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts LocalOptions
		ok   bool
	}{
		{LocalOptions{}, true},
		{LocalOptions{Zones: []string{"a", "b", "c"}}, true}, // 3 nodes by default
		{LocalOptions{Zones: []string{"a", "b"}}, false},
		{LocalOptions{Nodes: 6, Weights: []int{1, 1, 1, 1, 1, 1}}, true},
		{LocalOptions{Nodes: 6, Weights: []int{1}}, false},
		{LocalOptions{Nodes: -1}, false},
		{LocalOptions{Nodes: 25}, false},
	} {
		if err := tc.opts.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", tc.opts, err, tc.ok)
		}
	}
}
