package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// BasicPaxos runs design 8 against a cluster: the article's Basic Paxos
// per key is what the product runs for a compare-and-swap in an eventual
// keyspace (kv/eventual's eventual_cas.go: the coordinator is the
// proposer, the key's replicas its acceptors). So the sale goes through a
// fresh eventual keyspace (N=3, or every node of a smaller cluster), each
// buyer's order a compare-and-swap if absent, all buyers at once: their
// coordinators duel for the key's ballots. With a nemesis and 3 replicas,
// one replica's node, chosen at random, is killed as the sale opens and
// restarted once every buyer has an answer: a majority of acceptors is
// still there. Exactly one buyer must be told "sold".
func BasicPaxos(ctx context.Context, t lab.Target) (res *lab.Result, err error) {
	cl, err := clientOf(t)
	if err != nil {
		return nil, err
	}
	live, err := members(ctx, cl)
	if err != nil {
		return nil, err
	}
	replicas := min(3, len(live))
	ks := keyspaceName("cas")
	if err := createKeyspace(ctx, cl, &v1.Keyspace{Name: ks, Mode: v1.Mode_MODE_EVENTUAL, Replicas: uint32(replicas), Quorum: "majority"}); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, dropKeyspace(ctx, cl, ks)) }()

	buyers := buyersOf(t)
	res = &lab.Result{
		Design: fmt.Sprintf("The product's Basic Paxos per key: an eventual keyspace (N=%d, majority quorums) runs each compare-and-swap "+
			"as a round of Basic Paxos on the key's replicas, the coordinator that got the request proposing and the replicas accepting; "+
			"a proposer learns in phase 1 any value a majority may have accepted and proposes that instead of its own. "+
			"Each buyer orders with compare-and-swap if absent through the Go client; the simulator's run of this design "+
			"(kvctl lab basic-paxos) drives the same core, package paxos.", replicas),
		Fault:  "The buyers start together, so their coordinators duel for the key.",
		Buyers: len(buyers),
	}
	r := newRun(t)
	s := newShop(r, "", ks)
	var story []string
	var f *faults
	switch {
	case t.Nemesis == nil:
		story = append(story, noFaults+".")
	case replicas < 3:
		story = append(story, fmt.Sprintf("No node was killed: with %d replicas, one down leaves no majority.", replicas))
	default:
		rg, err := firstRange(ctx, cl, ks)
		if err != nil {
			return nil, err
		}
		var victims []string
		for _, rep := range rg.GetReplicas() {
			if slices.Contains(t.Nemesis.Nodes(), rep.GetNodeId()) {
				victims = append(victims, rep.GetNodeId())
			}
		}
		if len(victims) == 0 {
			return nil, fmt.Errorf("lab/cluster: none of %s's replicas is a node the nemesis can hurt", ks)
		}
		victim := victims[rand.IntN(len(victims))]
		f = &faults{run: r, nem: t.Nemesis}
		if err := f.kill(victim); err != nil {
			return nil, errors.Join(err, f.heal())
		}
		res.Fault = "The buyers start together, so their coordinators duel for the key; one replica's node is killed (SIGKILL) as the sale opens and restarted once every buyer has an answer."
		story = append(story, fmt.Sprintf("As the sale opened the nemesis killed %s, one of the key's %d acceptors.", victim, replicas))
	}
	race(ctx, buyers, nil, func(ctx context.Context, buyer string) { s.buyCAS(ctx, cl, buyer, impatient) })
	if f != nil {
		if err := f.heal(); err != nil {
			return nil, err
		}
		story = append(story, "Once every buyer had an answer the nemesis restarted it.")
	}
	if s.owner, err = readOwner(ctx, cl, ks, client.Quorum{R: client.SizeAll}, time.Now().Add(10*time.Second)); err != nil {
		return nil, err
	}
	s.resolve()
	story = append(story, fmt.Sprintf("%d buyers sent compare-and-swap-if-absent at once: %s.", len(buyers), s.tally(len(buyers))))
	lanes := append(nodeLanes(t.Nemesis, live), buyers...)
	return r.finish(res, lanes, []*shop{s}, story), nil
}
