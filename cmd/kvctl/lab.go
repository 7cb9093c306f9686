package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/cluster"
	"github.com/quorumkv/quorumkv/lab/road"
)

func labCommand() *cli.Command {
	return withGlobals(&cli.Command{
		Name:      "lab",
		Usage:     "run the article's designs as a flash sale, break them, and count the damage",
		ArgsUsage: "[SCENARIO | all | list]",
		Description: `Every design on the road of the article quorumkv grows out of, from one
server to Raft, sells one phone to B buyers while the faults that break it
are injected. Each run tells its story (what the design does, the fault,
phones sold, buyers told "sold", double sales, sales lost, time without an
answer, messages and round trips per sale) and ends in a verdict: sells
twice, loses a sale, replicas disagree, stops selling, or correct.

Runs happen in the deterministic simulator: a seed replays a run exactly.
The designs the product itself implements (wrn, basic-paxos, geometries,
consensus) also run against a real cluster: --cluster uses --endpoints
(no faults: kvctl cannot hurt those nodes), --local N starts N kvd
processes on this machine and kills and pauses them. docs/lab.md walks
the road.

   kvctl lab list                        # the scenarios
   kvctl lab async-backup                # one run, seed 1, and its story
   kvctl lab wrn --seeds 100             # how many of 100 seeds sell twice
   kvctl lab raft --svg raft.svg         # and its timeline as a picture
   kvctl lab all                         # the whole road as one table
   kvctl lab consensus --local 3         # the product's Raft and Paxos, killed and paused
   kvctl lab geometries --local 6 --zones a,a,b,b,c,c --weights 3,1,1,1,1,1`,
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "the simulator's seed (the first one, with --seeds)"},
			&cli.IntFlag{Name: "seeds", Value: 1, Usage: "run this many seeds from --seed and count the verdicts"},
			&cli.StringFlag{Name: "svg", Usage: "write the run's timeline to this SVG file"},
			&cli.StringFlag{Name: "svg-dir", Usage: "lab all: write each run's timeline to `DIR`/NUMBER-NAME.svg (e.g. 2-async-backup.svg)"},
			&cli.BoolFlag{Name: "cluster", Usage: "run against the cluster at --endpoints instead of the simulator (wrn, basic-paxos, geometries, consensus)"},
			&cli.IntFlag{Name: "local", Usage: "start `N` kvd processes here and run against them, with kills and pauses", DefaultText: "off"},
			&cli.StringFlag{Name: "kvd", Usage: "with --local: the kvd binary (default: next to kvctl, else on PATH)"},
			&cli.StringFlag{Name: "zones", Usage: "with --local: each node's zone, comma-separated (default: each node its own zone)"},
			&cli.StringFlag{Name: "weights", Usage: "with --local: each node's weight, comma-separated (default: 1 each)"},
			&cli.IntFlag{Name: "buyers", Usage: "on a cluster: how many buyers race", DefaultText: strconv.Itoa(cluster.DefaultBuyers)},
		},
		Action: labRun,
	})
}

func labRun(c *cli.Context) error {
	if c.NArg() > 1 {
		return usagef("lab takes one scenario, all or list; got %q", c.Args().Slice())
	}
	out, err := outputFormat(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	if name == "" || name == "list" {
		return labList(c.App.Writer, out)
	}
	seeds := c.Int("seeds")
	if seeds < 1 || seeds > 100_000 {
		return usagef("--seeds %d: want 1 to 100000", seeds)
	}
	onCluster := c.Bool("cluster") || c.IsSet("local")
	if onCluster && seeds > 1 {
		return usagef("--seeds counts simulator runs; a cluster run has no seed")
	}
	if c.IsSet("local") && (c.Int("local") < 1 || c.Int("local") > 9) {
		return usagef("--local %d: want 1 to 9 nodes", c.Int("local"))
	}
	for _, f := range []string{"kvd", "zones", "weights"} {
		if c.IsSet(f) && !c.IsSet("local") {
			return usagef("--%s is for --local: the nodes the lab starts", f)
		}
	}
	if c.IsSet("buyers") && !onCluster {
		return usagef("--buyers is for --cluster and --local; each simulated design has its own number of buyers")
	}
	if c.IsSet("buyers") && (c.Int("buyers") < 1 || c.Int("buyers") > 1000) {
		return usagef("--buyers %d: want 1 to 1000", c.Int("buyers"))
	}
	if c.IsSet("svg-dir") && name != "all" {
		return usagef("--svg-dir is for lab all; use --svg FILE for one scenario")
	}
	if c.IsSet("svg") && name == "all" {
		return usagef("--svg is for one scenario; use --svg-dir DIR for lab all")
	}
	var scenarios []*lab.Scenario
	if name == "all" {
		for _, s := range road.Scenarios() {
			if (onCluster && s.Cluster != nil) || (!onCluster && s.Sim != nil) {
				scenarios = append(scenarios, s)
			}
		}
	} else {
		s, err := road.Find(name)
		if err != nil {
			return usageError{err}
		}
		if onCluster && s.Cluster == nil {
			return usagef("lab %s runs only in the simulator; the scenarios that run on a cluster are wrn, basic-paxos, geometries and consensus", s.Name)
		}
		if !onCluster && s.Sim == nil {
			return usagef("lab %s runs only on a cluster: add --cluster (the cluster at --endpoints) or --local N", s.Name)
		}
		scenarios = []*lab.Scenario{s}
	}
	if seeds > 1 {
		return labSweep(c, scenarios, out)
	}

	var results []*lab.Result
	if onCluster {
		results, err = labOnCluster(c, scenarios)
	} else {
		for _, s := range scenarios {
			r, err := road.RunSim(s, c.Uint64("seed"))
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	if err != nil {
		return err
	}
	if err := labPictures(c, results); err != nil {
		return err
	}
	w := c.App.Writer
	switch {
	case out == formatJSON:
		return lab.WriteJSON(w, results)
	case name == "all":
		return lab.WriteTable(w, results)
	default:
		for i, r := range results {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if err := lab.WriteStory(w, r); err != nil {
				return err
			}
		}
		return nil
	}
}

// labList prints the scenarios: where each runs and what it shows.
func labList(w io.Writer, out format) error {
	type row struct {
		Number  string `json:"number"`
		Name    string `json:"name"`
		Title   string `json:"title"`
		Article string `json:"article"`
		Expect  string `json:"expect"`
		Runs    string `json:"runs"`
	}
	var rows []row
	for _, s := range road.Scenarios() {
		var runs []string
		if s.Sim != nil {
			runs = append(runs, "sim")
		}
		if s.Cluster != nil {
			runs = append(runs, "cluster")
		}
		rows = append(rows, row{fmt.Sprintf("%d%s", s.Number, s.Variant), s.Name, s.Title, s.Article, string(s.Expect), strings.Join(runs, "+")})
	}
	if out == formatJSON {
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSCENARIO\tDESIGN\tSHOWS\tRUNS\tARTICLE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Number, r.Name, r.Title, r.Expect, r.Runs, r.Article)
	}
	return tw.Flush()
}

// labSweep runs each scenario over --seeds seeds and counts the verdicts.
func labSweep(c *cli.Context, scenarios []*lab.Scenario, out format) error {
	var tallies []road.Tally
	for _, s := range scenarios {
		t, err := road.Sweep(s, c.Uint64("seed"), c.Int("seeds"))
		if err != nil {
			return err
		}
		tallies = append(tallies, t)
	}
	if out == formatJSON {
		return writeJSON(c.App.Writer, tallies)
	}
	return road.WriteSweep(c.App.Writer, tallies)
}

// labOnCluster runs the scenarios against --endpoints, or against a
// cluster of --local kvd processes that it starts, hurts and stops.
func labOnCluster(c *cli.Context, scenarios []*lab.Scenario) ([]*lab.Result, error) {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	target := lab.Target{Buyers: c.Int("buyers"), Logf: func(format string, args ...any) {
		fmt.Fprintf(c.App.ErrWriter, "lab: "+format+"\n", args...)
	}}
	var cl *client.Client
	if c.IsSet("local") {
		var zones []string
		if c.IsSet("zones") {
			zones = strings.Split(c.String("zones"), ",")
			if len(zones) != c.Int("local") {
				return nil, usagef("--zones names %d zones for %d nodes: give one per node", len(zones), c.Int("local"))
			}
		}
		var weights []int
		if c.IsSet("weights") {
			for _, w := range strings.Split(c.String("weights"), ",") {
				n, err := strconv.Atoi(strings.TrimSpace(w))
				if err != nil || n < 1 {
					return nil, usagef("--weights %q: want a positive whole number per node", c.String("weights"))
				}
				weights = append(weights, n)
			}
			if len(weights) != c.Int("local") {
				return nil, usagef("--weights gives %d weights for %d nodes: give one per node", len(weights), c.Int("local"))
			}
		}
		local, err := cluster.StartLocal(ctx, cluster.LocalOptions{Nodes: c.Int("local"), KVD: c.String("kvd"), Zones: zones, Weights: weights, Logf: target.Logf})
		if err != nil {
			return nil, err
		}
		defer local.Stop()
		target.Endpoints, target.Nemesis = local.Endpoints(), local.Nemesis()
		to, err := timeout(c)
		if err != nil {
			return nil, err
		}
		if cl, err = client.New(client.Config{Endpoints: target.Endpoints, Timeout: to}); err != nil {
			return nil, err
		}
	} else {
		var err error
		if cl, err = newClient(c); err != nil {
			return nil, err
		}
		if target.Endpoints, err = endpoints(c); err != nil {
			return nil, err
		}
	}
	target.Client = cl
	var results []*lab.Result
	for _, s := range scenarios {
		r, err := road.RunCluster(ctx, s, target)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// labPictures writes the timelines --svg or --svg-dir asks for.
func labPictures(c *cli.Context, results []*lab.Result) error {
	write := func(path string, r *lab.Result) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := lab.SVG(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if p := c.String("svg"); p != "" {
		return write(p, results[0])
	}
	if dir := c.String("svg-dir"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, r := range results {
			name := r.Label() + "-" + r.Scenario
			if r.Where == "cluster" {
				name += "-cluster"
			}
			if err := write(filepath.Join(dir, name+".svg"), r); err != nil {
				return err
			}
		}
	}
	return nil
}
