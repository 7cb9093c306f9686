package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// The W/R/N shop's quorums: W+R>N, so a read sees every write that
// finished before it began.
const (
	wrnN = 3
	wrnW = 2
	wrnR = 2
)

// WRN runs design 6 against a cluster: a fresh eventual keyspace with
// N=3, W=2, R=2, and buyers who start together and each read the phone
// with R=2, then, finding no owner, write their name with W=2, as a naive
// shop would. Every buyer whose write succeeded after it read no owner is
// told "sold". Nothing stops two buyers from both reading before either
// writes, so real concurrency alone sells the phone twice, often but not
// every time. The final owner is read with R=N; the keyspace is dropped
// at the end, whatever happened.
func WRN(ctx context.Context, t lab.Target) (res *lab.Result, err error) {
	cl, err := clientOf(t)
	if err != nil {
		return nil, err
	}
	live, err := members(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(live) < wrnN {
		return nil, fmt.Errorf("lab/cluster: the W/R/N shop needs %d live nodes, the cluster has %d", wrnN, len(live))
	}
	ks := keyspaceName("wrn")
	if err := createKeyspace(ctx, cl, &v1.Keyspace{Name: ks, Mode: v1.Mode_MODE_EVENTUAL, Replicas: wrnN, W: wrnW, R: wrnR}); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, dropKeyspace(ctx, cl, ks)) }()

	buyers := buyersOf(t)
	r := newRun(t)
	s := newShop(r, "", ks)
	var readAbsent atomic.Int32
	race(ctx, buyers, nil, func(ctx context.Context, buyer string) {
		if s.buyWRN(ctx, cl, buyer) {
			readAbsent.Add(1)
		}
	})
	s.owner, err = readOwner(ctx, cl, ks, client.Quorum{R: client.SizeAll}, time.Now().Add(10*time.Second))
	if err != nil {
		return nil, err
	}

	res = &lab.Result{
		Design: fmt.Sprintf("An eventual keyspace with N=%d, W=%d and R=%d, so every read quorum meets every write quorum. "+
			"Each buyer reads the phone with R=%d and, finding no owner, writes its own name with W=%d and is told \"sold\": "+
			"read-then-write, as a naive shop does it. The quorums make a read see any write that finished before it began; "+
			"nothing makes a buyer's read and write one step, so two buyers can both read before either writes.",
			wrnN, wrnW, wrnR, wrnR, wrnW),
		Fault:  "No fault: real concurrency alone, the buyers start together.",
		Buyers: len(buyers),
	}
	told := s.told()
	story := []string{fmt.Sprintf("%d of %d buyers read no owner with R=%d, wrote their name with W=%d and were told \"sold\" (%s).",
		len(told), len(buyers), wrnR, wrnW, names(told))}
	if refused := s.refusals(); refused > 0 {
		story = append(story, fmt.Sprintf("%d read a name and were told \"sold out\".", refused))
	}
	if n := int(readAbsent.Load()); n > len(told) {
		story = append(story, fmt.Sprintf("%d more read no owner but their write failed.", n-len(told)))
	}
	switch {
	case len(told) > 1:
		story = append(story, fmt.Sprintf("The phone was sold %d times; the final read with R=%d names %s, so %d buyers told \"sold\" own nothing.",
			len(told), wrnN, ownerName(s.owner), len(told)-1))
	default:
		story = append(story, fmt.Sprintf("No double sale this time: the first write landed before the other reads (the timing decides; run it again). The final read with R=%d names %s.",
			wrnN, ownerName(s.owner)))
	}
	lanes := append(nodeLanes(t.Nemesis, live), buyers...)
	return r.finish(res, lanes, []*shop{s}, story), nil
}

// buyWRN is one naive buyer: read with R, and if no one owns the phone,
// write its name with W. An attempt without an answer is tried again,
// read and all, for a few seconds. It reports whether the buyer read no
// owner.
func (s *shop) buyWRN(ctx context.Context, cl *client.Client, buyer string) (readAbsent bool) {
	giveUp := time.Now().Add(5 * time.Second)
	for {
		began := s.run.now()
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := cl.Get(actx, s.keyspace, phoneKey, client.Quorum{R: wrnR})
		if err == nil {
			cancel()
			s.refused(buyer, began, "sold out: read "+string(kv.Value))
			return readAbsent
		}
		if errors.Is(err, client.ErrNotFound) {
			readAbsent = true
			_, err = cl.Put(actx, s.keyspace, phoneKey, []byte(buyer), client.Quorum{W: wrnW})
			if err == nil {
				cancel()
				s.sold(buyer, began, "sold")
				return readAbsent
			}
		}
		cancel()
		s.noAnswer(buyer, began, why(err))
		if time.Now().After(giveUp) || sleep(ctx, 50*time.Millisecond) != nil {
			return readAbsent
		}
	}
}
