package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/internal/workload"
)

// TestEventualCASLinearizable: a compare-and-swap-only run on an eventual
// keyspace (N=3, W=2, R=2) of three kvd processes, through every node at
// once (dueling coordinators: each client starts with another node), is
// linearizable (porcupine), with and without a node killed and restarted
// in the middle (issue 10's acceptance). The clients swap a few keys: put
// if absent, and swaps expecting the value or the version (If-Match) they
// read just before. The Go client retries as it does for any user: an
// Unavailable on the next node, an outcome unknown with the same
// idempotency key. Reads only feed the swaps: eventual reads are not
// linearizable.
func TestEventualCASLinearizable(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			nodes := startCluster(t, 3)
			nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
			endpoints := addrs(nodes)
			start := time.Now()
			h := sim.NewHistoryClock(func() time.Duration { return time.Since(start) })
			keys := []string{"phone", "laptop", "tablet"}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			const clients = 6
			for c := range clients {
				cl := rotatedClient(t, endpoints, c)
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(c), 11))
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						swapOp(h, sim.NodeID(c+1), cl, rng, keys, fmt.Sprintf("c%d-%d", c, i))
					}
				})
			}
			if kill {
				time.Sleep(3 * time.Second)
				t.Log("killing n3")
				nodes[2].kill()
				time.Sleep(3 * time.Second)
				restartKVD(t, nodes[2], "--node-id", "n3", "--zone", "z3", "--join", nodes[0].gossip)
				time.Sleep(4 * time.Second)
			} else {
				time.Sleep(8 * time.Second)
			}
			close(stop)
			wg.Wait()

			swapped, failed, unknown := 0, 0, 0
			for _, op := range h.Operations() {
				switch out := op.Output.(sim.KVOutput); {
				case out.Unknown:
					unknown++
				case out.Swapped:
					swapped++
				default:
					failed++
				}
			}
			t.Logf("%d swaps in %v: %d applied, %d condition failed, %d outcome unknown",
				h.Len(), time.Since(start).Round(time.Millisecond), swapped, failed, unknown)
			if swapped < 50 {
				t.Fatalf("only %d swaps applied: the cluster was not serving", swapped)
			}
			sim.AssertLinearizable(t, h, 30*time.Second)
		})
	}
}

// swapOp runs one compare-and-swap of a random key.
func swapOp(h *sim.History, id sim.NodeID, cl *client.Client, rng *rand.Rand, keys []string, value string) {
	ctx := context.Background()
	key := keys[rng.IntN(len(keys))]
	kv, err := cl.Get(ctx, "ev", []byte(key), client.Quorum{})
	switch {
	case errors.Is(err, client.ErrNotFound) || rng.IntN(5) == 0:
		op := h.Invoke(id, sim.KVCASAbsent(key, value))
		_, err := cl.CompareAndSwap(ctx, "ev", []byte(key), client.Expect{Absent: true}, []byte(value))
		workload.FinishCAS(op, err)
	case err != nil:
		return
	case rng.IntN(2) == 0:
		// If-Match: the version names the value read (values are unique).
		op := h.Invoke(id, sim.KVCAS(key, string(kv.Value), value))
		_, err := cl.CompareAndSwap(ctx, "ev", []byte(key), client.Expect{Version: kv.Version}, []byte(value))
		workload.FinishCAS(op, err)
	default:
		op := h.Invoke(id, sim.KVCAS(key, string(kv.Value), value))
		_, err := cl.CompareAndSwap(ctx, "ev", []byte(key), client.Expect{Value: kv.Value}, []byte(value))
		workload.FinishCAS(op, err)
	}
}
