package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Nemesis injects one kind of fault, again and again through a round: a
// fault is injected, held for Hold, healed, and the cluster is left alone
// for Rest before the next one.
type Nemesis struct {
	Name string
	// MinNodes is the smallest cluster the fault makes sense on (a ring
	// of three nodes is no partition at all).
	MinNodes   int
	Hold, Rest time.Duration
	// inject injects one fault. It returns what it did, for the log,
	// and how to heal it.
	inject func(ctx context.Context, e *env) (what string, heal func(context.Context) error, err error)
}

// env is what a nemesis acts on.
type env struct {
	c       *Cluster
	rng     *rand.Rand
	targets []Target
	admin   *client.Client
	// notes are findings of the nemesis itself that break a promise
	// (a wiped node back under its old identity): violations.
	notes []string
	// clients are the clients of one node each, by node index
	// (nodeClient).
	clients map[int]*client.Client
}

// nodeClient is a client of node n alone, made once per round: the
// admin calls that need n's own view (Admin.Ranges).
func (e *env) nodeClient(n *Node) (*client.Client, error) {
	if cl, ok := e.clients[n.Index]; ok {
		return cl, nil
	}
	cl, err := client.New(client.Config{Endpoints: []string{n.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	if e.clients == nil {
		e.clients = map[int]*client.Client{}
	}
	e.clients[n.Index] = cl
	return cl, nil
}

// leader is the node that leads the most ranges of the linearizable
// targets (ties: the lowest index), or a random node when none leads.
func (e *env) leader(ctx context.Context) *Node {
	count := make([]int, len(e.c.Nodes))
	for _, name := range e.leaders(ctx) {
		for _, n := range e.c.Nodes {
			if n.Name == name {
				count[n.Index]++
			}
		}
	}
	best := -1
	for i, c := range count {
		if c > 0 && (best < 0 || c > count[best]) {
			best = i
		}
	}
	if best < 0 {
		return e.random()
	}
	return e.c.Nodes[best]
}

// leaders names the leader of each range of the linearizable targets, by
// "keyspace/range", "" when no node knows one. A node knows the leaders
// of the ranges it holds a replica of (Admin.Ranges is its own view), so
// every node that is up and not paused is asked.
func (e *env) leaders(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range e.c.Nodes {
		if !n.Up() || n.Paused() {
			continue
		}
		cl, err := e.nodeClient(n)
		if err != nil {
			continue
		}
		for _, t := range e.targets {
			if !t.Linearizable() {
				continue
			}
			ranges, err := cl.Ranges(ctx, t.Keyspace)
			if err != nil {
				continue
			}
			for _, r := range ranges {
				key := fmt.Sprintf("%s/%d", t.Keyspace, r.GetRangeId())
				if out[key] == "" && r.GetError() == "" {
					out[key] = r.GetLeader()
				} else if _, seen := out[key]; !seen {
					out[key] = "" // listed, but this node knows no leader
				}
			}
		}
	}
	return out
}

// random is a random node that is up and not paused.
func (e *env) random() *Node {
	var up []*Node
	for _, n := range e.c.Nodes {
		if n.Up() && !n.Paused() {
			up = append(up, n)
		}
	}
	return up[e.rng.IntN(len(up))]
}

// partition cuts every pair of nodes that are in different groups, both
// ways.
func (e *env) partition(ctx context.Context, groups ...[]*Node) (string, func(context.Context) error, error) {
	var names []string
	for i, g := range groups {
		var gn []string
		for _, n := range g {
			gn = append(gn, n.Name)
		}
		names = append(names, strings.Join(gn, ","))
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					if err := errors.Join(e.c.Cut(ctx, a, b), e.c.Cut(ctx, b, a)); err != nil {
						return "", nil, err
					}
				}
			}
		}
	}
	return "partition " + strings.Join(names, " | "), e.c.Heal, nil
}

// shuffled is the cluster's nodes in a random order.
func (e *env) shuffled() []*Node {
	nodes := slices.Clone(e.c.Nodes)
	e.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	return nodes
}

// Nemeses are every nemesis of the suite.
var Nemeses = []*Nemesis{
	{Name: "none", Hold: 10 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			return "nothing", func(context.Context) error { return nil }, nil
		}},
	{Name: "partition-leader", Hold: 6 * time.Second, Rest: 4 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			l := e.leader(ctx)
			var rest []*Node
			for _, n := range e.c.Nodes {
				if n != l {
					rest = append(rest, n)
				}
			}
			return e.partition(ctx, []*Node{l}, rest)
		}},
	{Name: "partition-majority", Hold: 6 * time.Second, Rest: 4 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			nodes := e.shuffled()
			k := len(nodes) / 2
			return e.partition(ctx, nodes[:k], nodes[k:])
		}},
	{Name: "partition-bridge", Hold: 6 * time.Second, Rest: 4 * time.Second,
		// Two halves that cannot reach each other, and one node that
		// reaches both: a majority that overlaps in the bridge.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			nodes := e.shuffled()
			k := len(nodes) / 2
			left, bridge, right := nodes[:k], nodes[k], nodes[k+1:]
			for _, a := range left {
				for _, b := range right {
					if err := errors.Join(e.c.Cut(ctx, a, b), e.c.Cut(ctx, b, a)); err != nil {
						return "", nil, err
					}
				}
			}
			return fmt.Sprintf("bridge %s between %v and %v", bridge.Name, names(left), names(right)), e.c.Heal, nil
		}},
	{Name: "partition-ring", MinNodes: 5, Hold: 6 * time.Second, Rest: 4 * time.Second,
		// Each node reaches its two neighbours only: every node sees a
		// majority, and no two majorities are the same.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			nodes := e.shuffled()
			n := len(nodes)
			for i, a := range nodes {
				for j, b := range nodes {
					if d := (j - i + n) % n; d > 1 && d < n-1 {
						if err := e.c.Cut(ctx, a, b); err != nil {
							return "", nil, err
						}
					}
				}
			}
			return fmt.Sprintf("ring %v", names(nodes)), e.c.Heal, nil
		}},
	{Name: "partition-one-way", Hold: 6 * time.Second, Rest: 4 * time.Second,
		// The leader's packets to the others are lost; theirs reach it.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			l := e.leader(ctx)
			for _, n := range e.c.Nodes {
				if n != l {
					if err := e.c.Cut(ctx, l, n); err != nil {
						return "", nil, err
					}
				}
			}
			return fmt.Sprintf("nothing %s sends arrives", l.Name), e.c.Heal, nil
		}},
	{Name: "partition-flapping", Hold: 1500 * time.Millisecond, Rest: 500 * time.Millisecond,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			nodes := e.shuffled()
			k := 1 + e.rng.IntN(len(nodes)/2)
			return e.partition(ctx, nodes[:k], nodes[k:])
		}},
	{Name: "pause", Hold: 5 * time.Second, Rest: 4 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			n := e.random()
			if e.rng.IntN(2) == 0 {
				n = e.leader(ctx)
			}
			if err := e.c.Pause(ctx, n); err != nil {
				return "", nil, err
			}
			return "pause " + n.Name, func(ctx context.Context) error { return e.c.Unpause(ctx, n) }, nil
		}},
	{Name: "kill", Hold: 3 * time.Second, Rest: 5 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			n := e.random()
			if e.rng.IntN(2) == 0 {
				n = e.leader(ctx)
			}
			if err := e.c.Kill(ctx, n); err != nil {
				return "", nil, err
			}
			return "kill " + n.Name, func(ctx context.Context) error { return e.restart(ctx, n) }, nil
		}},
	{Name: "clock", Hold: 5 * time.Second, Rest: 2 * time.Second,
		// The physical clocks jump: every node's runs up to 5 s away
		// from the host's, each its own way.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			var what []string
			for _, n := range e.c.Nodes {
				off := time.Duration(e.rng.Int64N(int64(10*time.Second))) - 5*time.Second
				off = off.Round(time.Millisecond)
				if err := e.c.SetFailpoints(n, fmt.Sprintf("clock-offset=%v\n", off)); err != nil {
					return "", nil, err
				}
				what = append(what, fmt.Sprintf("%s%+v", n.Name, off))
			}
			return "clocks " + strings.Join(what, " "), e.clearFailpoints, nil
		}},
	{Name: "disk-slow", Hold: 5 * time.Second, Rest: 3 * time.Second,
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			n := e.leader(ctx)
			if err := e.c.SetFailpoints(n, "disk-sync=delay:300ms\n"); err != nil {
				return "", nil, err
			}
			return "every sync of " + n.Name + " takes 300ms more", e.clearFailpoints, nil
		}},
	{Name: "disk-fail", Hold: 4 * time.Second, Rest: 5 * time.Second,
		// Every sync, or every write, fails: the node must stop (Pebble
		// takes a failed commit as fatal), never acknowledge what its
		// disk lost.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			n := e.random()
			if e.rng.IntN(2) == 0 {
				n = e.leader(ctx)
			}
			fault := []string{"disk-sync", "disk-write"}[e.rng.IntN(2)]
			if err := e.c.SetFailpoints(n, fault+"=fail\n"); err != nil {
				return "", nil, err
			}
			heal := func(ctx context.Context) error {
				running, err := e.c.Running(ctx, n)
				if err != nil {
					return err
				}
				if running {
					// It had nothing to sync, or it went on though its
					// syncs fail: the checks tell whether it
					// acknowledged anything it lost.
					e.c.logf("%s still runs after %v of %s=fail", n.Name, 4*time.Second, fault)
				}
				if err := e.c.SetFailpoints(n, ""); err != nil {
					return err
				}
				if err := e.c.Kill(ctx, n); err != nil {
					return err
				}
				return e.restart(ctx, n)
			}
			return fault + "=fail on " + n.Name, heal, nil
		}},
	{Name: "wipe", Hold: 2 * time.Second, Rest: 30 * time.Second,
		// The disk is lost: the node comes back empty, under its old
		// name, and must join as a new member. Always the same node: a
		// second disk lost before the first one's replicas were
		// replaced (--dead-after, then the moves) loses the quorum of
		// the ranges on both, as it would on any cluster of three
		// replicas; and paxos ranges do not replace replicas yet, so a
		// paxos range keeps two live replicas after the first wipe,
		// none of them on the wiped node's new identity.
		inject: func(ctx context.Context, e *env) (string, func(context.Context) error, error) {
			if e.c.wipeVictim == nil {
				e.c.wipeVictim = e.random()
			}
			n := e.c.wipeVictim
			before, err := e.memberUUIDs(ctx, n.Name)
			if err != nil {
				return "", nil, err
			}
			if err := e.c.Kill(ctx, n); err != nil {
				return "", nil, err
			}
			if err := e.c.Wipe(n); err != nil {
				return "", nil, err
			}
			heal := func(ctx context.Context) error {
				if err := e.restart(ctx, n); err != nil {
					return err
				}
				return e.checkNewIdentity(ctx, n, before)
			}
			return "kill and wipe " + n.Name, heal, nil
		}},
}

// restart starts a node that is down and waits until it is ready.
func (e *env) restart(ctx context.Context, n *Node) error {
	if err := e.c.Start(ctx, n); err != nil {
		return err
	}
	return e.c.WaitReady(ctx, n, time.Minute)
}

func (e *env) clearFailpoints(context.Context) error {
	var errs []error
	for _, n := range e.c.Nodes {
		errs = append(errs, e.c.SetFailpoints(n, ""))
	}
	return errors.Join(errs...)
}

// memberUUIDs are the UUIDs of the members named name that gossip or the
// catalog know.
func (e *env) memberUUIDs(ctx context.Context, name string) ([]string, error) {
	members, err := e.admin.Members(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		if m.GetNodeId() == name {
			out = append(out, m.GetUuid())
		}
	}
	return out, nil
}

// checkNewIdentity checks that a wiped node came back as a new member:
// alive under a UUID it never had.
func (e *env) checkNewIdentity(ctx context.Context, n *Node, before []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		members, err := e.admin.Members(ctx)
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.GetNodeId() != n.Name || m.GetState().String() != "MEMBER_STATE_ALIVE" {
				continue
			}
			if slices.Contains(before, m.GetUuid()) {
				e.notes = append(e.notes, fmt.Sprintf("%s came back from a wiped disk alive under its old UUID %s", n.Name, m.GetUuid()))
				return nil
			}
			e.c.logf("%s is back as a new member, UUID %s (before: %v)", n.Name, m.GetUuid(), before)
			return nil
		}
		if time.Now().After(deadline) {
			e.notes = append(e.notes, fmt.Sprintf("%s, wiped and restarted, is not an alive member after 30s", n.Name))
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func names(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}
