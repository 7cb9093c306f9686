package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/cluster"
)

// startLab starts a local cluster of the kvd built for these tests with
// the lab's StartLocal, and stops it when the test ends.
func startLab(t *testing.T, opts cluster.LocalOptions) *cluster.Local {
	t.Helper()
	opts.KVD = bin.kvd
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	l, err := cluster.StartLocal(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes ready in %v", len(l.Endpoints()), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Stop(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// labTarget is a target of l, with its nemesis if hurt.
func labTarget(t *testing.T, l *cluster.Local, hurt bool) lab.Target {
	tg := lab.Target{Endpoints: l.Endpoints(), Logf: t.Logf}
	if hurt {
		tg.Nemesis = l.Nemesis()
	}
	return tg
}

// runLab runs a cluster scenario with a deadline and logs its story.
func runLab(t *testing.T, f func(context.Context, lab.Target) (*lab.Result, error), tg lab.Target) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := f(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Where != "cluster" {
		t.Errorf("Where %q, want cluster", res.Where)
	}
	t.Logf("%s in %v: told sold %v, owner %q, unavailable %v\n%s", res.Verdict, res.Duration.Round(time.Millisecond),
		res.ToldSold, res.Owner, res.Unavailable.Round(time.Millisecond), strings.Join(res.Story, "\n"))
	return res
}

// soldOnce fails the test unless exactly one buyer was told "sold" and
// the final read names that buyer.
func soldOnce(t *testing.T, res *lab.Result) {
	t.Helper()
	if len(res.ToldSold) != 1 || res.Owner != res.ToldSold[0] || res.LostSales != 0 || res.PhonesSold != 1 || res.DoubleSales != 0 {
		t.Errorf("told sold %v, owner %q, lost %d, phones sold %d, double sales %d: want one buyer told and owning the phone",
			res.ToldSold, res.Owner, res.LostSales, res.PhonesSold, res.DoubleSales)
	}
}

// kinds counts the timeline's events of each kind, and the Sold events
// by the label's prefix before ": " (the keyspace or geometry).
func kinds(res *lab.Result) (map[lab.EventKind]int, map[string]int) {
	byKind, soldBy := map[lab.EventKind]int{}, map[string]int{}
	for _, e := range res.Timeline.Events {
		byKind[e.Kind]++
		if e.Kind == lab.Sold {
			shop, _, _ := strings.Cut(e.Label, ": ")
			soldBy[shop]++
		}
	}
	return byKind, soldBy
}

// TestLabCluster runs the lab's cluster scenarios against three kvd
// processes, n1 with 2 votes in weighted geometries: the W/R/N shop
// sells twice under real concurrency, compare-and-swap through paxos
// sells once, and raft and paxos keyspaces sell once and keep the sale
// while the nemesis kills and pauses their leaders.
func TestLabCluster(t *testing.T) {
	l := startLab(t, cluster.LocalOptions{Nodes: 3, Weights: []int{2, 1, 1}})

	t.Run("WRN", func(t *testing.T) {
		// A double sale needs two buyers to read before either writes:
		// likely on one run, not certain.
		const runs = 5
		doubled := 0
		for i := 1; i <= runs && doubled == 0; i++ {
			res := runLab(t, cluster.WRN, labTarget(t, l, false))
			if res.DoubleSales != len(res.ToldSold)-1 || len(res.ToldSold) == 0 || res.PhonesSold != 1 ||
				!slices.Contains(res.ToldSold, res.Owner) || res.LostSales != len(res.ToldSold)-1 {
				t.Fatalf("run %d: told sold %v, double sales %d, owner %q, phones sold %d, lost %d: inconsistent",
					i, res.ToldSold, res.DoubleSales, res.Owner, res.PhonesSold, res.LostSales)
			}
			if res.DoubleSales > 0 {
				doubled++
				if res.Verdict != lab.SoldTwice {
					t.Errorf("verdict %q with %d double sales", res.Verdict, res.DoubleSales)
				}
				if by, _ := kinds(res); by[lab.Broke] == 0 {
					t.Errorf("a double sale without a Broke event on the timeline")
				}
			}
		}
		if doubled == 0 {
			t.Errorf("no double sale in %d runs of the W/R/N shop", runs)
		}
	})

	t.Run("BasicPaxos", func(t *testing.T) {
		for _, hurt := range []bool{false, true} {
			res := runLab(t, cluster.BasicPaxos, labTarget(t, l, hurt))
			soldOnce(t, res)
			if res.Verdict != lab.Correct {
				t.Errorf("nemesis %v: verdict %q, want %q", hurt, res.Verdict, lab.Correct)
			}
			if by, _ := kinds(res); hurt && (by[lab.Crash] != 1 || by[lab.Restart] != 1) {
				t.Errorf("nemesis %v: %d crashes and %d restarts on the timeline, want 1 and 1", hurt, by[lab.Crash], by[lab.Restart])
			}
		}
	})

	t.Run("Consensus", func(t *testing.T) {
		res := runLab(t, cluster.Consensus, labTarget(t, l, true))
		soldOnce(t, res)
		by, soldBy := kinds(res)
		for _, k := range []lab.EventKind{lab.Crash, lab.Restart, lab.Pause, lab.Resume} {
			if by[k] != 1 {
				t.Errorf("%d %s events, want 1", by[k], k)
			}
		}
		if soldBy["raft"] != 1 || soldBy["paxos"] != 1 {
			t.Errorf("sold events by keyspace %v: want one in raft and one in paxos", soldBy)
		}
	})

	t.Run("ConsensusWithoutNemesis", func(t *testing.T) {
		res := runLab(t, cluster.Consensus, labTarget(t, l, false))
		soldOnce(t, res)
		if !slices.ContainsFunc(res.Story, func(s string) bool {
			return strings.Contains(s, "no faults: this environment cannot hurt the nodes (use --local)")
		}) {
			t.Errorf("the story does not say that nothing was hurt")
		}
		if by, _ := kinds(res); by[lab.Crash]+by[lab.Pause] != 0 {
			t.Errorf("faults on the timeline of a run without a nemesis: %v", by)
		}
	})

	t.Run("Geometries", func(t *testing.T) {
		res := runLab(t, cluster.Geometries, labTarget(t, l, true))
		soldOnce(t, res)
		by, soldBy := kinds(res)
		// n1 holds 2 of the 4 votes: the largest set the weighted
		// geometry survives is one of n2 and n3.
		if by[lab.Crash] != 1 || by[lab.Restart] != 1 {
			t.Errorf("crashes %d, restarts %d: want 1 each", by[lab.Crash], by[lab.Restart])
		}
		for _, e := range res.Timeline.Events {
			if e.Kind == lab.Crash && e.Lane == "n1" {
				t.Errorf("n1, with 2 of 4 votes, was killed: the others hold no quorum without it")
			}
		}
		if len(soldBy) != 1 || soldBy["weighted"] != 1 {
			t.Errorf("sold events by geometry %v: want one in weighted", soldBy)
		}
		story := strings.Join(res.Story, " ")
		for _, skip := range []string{"zones needs 3 zones", "grid:3x3 needs 9 nodes"} {
			if !strings.Contains(story, skip) {
				t.Errorf("the story does not say %q", skip)
			}
		}
	})
}

// TestLabZones runs the geometries on six kvd processes in three zones of
// two: weighted (a majority of 6 here) and zones both survive two nodes
// killed, and each sells its phone once. Stop then leaves nothing behind.
func TestLabZones(t *testing.T) {
	l := startLab(t, cluster.LocalOptions{Nodes: 6, Zones: []string{"east", "east", "west", "west", "north", "north"}})
	res := runLab(t, cluster.Geometries, labTarget(t, l, true))
	soldOnce(t, res)
	by, soldBy := kinds(res)
	if soldBy["weighted"] != 1 || soldBy["zones"] != 1 {
		t.Errorf("sold events by geometry %v: want one in weighted and one in zones", soldBy)
	}
	if by[lab.Crash] != 4 || by[lab.Restart] != 4 {
		t.Errorf("crashes %d, restarts %d: want 2 per geometry", by[lab.Crash], by[lab.Restart])
	}

	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster's directory after Stop: %v", err)
	}
	for _, ep := range l.Endpoints() {
		if c, err := net.DialTimeout("tcp", ep, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", ep)
		}
	}
}

// TestKvctlLabLocal runs the cluster half of the road as a user does:
// kvctl lab all --local 3, which finds the kvd next to it, starts three
// nodes, hurts them, writes every run's picture and stops them.
func TestKvctlLabLocal(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.kvctl, "lab", "all", "--local", "3", "--weights", "2,1,1", "-o", "json", "--svg-dir", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kvctl lab all --local 3: %v\n%s", err, stderr.String())
	}
	var results []*lab.Result
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("kvctl lab all -o json: %v\n%s", err, out)
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Scenario)
		if r.Where != "cluster" {
			t.Errorf("%s ran in %q, want cluster", r.Scenario, r.Where)
		}
		if r.Scenario != "wrn" && (r.Verdict != lab.Correct || len(r.ToldSold) != 1) {
			t.Errorf("%s: verdict %q, told sold %v: want correct, one buyer", r.Scenario, r.Verdict, r.ToldSold)
		}
		pic := filepath.Join(dir, r.Label()+"-"+r.Scenario+"-cluster.svg")
		if b, err := os.ReadFile(pic); err != nil || xml.Unmarshal(b, new(struct{})) != nil {
			t.Errorf("%s: no picture at %s (%v)", r.Scenario, pic, err)
		}
	}
	if want := []string{"wrn", "basic-paxos", "geometries", "consensus"}; !slices.Equal(names, want) {
		t.Errorf("ran %v, want %v", names, want)
	}
	for _, line := range []string{"killed n", "restarted n", "paused n"} {
		if !strings.Contains(stderr.String(), "lab: "+line) {
			t.Errorf("stderr does not report %q:\n%s", line, stderr.String())
		}
	}
}
