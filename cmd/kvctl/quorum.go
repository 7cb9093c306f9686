package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/quorum"
)

func quorumCommand() *cli.Command {
	return &cli.Command{
		Name:  "quorum",
		Usage: "reason about quorum geometries",
		Subcommands: []*cli.Command{withGlobals(&cli.Command{
			Name:  "check",
			Usage: "prove that a geometry's quorums intersect on a cluster, or show two that do not",
			Description: `Enumerates every subset of the nodes and checks that each phase-1 quorum
(election, Prepare, read) shares a node with each phase-2 quorum (commit,
Accept, write). Prints the quorum sizes of each phase, the failures each
survives, and the proof or a counterexample. Exits 0 when the geometry is
safe for --mode (for every mode when --mode is not given), 1 when it is not.

   kvctl quorum check --quorum grid:3x3 --nodes 9
   kvctl quorum check --quorum zones --nodes a@east,b@east,c@west,d@west,e@north,f@north
   kvctl quorum check --quorum weighted --nodes a:2,b,c,d --mode paxos
   kvctl quorum check --quorum zones --cluster      # the live nodes of the cluster`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "quorum", Usage: "geometry: majority, weighted, grid:RxC, zones or flexible:Q1,Q2"},
				&cli.StringFlag{Name: "nodes", Usage: "a node count N, or id[@zone][:weight],... e.g. a@east:2,b@east,c@west"},
				&cli.BoolFlag{Name: "cluster", Usage: "use the live nodes of the cluster at --endpoints, with their zones and weights"},
				&cli.StringFlag{Name: "mode", Usage: "check only for raft, paxos or eventual"},
			},
			Action: quorumCheck,
		})},
	}
}

func quorumCheck(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("quorum check takes no arguments, got %q", c.Args().Slice())
	}
	out, err := outputFormat(c)
	if err != nil {
		return err
	}
	if !c.IsSet("quorum") || c.IsSet("nodes") == c.Bool("cluster") {
		return usagef("quorum check needs --quorum GEOMETRY and one of --nodes N|LIST or --cluster")
	}
	protocols := quorum.Protocols
	if c.IsSet("mode") {
		p, err := quorum.ParseProtocol(c.String("mode"))
		if err != nil {
			return usageError{err}
		}
		protocols = []quorum.Protocol{p}
	}
	var nodes quorum.NodeList
	if c.Bool("cluster") {
		if nodes, err = clusterNodes(c); err != nil {
			return err
		}
	} else if nodes, err = quorum.ParseNodeList(c.String("nodes")); err != nil {
		return usageError{err}
	}
	sys, err := quorum.Parse(c.String("quorum"), nodes.Nodes)
	if err != nil {
		return usageError{err}
	}
	report, err := quorum.Prove(sys)
	if err != nil {
		return usageError{err}
	}

	safe := true
	for _, p := range protocols {
		ok, _ := report.Safe(p)
		safe = safe && ok
	}
	if out == formatJSON {
		err = writeJSON(c.App.Writer, newReportJSON(report, nodes, protocols, safe))
	} else {
		err = report.WriteText(c.App.Writer, nodes.Name, protocols)
	}
	if err != nil {
		return err
	}
	if !safe {
		return exitCode(exitError)
	}
	return nil
}

// clusterNodes lists the cluster's live members as a node list, in
// name order, with their zones and weights.
func clusterNodes(c *cli.Context) (quorum.NodeList, error) {
	cl, err := newClient(c)
	if err != nil {
		return quorum.NodeList{}, err
	}
	members, err := cl.Members(c.Context)
	if err != nil {
		return quorum.NodeList{}, err
	}
	var items []string
	for _, m := range members {
		if m.State != v1.MemberState_MEMBER_STATE_ALIVE {
			continue
		}
		items = append(items, fmt.Sprintf("%s@%s:%d", m.NodeId, m.Zone, max(m.Weight, 1)))
	}
	if len(items) == 0 {
		return quorum.NodeList{}, fmt.Errorf("the cluster at --endpoints reports no live member")
	}
	return quorum.ParseNodeList(strings.Join(items, ","))
}

// reportJSON is quorum.Report with voters named, for -o json.
type reportJSON struct {
	Geometry        string        `json:"geometry"`
	Voters          []string      `json:"voters"`
	Subsets         uint64        `json:"subsets_checked"`
	Phase1          phaseJSON     `json:"phase1"`
	Phase2          phaseJSON     `json:"phase2"`
	Intersect       bool          `json:"intersect"`
	Counterexample  *counterJSON  `json:"counterexample,omitempty"`
	Phase1Intersect bool          `json:"phase1_intersect"`
	Phase1Disjoint  [][]string    `json:"phase1_disjoint,omitempty"`
	BothBlocking    []string      `json:"both_phases_blocked_by"`
	Verdicts        []verdictJSON `json:"verdicts"`
	Safe            bool          `json:"safe"`
}

type phaseJSON struct {
	Describe  string     `json:"quorum"`
	MinSize   int        `json:"min_size"`
	MaxSize   int        `json:"max_size"`
	Minimal   int        `json:"minimal_quorums"`
	Examples  [][]string `json:"examples"`
	Tolerates int        `json:"failures_tolerated"`
	Blocking  []string   `json:"blocked_by"`
}

// counterJSON is a phase-1 quorum and a phase-2 quorum that share no voter.
type counterJSON struct {
	Phase1 []string `json:"phase1_quorum"`
	Phase2 []string `json:"phase2_quorum"`
}

type verdictJSON struct {
	Mode   string `json:"mode"`
	Safe   bool   `json:"safe"`
	Reason string `json:"reason"`
}

func newReportJSON(r *quorum.Report, l quorum.NodeList, protocols []quorum.Protocol, safe bool) reportJSON {
	names := func(ids []uint64) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = l.Name(id)
		}
		return out
	}
	phase := func(p quorum.PhaseReport) phaseJSON {
		j := phaseJSON{Describe: p.Describe, MinSize: p.MinSize, MaxSize: p.MaxSize, Minimal: p.Minimal,
			Tolerates: p.Tolerates, Blocking: names(p.Blocking)}
		for _, e := range p.Examples {
			j.Examples = append(j.Examples, names(e))
		}
		return j
	}
	j := reportJSON{
		Geometry: r.Geometry, Voters: names(r.Voters), Subsets: r.Subsets,
		Phase1: phase(r.Phase1), Phase2: phase(r.Phase2),
		Intersect: r.Intersect, Phase1Intersect: r.Phase1Intersect,
		BothBlocking: names(r.BothBlocking), Safe: safe,
	}
	if c := r.Counterexample; c != nil {
		j.Counterexample = &counterJSON{names(c.A), names(c.B)}
	}
	if d := r.Phase1Disjoint; d != nil {
		j.Phase1Disjoint = [][]string{names(d.A), names(d.B)}
	}
	for _, p := range protocols {
		ok, why := r.Safe(p)
		j.Verdicts = append(j.Verdicts, verdictJSON{string(p), ok, why})
	}
	return j
}
