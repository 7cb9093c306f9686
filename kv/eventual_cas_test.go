package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/storage"
)

// The flash sale on an eventual keyspace: buyers on every node race to
// compare-and-swap "for sale" to their name; exactly one wins, the others
// learn who did, and a plain read with R=all sees the winner.
func TestEventualCASFlashSale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	rangeID := c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "shop", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	if _, err := c.nodes[0].Put(ctx, "shop", []byte("phone"), []byte("for sale")); err != nil {
		t.Fatal(err)
	}
	const buyersPerNode = 4
	var (
		mu      sync.Mutex
		winners []string
		losers  int
	)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		for j := range buyersPerNode {
			buyer := fmt.Sprintf("buyer-%d-%d", i, j)
			wg.Go(func() {
				_, err := n.CompareAndSwap(ctx, "shop", []byte("phone"), catalog.Expect{Value: []byte("for sale")}, []byte("sold to "+buyer))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, buyer)
				case errors.Is(err, command.ErrConditionFailed) && strings.Contains(err.Error(), `holds "sold to buyer-`):
					losers++
				default:
					t.Errorf("%s: %v", buyer, err)
				}
			})
		}
	}
	wg.Wait()
	if len(winners) != 1 || losers != 3*buyersPerNode-1 {
		t.Fatalf("winners %v, %d losers; want exactly one winner", winners, losers)
	}
	kv, err := c.nodes[2].GetWith(ctx, "shop", []byte("phone"), catalog.QuorumOverride{RLevel: "all"})
	if err != nil || string(kv.Value) != "sold to "+winners[0] {
		t.Fatalf("plain read after the sale: %+v, %v; want sold to %s", kv, err, winners[0])
	}
	// The staleness measure counts clients' reads only: the one Get, not
	// the compare-and-swaps' own reads.
	reads := 0.0
	for _, n := range c.nodes {
		reads += kvtest.MetricValue(t, n.store.Config.Metrics.WRNReads.WithLabelValues("shop"))
	}
	if reads != 1 {
		t.Fatalf("quorumkv_wrn_reads_total counted %v reads, want the 1 Get", reads)
	}
	// The acceptor states are durable, apart from the data (a scan shows
	// the one key): a majority accepted the sold value.
	holders := 0
	for _, n := range c.nodes {
		n.ev.Inflight.Wait()
		var st paxos.AcceptorState
		raw, err := n.db.Get(storage.CASStateKey(rangeID, []byte("phone")))
		if err == nil && st.Unmarshal(raw) == nil && !st.Accepted.IsZero() {
			if v, err := records.DecodeCASValue(st.Value); err == nil && string(v.Rec.Value) == "sold to "+winners[0] {
				holders++
			}
		}
	}
	if holders < 2 {
		t.Fatalf("%d replicas accepted the sold value; want a majority", holders)
	}
	kvs, _, err := c.nodes[0].Scan(ctx, "shop", nil, nil, 10)
	if err != nil || len(kvs) != 1 {
		t.Fatalf("scan: %v, %v; want the phone only", keysOf(kvs), err)
	}
}

// Dueling put-if-absent from two coordinators, over many keys: exactly one
// per key wins. With one replica down compare-and-swap goes on (a
// majority); with two, it is Unavailable.
func TestEventualCASPutIfAbsent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{HintReplayInterval: time.Hour} })
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, b := c.nodes[0], c.nodes[1]
	for k := range 10 {
		key := fmt.Appendf(nil, "k%d", k)
		var wins [2]int
		var wg sync.WaitGroup
		for i, n := range []*Node{a, b} {
			wg.Go(func() {
				for try := range 3 {
					_, err := n.CompareAndSwap(ctx, "ev", key, catalog.Expect{Absent: true}, fmt.Appendf(nil, "%d.%d", i, try))
					switch {
					case err == nil:
						wins[i]++
					case !errors.Is(err, command.ErrConditionFailed):
						t.Errorf("put-if-absent of %s through node %d: %v", key, i, err)
					}
				}
			})
		}
		wg.Wait()
		if wins[0]+wins[1] != 1 {
			t.Fatalf("key %s: wins %v; want exactly one", key, wins)
		}
	}

	c.setDown(2, true)
	if _, err := a.CompareAndSwap(ctx, "ev", []byte("k0"), catalog.Expect{Absent: true}, []byte("x")); !errors.Is(err, command.ErrConditionFailed) ||
		!strings.Contains(err.Error(), "expected key \"k0\" to be absent, but it holds") {
		t.Fatalf("put-if-absent of an existing key with c down: %v", err)
	}
	v, err := b.CompareAndSwap(ctx, "ev", []byte("new"), catalog.Expect{Absent: true}, []byte("1"))
	if err != nil {
		t.Fatalf("put-if-absent with c down: %v", err)
	}
	if _, err := a.CompareAndSwap(ctx, "ev", []byte("new"), catalog.Expect{Version: v}, []byte("2")); err != nil {
		t.Fatalf("cas at version %s with c down: %v", v, err)
	}
	if _, err := a.CompareAndSwap(ctx, "ev", []byte("new"), catalog.Expect{Version: v}, []byte("3")); !errors.Is(err, command.ErrConditionFailed) ||
		!strings.Contains(err.Error(), `holds "2"`) {
		t.Fatalf("cas at a stale version: %v", err)
	}
	c.setDown(1, true)
	_, err = a.CompareAndSwap(ctx, "ev", []byte("other"), catalog.Expect{Absent: true}, []byte("1"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("cas with two of three replicas down: %v", err)
	}
}

// A client's retry of a swap whose first attempt it never heard from must
// not be told "condition failed" when the key's swap history no longer
// reaches back far enough to find that attempt: it may have won and been
// pushed out by later swaps. It hears "outcome unknown", not marked safe
// to retry (a retry cannot tell either). The same request without the
// retry mark is a first attempt, and its failed condition is the truth.
func TestEventualCASRetryBeyondHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "shop", Mode: catalog.ModeEventual, Replicas: 3, Ranges: 1})
	n := c.nodes[0]
	key := []byte("phone")
	prev := catalog.Expect{Absent: true}
	for i := range records.CASHistoryLen + 2 {
		v := fmt.Sprintf("v%d", i)
		if _, err := n.CompareAndSwap(ctx, "shop", key, prev, []byte(v)); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
		prev = catalog.Expect{Value: []byte(v)}
	}
	stale := catalog.Expect{Value: []byte("v0")}
	_, err := n.CompareAndSwapWith(ctx, "shop", key, stale, []byte("w"), catalog.WriteOptions{IdempotencyKey: []byte("order-1"), Retry: true})
	if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("retry beyond the history = %v; want outcome unknown", err)
	}
	if cerr := transport.WriteError(err, true); connectMeta(cerr, transport.RetrySafeHeader) != "" {
		t.Fatalf("the unknown outcome of a forgotten swap is marked safe to retry: %v", cerr)
	}
	_, err = n.CompareAndSwapWith(ctx, "shop", key, stale, []byte("w"), catalog.WriteOptions{IdempotencyKey: []byte("order-2")})
	if !errors.Is(err, command.ErrConditionFailed) {
		t.Fatalf("first attempt with a stale condition = %v; want condition failed", err)
	}
}

// connectMeta returns the Connect error metadata key of err.
func connectMeta(err error, key string) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Meta().Get(key)
	}
	return ""
}
