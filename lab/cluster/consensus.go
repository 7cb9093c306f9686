package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// The fault plan of Consensus, in wall time from the opening of the sale:
// the raft range's leader is killed at once and restarted after
// restartAfter; at pauseAt the paxos range's leader is paused for
// pauseFor. Buyers arrive in pairs every arrivalGap, so that some meet
// each fault.
const (
	restartAfter = 2 * time.Second
	pauseAt      = 3 * time.Second
	pauseFor     = 2 * time.Second
	arrivalGap   = 1500 * time.Millisecond
)

// Consensus runs design 11 against a cluster: a raft keyspace and a paxos
// keyspace (Multi-Paxos per range), one range of 3 replicas each (of
// every node, on a smaller cluster), sell a
// phone each at the same time to the same buyers, each buyer ordering in
// both with compare-and-swap if absent (shop.buyCAS: the client's retries
// with one idempotency key, a new click after a second without an
// answer, an unknown outcome settled by reading the owner).
//
// With a nemesis, the buyers arrive in pairs every 1.5 s while the node
// leading the raft range is killed as the sale opens and restarted 2 s
// later, and the node then leading the paxos range is paused for 2 s
// from 3 s on (or from when the restarted node is ready, if later); a
// leader the nemesis cannot name is replaced by a random node. Without a nemesis, or on fewer than 3 nodes, the buyers start
// together and nothing is hurt.
//
// The result's counts are those of the worse of the two keyspaces (raft
// when they are alike); the story gives both, and the timeline holds both
// keyspaces' answers, labelled with their mode.
func Consensus(ctx context.Context, t lab.Target) (res *lab.Result, err error) {
	cl, err := clientOf(t)
	if err != nil {
		return nil, err
	}
	live, err := members(ctx, cl)
	if err != nil {
		return nil, err
	}
	replicas := min(3, len(live))
	modes := []v1.Mode{v1.Mode_MODE_RAFT, v1.Mode_MODE_PAXOS}
	var created []string
	defer func() {
		for _, ks := range created {
			err = errors.Join(err, dropKeyspace(ctx, cl, ks))
		}
	}()
	for _, mode := range modes {
		ks := keyspaceName(modeName(mode))
		if err := createKeyspace(ctx, cl, &v1.Keyspace{Name: ks, Mode: mode, Replicas: uint32(replicas), Quorum: "majority"}); err != nil {
			return nil, err
		}
		created = append(created, ks)
	}

	r := newRun(t) // the sale opens now: the keyspaces are ready
	var shops []*shop
	for i, mode := range modes {
		shops = append(shops, newShop(r, modeName(mode), created[i]))
	}
	buyers := buyersOf(t)
	res = &lab.Result{
		Design: fmt.Sprintf("A raft keyspace and a paxos keyspace (Multi-Paxos per range), one range of %d replicas each: "+
			"a leader orders every write, a majority stores it before it is applied, and a new leader learns every applied write before it serves. "+
			"Each buyer orders in both with compare-and-swap if absent through the Go client, which sends a write whose outcome is unknown again with the same idempotency key; "+
			"a buyer clicks again after a second without an answer, and one refused after an unknown outcome reads the owner to learn whether its earlier click bought the phone.", replicas),
		Fault:  "The raft range's leader is killed (SIGKILL) as the sale opens and restarted 2 s later; at 3 s the paxos range's leader is paused (SIGSTOP) for 2 s.",
		Buyers: len(buyers),
	}
	var story []string
	var arrive func(i int) time.Duration // nil: all at once
	var plan sync.WaitGroup
	var planErr error
	switch {
	case t.Nemesis == nil:
		res.Fault = "No fault: this environment cannot hurt the nodes."
		story = append(story, noFaults+".")
	case replicas < 3:
		res.Fault = "No fault: the cluster is too small to survive one."
		story = append(story, fmt.Sprintf("No faults: with %d nodes, one down leaves no majority.", replicas))
	default:
		f := &faults{run: r, nem: t.Nemesis}
		victim, led := leaderNode(ctx, cl, t.Nemesis, shops[0])
		if err := f.kill(victim); err != nil {
			return nil, errors.Join(err, f.heal())
		}
		story = append(story, fmt.Sprintf("As the sale opened the nemesis killed %s (%s).", victim, led))
		arrive = func(i int) time.Duration { return time.Duration(i/2) * arrivalGap }
		plan.Add(1)
		go func() {
			defer plan.Done()
			var more []string
			more, planErr = consensusFaults(ctx, cl, f, victim, shops[1])
			planErr = errors.Join(planErr, f.heal())
			story = append(story, more...)
		}()
	}
	var buying sync.WaitGroup
	for _, s := range shops {
		buying.Add(1)
		go func() {
			defer buying.Done()
			race(ctx, buyers, arrive, func(ctx context.Context, buyer string) { s.buyCAS(ctx, cl, buyer, impatient) })
		}()
	}
	buying.Wait()
	plan.Wait()
	if planErr != nil {
		return nil, planErr
	}

	for _, s := range shops {
		if s.owner, err = readOwner(ctx, cl, s.keyspace, client.Quorum{}, time.Now().Add(15*time.Second)); err != nil {
			return nil, err
		}
		s.resolve()
		story = append(story, fmt.Sprintf("%s: %s.", s.name, s.tally(len(buyers))))
	}
	lanes := append(nodeLanes(t.Nemesis, live), buyers...)
	return r.finish(res, lanes, shops, story), nil
}

// consensusFaults carries out the rest of Consensus's fault plan after
// the kill of victim: its restart, then the pause of the node leading
// paxos's range. It says what it did; the caller heals.
func consensusFaults(ctx context.Context, cl *client.Client, f *faults, victim string, paxos *shop) ([]string, error) {
	var plan []string
	if err := sleep(ctx, restartAfter); err != nil {
		return plan, err
	}
	at := f.run.now()
	if err := f.restart(victim); err != nil {
		return plan, err
	}
	plan = append(plan, fmt.Sprintf("At %s it restarted %s, ready at %s.", seconds(at), victim, seconds(f.run.now())))
	if err := sleep(ctx, max(0, pauseAt-f.run.now())); err != nil {
		return plan, err
	}
	victim, led := leaderNode(ctx, cl, f.nem, paxos)
	at = f.run.now()
	if err := f.pause(victim); err != nil {
		return plan, err
	}
	if err := sleep(ctx, pauseFor); err != nil {
		return plan, err
	}
	if err := f.resume(victim); err != nil {
		return plan, err
	}
	plan = append(plan, fmt.Sprintf("At %s it paused %s (%s) and resumed it at %s.", seconds(at), victim, led, seconds(f.run.now())))
	return plan, nil
}

// leaderNode names the node leading the shop's range, if the nemesis can
// hurt it, or else a random node of the nemesis; led says which.
func leaderNode(ctx context.Context, cl *client.Client, nem lab.Nemesis, s *shop) (node, led string) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	nodes := nem.Nodes()
	if rg, err := firstRange(rctx, cl, s.keyspace); err == nil && slices.Contains(nodes, rg.Leader) {
		return rg.Leader, "the leader of the " + s.name + " range"
	}
	return nodes[rand.IntN(len(nodes))], "a random node: the " + s.name + " range's leader was not known"
}

// modeName is a mode as the CLI spells it: raft.
func modeName(m v1.Mode) string {
	switch m {
	case v1.Mode_MODE_EVENTUAL:
		return "eventual"
	case v1.Mode_MODE_RAFT:
		return "raft"
	case v1.Mode_MODE_PAXOS:
		return "paxos"
	}
	return m.String()
}
