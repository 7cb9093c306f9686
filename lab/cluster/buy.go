package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// patience is how a buyer clicks: how long one attempt may take before
// the buyer gives up on it, and how long the buyer keeps clicking.
type patience struct {
	attempt time.Duration
	total   time.Duration
}

// impatient buyers give up on an attempt after a second and click again,
// for up to 30 s: an election shows as attempts without an answer.
var impatient = patience{attempt: time.Second, total: 30 * time.Second}

// race runs buy for every buyer in its own goroutine, buyer i starting
// at arrive(i) after the call (all at once when arrive is nil), and
// returns when every buyer is done. Each goroutine ends when its buy
// returns: buy must return once ctx ends.
func race(ctx context.Context, buyers []string, arrive func(i int) time.Duration, buy func(ctx context.Context, buyer string)) {
	gun := make(chan struct{})
	var wg sync.WaitGroup
	for i, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gun
			if arrive != nil && sleep(ctx, arrive(i)) != nil {
				return
			}
			buy(ctx, b)
		}()
	}
	close(gun) // the buyers start together: none has a head start of a goroutine's creation
	wg.Wait()
}

// buyCAS is a buyer of a consensus keyspace: it asks the shop to write
// its name only if the phone has no owner (compare-and-swap if absent),
// through the Go client, which sends a write whose outcome is unknown
// again with the same idempotency key. An attempt that gets no answer in
// p.attempt is clicked again (a new write). A buyer refused after an
// attempt whose outcome was unknown reads the owner: its own earlier
// attempt may be the one that bought the phone. One that gives up with
// the outcome unknown is left for the final read (shop.resolve).
func (s *shop) buyCAS(ctx context.Context, cl *client.Client, buyer string, p patience) {
	giveUp := time.Now().Add(p.total)
	unknown := false
	for {
		began := s.run.now()
		actx, cancel := context.WithTimeout(ctx, p.attempt)
		_, err := cl.CompareAndSwap(actx, s.keyspace, phoneKey, client.Expect{Absent: true}, []byte(buyer))
		cancel()
		switch {
		case err == nil:
			s.sold(buyer, began, "sold")
			return
		case errors.Is(err, client.ErrConditionFailed) && !unknown:
			s.refused(buyer, began, "sold out")
			return
		case errors.Is(err, client.ErrConditionFailed):
			owner, rerr := readOwner(ctx, cl, s.keyspace, client.Quorum{}, giveUp)
			switch {
			case rerr != nil:
				s.noAnswer(buyer, began, why(rerr))
				s.unresolved(buyer)
			case owner == buyer:
				s.sold(buyer, began, "sold (its earlier attempt had bought it, a read told)")
			default:
				s.refused(buyer, began, "sold out")
			}
			return
		}
		if errors.Is(err, client.ErrOutcomeUnknown) {
			unknown = true
		}
		s.noAnswer(buyer, began, why(err))
		if time.Now().After(giveUp) || sleep(ctx, 50*time.Millisecond) != nil {
			if unknown {
				s.unresolved(buyer)
			}
			return
		}
	}
}
