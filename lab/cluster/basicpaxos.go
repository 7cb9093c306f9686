package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// BasicPaxos runs design 8 against a cluster, as far as a cluster can:
// the product runs Multi-Paxos per range, not the article's per-key Basic
// Paxos, so the sale goes through a fresh paxos keyspace (N=3, or every
// node of a smaller cluster), each buyer's order a compare-and-swap if
// absent. The buyers start together; exactly one must be told "sold".
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
	ks := keyspaceName("paxos")
	if err := createKeyspace(ctx, cl, &v1.Keyspace{Name: ks, Mode: v1.Mode_MODE_PAXOS, Replicas: uint32(replicas), Quorum: "majority"}); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, dropKeyspace(ctx, cl, ks)) }()

	buyers := buyersOf(t)
	r := newRun(t)
	s := newShop(r, "", ks)
	race(ctx, buyers, nil, func(ctx context.Context, buyer string) { s.buyCAS(ctx, cl, buyer, impatient) })
	if s.owner, err = readOwner(ctx, cl, ks, client.Quorum{}, time.Now().Add(10*time.Second)); err != nil {
		return nil, err
	}
	s.resolve()

	res = &lab.Result{
		Design: fmt.Sprintf("The product's paxos keyspace (N=%d, majority quorums), where each sale is a compare-and-swap-if-absent "+
			"through the range's Multi-Paxos group: its leader orders the buyers' proposals and a majority accepts each before it is applied, "+
			"so the first order applied takes the phone and every later one finds it taken. "+
			"The per-key Basic Paxos of the article runs in the simulator (kvctl lab basic-paxos, without --cluster or --local).", replicas),
		Fault:  "No fault: the buyers start together and race.",
		Buyers: len(buyers),
	}
	story := []string{fmt.Sprintf("%d buyers sent compare-and-swap-if-absent at once: %s.", len(buyers), s.tally(len(buyers)))}
	lanes := append(nodeLanes(t.Nemesis, live), buyers...)
	return r.finish(res, lanes, []*shop{s}, story), nil
}
