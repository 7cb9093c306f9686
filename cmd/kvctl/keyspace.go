package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

func keyspaceCommand() *cli.Command {
	return &cli.Command{
		Name:  "keyspace",
		Usage: "create, list, describe and drop keyspaces",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{
				Name: "create", Usage: "create a keyspace; its geometry is proven safe first", ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "mode", Usage: "eventual, raft or paxos (required)"},
					&cli.IntFlag{Name: "replicas", Usage: fmt.Sprintf("replicas of each range (N), 1 to %d (required)", catalog.MaxReplicas)},
					&cli.StringFlag{Name: "quorum", Usage: "majority, weighted, grid:RxC, zones or flexible:Q1,Q2", Value: "majority"},
					&cli.IntFlag{Name: "w", Usage: "eventual: default write quorum, 1 to --replicas (default: the geometry's)"},
					&cli.IntFlag{Name: "r", Usage: "eventual: default read quorum, 1 to --replicas (default: the geometry's)"},
					&cli.IntFlag{Name: "ranges", Usage: fmt.Sprintf("ranges the hash space is split into, 1 to %d", catalog.MaxRanges), Value: catalog.DefaultRanges},
					&cli.BoolFlag{Name: "sloppy-quorum", Usage: "eventual: let hints count toward W (breaks W+R>N)"},
					&cli.BoolFlag{Name: "read-lease", Value: true, Usage: "raft, paxos: serve linearizable reads from the leader's lease, which assumes the nodes' clocks run at nearly the same rate; --read-lease=false confirms each read with a round of heartbeats instead"},
				},
				Action: keyspaceCreate,
			}),
			withGlobals(&cli.Command{Name: "list", Usage: "list keyspaces", Action: keyspaceList}),
			withGlobals(&cli.Command{Name: "describe", Usage: "show a keyspace and its ranges", ArgsUsage: "NAME", Action: keyspaceDescribe}),
			withGlobals(&cli.Command{
				Name: "drop", Usage: "remove a keyspace and all its data; asks first on a terminal, and needs --force otherwise", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"yes", "y"},
					Usage: "drop without asking (needed when standard input is not a terminal)"}},
				Action: keyspaceDrop,
			}),
		},
	}
}

var modes = map[string]v1.Mode{"eventual": v1.Mode_MODE_EVENTUAL, "raft": v1.Mode_MODE_RAFT, "paxos": v1.Mode_MODE_PAXOS}

func modeName(m v1.Mode) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "MODE_"))
}

func keyspaceCreate(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	if !c.IsSet("mode") {
		return usagef("keyspace create needs --mode: eventual, raft or paxos")
	}
	mode, ok := modes[c.String("mode")]
	if !ok {
		return usagef("--mode %q: want eventual, raft or paxos", c.String("mode"))
	}
	if !c.IsSet("replicas") {
		return usagef("keyspace create needs --replicas N, 1 to %d", catalog.MaxReplicas)
	}
	// A count given is checked here, 0 included: absent, a flag has its
	// default, and 0 would mean "the default" to the server.
	bounds := []struct {
		flag string
		max  int
		what string
	}{
		{"replicas", catalog.MaxReplicas, ""},
		{"ranges", catalog.MaxRanges, ""},
		{"w", c.Int("replicas"), " (--replicas)"},
		{"r", c.Int("replicas"), " (--replicas)"},
	}
	for _, b := range bounds {
		if n := c.Int(b.flag); c.IsSet(b.flag) && (n < 1 || n > b.max) {
			return usagef("--%s %d: want 1 to %d%s", b.flag, n, b.max, b.what)
		}
	}
	ks := &v1.Keyspace{
		Name: a[0], Mode: mode, Replicas: uint32(c.Int("replicas")), Quorum: c.String("quorum"),
		W: uint32(c.Int("w")), R: uint32(c.Int("r")), Ranges: uint32(c.Int("ranges")), SloppyQuorum: c.Bool("sloppy-quorum"),
		NoReadLease: !c.Bool("read-lease"),
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		created, err := cl.CreateKeyspace(ctx, ks)
		if err != nil {
			return err
		}
		return printKeyspaces(c, out, []*v1.Keyspace{created})
	})
}

func keyspaceList(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		list, err := cl.ListKeyspaces(ctx)
		if err != nil {
			return err
		}
		return printKeyspaces(c, out, list)
	})
}

func printKeyspaces(c *cli.Context, out format, list []*v1.Keyspace) error {
	if out == formatJSON {
		return writeProtoJSON(c.App.Writer, &v1.ListKeyspacesResponse{Keyspaces: list})
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tREPLICAS\tQUORUM\tW\tR\tRANGES\tREADS")
	for _, ks := range list {
		w, r := "-", "-"
		if ks.Mode == v1.Mode_MODE_EVENTUAL && ks.W > 0 {
			w, r = fmt.Sprint(ks.W), fmt.Sprint(ks.R)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", ks.Name, modeName(ks.Mode), ks.Replicas, ks.Quorum, w, r, ks.Ranges, readsName(ks))
	}
	return tw.Flush()
}

// readsName says how a keyspace confirms a linearizable read: from the
// leader's lease, or with a round of heartbeats to a quorum (eventual
// keyspaces ask R replicas instead).
func readsName(ks *v1.Keyspace) string {
	switch {
	case ks.Mode == v1.Mode_MODE_EVENTUAL:
		return "r-replicas"
	case (ks.Mode == v1.Mode_MODE_RAFT || ks.Mode == v1.Mode_MODE_PAXOS) && !ks.NoReadLease:
		return "lease"
	}
	return "quorum-round"
}

func keyspaceDescribe(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		resp, err := cl.DescribeKeyspace(ctx, a[0])
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, resp)
		}
		if err := printKeyspaces(c, out, []*v1.Keyspace{resp.Keyspace}); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer)
		return printRanges(c, resp.Ranges)
	})
}

func keyspaceDrop(c *cli.Context) error {
	a, err := args(c, "NAME")
	if err != nil {
		return err
	}
	if !c.Bool("force") {
		if !isTerminal(c.App.Reader) {
			return usagef("keyspace drop %s deletes the keyspace and all its data, and standard input is not a terminal to confirm on: add --force", a[0])
		}
		// Counting the keys would mean scanning them all: the question
		// says what is lost without a number.
		fmt.Fprintf(c.App.ErrWriter, "drop keyspace %s and all its data? [y/N] ", a[0])
		answer, err := bufio.NewReader(c.App.Reader).ReadString('\n')
		if err != nil && answer == "" {
			return fmt.Errorf("keyspace %s not dropped: no answer (%w)", a[0], err)
		}
		if ans := strings.ToLower(strings.TrimSpace(answer)); ans != "y" && ans != "yes" {
			return fmt.Errorf("keyspace %s not dropped", a[0])
		}
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.DropKeyspace(ctx, a[0]); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"dropped": a[0]}, "OK")
	})
}
