package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "show the cluster: members, ranges, status",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{Name: "members", Usage: "the catalog's nodes with their gossip state, and nodes gossip knows that the catalog does not", Action: clusterMembers}),
			withGlobals(&cli.Command{
				Name: "ranges", Usage: "ranges with replicas, leaders and terms, and the answering node's range errors",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "all", Usage: "every keyspace, not only --keyspace"}},
				Action: clusterRanges,
			}),
			withGlobals(&cli.Command{Name: "status", Usage: "the answering node's view of the cluster", Action: clusterStatus}),
			withGlobals(&cli.Command{
				Name:      "gossip-key",
				Usage:     "list, install, use or remove a gossip encryption key on every alive node; rotate without downtime: install the new key, use it, remove the old one",
				ArgsUsage: "list | install KEY | use KEY | remove KEY   (KEY in base64, as in gossip.key; kvd cert create-gossip-key makes one)",
				Action:    clusterGossipKey,
			}),
			withGlobals(&cli.Command{
				Name:   "rebalance",
				Usage:  "show the replica moves the placement driver would make now (off dead and decommissioning nodes, then to spread keyspaces), and make them",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "only show the moves"}},
				Action: clusterRebalance,
			}),
		},
	}
}

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "act on one node of the cluster",
		Subcommands: []*cli.Command{
			withGlobals(&cli.Command{
				Name: "remove", Usage: "remove a node that is gone for good, by its ID (kvctl cluster members): its replicas move to live nodes at once",
				ArgsUsage: "ID",
				Action:    nodeRemove,
			}),
			withGlobals(&cli.Command{
				Name: "drain", Usage: "make a node, by its ID, hand its ranges' leaderships to other replicas until it restarts, before you stop it",
				ArgsUsage: "ID",
				Action:    nodeDrain,
			}),
			withGlobals(&cli.Command{
				Name: "decommission", Usage: "take a running node, by its ID, out of the cluster: its replicas move to other nodes, then it is marked removed",
				ArgsUsage: "ID",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "wait", Value: true,
					Usage: "show the progress until the node is removed (--wait=false: return once it started)"}},
				Action: nodeDecommission,
			}),
		},
	}
}

// nodeID reads the node ID argument of kvctl node VERB.
func nodeID(c *cli.Context, verb string) (uint64, error) {
	a, err := args(c, "ID")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(a[0], 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("node %s takes a node ID, a number as kvctl cluster members shows it, not %q", verb, a[0])
	}
	return id, nil
}

func nodeDrain(c *cli.Context) error {
	id, err := nodeID(c, "drain")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		moved, kept, err := cl.DrainNode(ctx, id)
		if err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"node": id, "moved": moved, "kept": kept},
			fmt.Sprintf("node %d is draining: %d leaderships moved, %d still held (it keeps handing them away)", id, moved, kept))
	})
}

func nodeRemove(c *cli.Context) error {
	id, err := nodeID(c, "remove")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.RemoveNode(ctx, id); err != nil {
			return err
		}
		return printResult(c, out, map[string]any{"removed": id}, "OK")
	})
}

// decommissionPoll is how often kvctl node decommission looks at the
// progress.
const decommissionPoll = time.Second

func nodeDecommission(c *cli.Context) error {
	id, err := nodeID(c, "decommission")
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		if err := cl.DecommissionNode(ctx, id); err != nil {
			return err
		}
		if !c.Bool("wait") {
			return printResult(c, out, map[string]any{"node": id, "decommissioning": true},
				fmt.Sprintf("node %d is decommissioning: kvctl cluster members shows how many replicas it still holds", id))
		}
		last := -1
		for {
			members, err := cl.Members(ctx)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(members, func(m *v1.Member) bool { return m.Id == id })
			if i < 0 {
				return fmt.Errorf("node %d is no longer in the catalog", id)
			}
			m := members[i]
			if m.State == v1.MemberState_MEMBER_STATE_REMOVED {
				return printResult(c, out, map[string]any{"node": id, "removed": true},
					fmt.Sprintf("node %d (%s) is decommissioned and removed: it can be stopped", id, m.NodeId))
			}
			if int(m.Replicas) != last && out != formatJSON {
				last = int(m.Replicas)
				fmt.Fprintf(c.App.Writer, "node %d (%s): %d replicas to move\n", id, m.NodeId, m.Replicas)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(decommissionPoll):
			}
		}
	})
}

func clusterRebalance(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	dryRun := c.Bool("dry-run")
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		resp, err := cl.Rebalance(ctx, dryRun)
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, resp)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEYSPACE\tRANGE\tFROM\tTO\tREASON")
		for _, m := range resp.Moves {
			from := "-"
			if m.From != 0 {
				from = fmt.Sprint(m.From)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", m.Keyspace, m.RangeId, from, m.To, m.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		verb := "proposed"
		if dryRun {
			verb = "would be proposed"
		}
		_, err = fmt.Fprintf(c.App.Writer, "%d moves %s; %d earlier moves still in flight\n", len(resp.Moves), verb, resp.InFlight)
		return err
	})
}

func clusterMembers(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		members, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, &v1.ListMembersResponse{Members: members})
		}
		return printMembers(c.App.Writer, members)
	})
}

// printMembers shows the catalog's nodes by ID, each in the gossip state
// of its identity (a node that lost its data dir is back with a new UUID
// and ID; its old ID is dead), then the nodes gossip knows that the
// catalog does not, with ID "-".
func printMembers(w io.Writer, members []*v1.Member) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNODE\tUUID\tADDRESS\tZONE\tWEIGHT\tSTATE\tREPLICAS\tVERSION")
	for _, m := range members {
		state := strings.ToLower(strings.TrimPrefix(m.State.String(), "MEMBER_STATE_"))
		if m.State == v1.MemberState_MEMBER_STATE_UNSPECIFIED {
			state = "unknown" // gossip has not heard of it
		}
		if m.Decommissioning {
			state += ",decommissioning"
		}
		id := "-"
		if m.Id != 0 {
			id = fmt.Sprint(m.Id)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", id, m.NodeId, m.Uuid, m.Address, m.Zone, m.Weight, state, m.Replicas, m.Version)
	}
	return tw.Flush()
}

func clusterRanges(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	keyspace := lookupString(c, "keyspace")
	if c.Bool("all") {
		keyspace = ""
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		ranges, err := cl.Ranges(ctx, keyspace)
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, &v1.ListRangesResponse{Ranges: ranges})
		}
		return printRanges(c, ranges)
	})
}

func printRanges(c *cli.Context, ranges []*v1.Range) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYSPACE\tRANGE\tHASH SPAN\tREPLICAS\tLEADER\tTERM\tCOMMIT\tERROR")
	for _, r := range ranges {
		var reps []string
		for _, rep := range r.Replicas {
			name := rep.NodeId
			if rep.Learner {
				name += "(learner)"
			}
			if rep.Leaving {
				name += "(leaving)"
			}
			if rep.Filling {
				name += "(filling)"
			}
			reps = append(reps, name)
		}
		leader := r.Leader
		if leader == "" {
			leader = "-"
		}
		// The answering node's replica stopped, or serves despite a fault
		// (docs/operations.md, "Faults of one range").
		rangeErr := r.Error
		if rangeErr == "" {
			rangeErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t[%016x, %016x)\t%s\t%s\t%d\t%d\t%s\n", r.Keyspace, r.RangeId, r.HashLo, r.HashHi,
			strings.Join(reps, ","), leader, r.Term, r.CommitIndex, rangeErr)
	}
	return tw.Flush()
}

func clusterStatus(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, out format) error {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		if out == formatJSON {
			return writeProtoJSON(c.App.Writer, st)
		}
		tls := "TLS off (plaintext)"
		switch {
		case st.Tls:
			tls = "TLS on"
		case st.ClusterSecret:
			tls = "TLS off (plaintext; peers prove the cluster secret)"
		}
		if st.AuthEnabled {
			tls += ", auth on"
		} else {
			tls += ", auth off"
		}
		fmt.Fprintf(c.App.Writer, "node %s of cluster %s, version %s, %s; meta leader %s; %d local ranges, %d led here\n\n",
			st.NodeId, st.ClusterId, st.Version, tls, st.MetaLeader, st.LocalRanges, st.LocalLeaders)
		if err := printMembers(c.App.Writer, st.Members); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer)
		return printKeyspaces(c, out, st.Keyspaces)
	})
}

// clusterGossipKey runs one gossip keyring operation on every alive node,
// each through its own address (a node changes only its own keyring), and
// lists the nodes it could not change or skipped (not alive, removed ones
// aside), failing then: the operator runs it again, or copies the file.
func clusterGossipKey(c *cli.Context) error {
	ops := map[string]v1.GossipKeyOp{"list": v1.GossipKeyOp_GOSSIP_KEY_OP_LIST, "install": v1.GossipKeyOp_GOSSIP_KEY_OP_INSTALL,
		"use": v1.GossipKeyOp_GOSSIP_KEY_OP_USE, "remove": v1.GossipKeyOp_GOSSIP_KEY_OP_REMOVE}
	op, ok := ops[c.Args().First()]
	switch {
	case !ok:
		return usagef("gossip-key needs list, install, use or remove, got %q", c.Args().First())
	case op == v1.GossipKeyOp_GOSSIP_KEY_OP_LIST && c.NArg() != 1, op != v1.GossipKeyOp_GOSSIP_KEY_OP_LIST && c.NArg() != 2:
		return usagef("gossip-key %s: wrong number of arguments (%d)", c.Args().First(), c.NArg()-1)
	}
	var key []byte
	if op != v1.GossipKeyOp_GOSSIP_KEY_OP_LIST {
		var err error
		if key, err = base64.StdEncoding.DecodeString(c.Args().Get(1)); err != nil {
			return usagef("gossip-key %s: the key is not base64: %v", c.Args().First(), err)
		}
	}
	tlsConfig, err := clientTLS(c)
	if err != nil {
		return err
	}
	t, err := timeout(c)
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client, _ format) error {
		members, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tKEYS (sealing first)")
		var failed []string
		for _, m := range members {
			switch {
			case m.State == v1.MemberState_MEMBER_STATE_REMOVED || m.Address == "":
				continue
			case m.State != v1.MemberState_MEMBER_STATE_ALIVE:
				// It will need the new gossip.key before it starts again.
				state := strings.ToLower(strings.TrimPrefix(m.State.String(), "MEMBER_STATE_"))
				failed = append(failed, fmt.Sprintf("%s: %s", m.NodeId, state))
				fmt.Fprintf(tw, "%s\tSKIPPED: the node is %s\n", m.NodeId, state)
				continue
			}
			node, err := client.New(client.Config{Endpoints: []string{m.Address}, Timeout: t, TLS: tlsConfig,
				User: lookupString(c, "user"), Password: lookupString(c, "password")})
			var resp *v1.GossipKeyResponse
			if err == nil {
				resp, err = node.GossipKey(ctx, op, key)
			}
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", m.NodeId, err))
				fmt.Fprintf(tw, "%s\tFAILED: %v\n", m.NodeId, err)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\n", m.NodeId, strings.Join(resp.Fingerprints, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(failed) > 0 {
			return fmt.Errorf("kvctl: %d node(s) not changed (run the command again once they are up, or copy the new gossip.key to them before they start): %s", len(failed), strings.Join(failed, "; "))
		}
		return nil
	})
}
