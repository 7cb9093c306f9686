package kv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// eventualCluster is three nodes a, b, c in one process, records carried
// by memRecords; gossip (NodeConfig.Alive) sees a node alive unless
// memRecords has it down.
type eventualCluster struct {
	nodes []*Node
	recs  *memRecords
}

// openEventualCluster opens the three nodes; nodeCfg gives each node's
// config (i = 0, 1, 2).
func openEventualCluster(t *testing.T, ctx context.Context, nodeCfg func(i int) NodeConfig) *eventualCluster {
	t.Helper()
	tr := &memTransport{stores: map[uint64]*store.Store{}}
	recs := &memRecords{nodes: map[uint64]*Node{}, down: map[uint64]bool{}}
	alive := func(nd catalog.NodeDescriptor) bool {
		recs.mu.Lock()
		defer recs.mu.Unlock()
		n, ok := recs.nodes[nd.ID]
		return ok && n.store.Identity.UUID == nd.UUID && !recs.down[nd.ID]
	}
	cfg := func(name string) store.StoreConfig {
		return store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: uint64(len(name)),
			Self: catalog.NodeDescriptor{Name: name, Addr: name, Zone: "z" + name, Weight: 1}}
	}
	open := func(i int, name string, leader *Node) *Node {
		db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if leader != nil {
			joinTestNode(t, ctx, leader, db, cfg(name).Self)
		}
		s, err := store.OpenStore(db, cfg(name), tr, leader == nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nc := nodeCfg(i)
		nc.Alive = alive
		n, err := NewNode(s, nc)
		if err != nil {
			t.Fatal(err)
		}
		n.ev.RecordPeers = recs
		t.Cleanup(n.Close)
		tr.mu.Lock()
		tr.stores[s.NodeID()] = s
		tr.mu.Unlock()
		recs.mu.Lock()
		recs.nodes[s.NodeID()] = n
		recs.mu.Unlock()
		return n
	}
	a := open(0, "a", nil)
	c := &eventualCluster{nodes: []*Node{a}, recs: recs}
	for i, name := range []string{"b", "c"} {
		c.nodes = append(c.nodes, open(i+1, name, a))
	}
	// Runs before any store or disk closes: a node's background loops
	// write to the others.
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	waitUntil(t, "every node in every catalog", func() bool {
		for _, n := range c.nodes {
			if len(n.store.Catalog().Nodes) != 3 {
				return false
			}
		}
		return true
	})
	return c
}

// createKeyspace creates ks through a and waits until every node knows
// it; it returns its (only) range's ID.
func (c *eventualCluster) createKeyspace(t *testing.T, ctx context.Context, ks catalog.KeyspaceDescriptor) uint64 {
	t.Helper()
	if _, err := kvtest.Retry(t, func() (catalog.KeyspaceDescriptor, error) { return c.nodes[0].CreateKeyspace(ctx, ks) }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ks.Name+" in every catalog", func() bool {
		for _, n := range c.nodes {
			if _, ok := n.store.Catalog().Keyspaces[ks.Name]; !ok {
				return false
			}
		}
		return true
	})
	return c.nodes[0].store.Catalog().Ranges[ks.Name][0].ID
}

func (c *eventualCluster) setDown(i int, down bool) { c.recs.setDown(c.nodes[i].store.NodeID(), down) }

// A replica down during writes gets them, deletes included, by hint
// replay once it is back: read from it alone (R=1 with the other two
// down). Without sloppy quorum a hint does not count toward W.
func TestEventualHintedHandoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{HintReplayInterval: 10 * time.Millisecond} })
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, cn := c.nodes[0], c.nodes[2]
	if _, err := a.Put(ctx, "ev", []byte("gone"), []byte("v")); err != nil {
		t.Fatal(err)
	}

	a.ev.Inflight.Wait() // c got it: its send ended before c goes down
	c.setDown(2, true)
	for i := range 5 {
		if _, err := a.Put(ctx, "ev", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatalf("W=2 with c down: %v", err)
		}
	}
	if _, err := a.Delete(ctx, "ev", []byte("gone")); err != nil {
		t.Fatal(err)
	}
	// Refused before anything is sent (gossip sees c down): no hint.
	_, err := a.PutWith(ctx, "ev", []byte("w3"), []byte("v"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{W: 3}})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "hears from 2 of 3 replicas") {
		t.Fatalf("W=3 with c down and no sloppy quorum: %v", err)
	}
	m := a.store.Config.Metrics
	a.ev.Inflight.Wait() // the hints are stored by the senders
	if got := kvtest.MetricValue(t, m.HintsQueued); got != 6 {
		t.Fatalf("hints queued = %v, want 6", got)
	}
	time.Sleep(50 * time.Millisecond) // a few replay rounds: c is down, none delivered
	if got := kvtest.MetricValue(t, m.HintsPending); got != 6 {
		t.Fatalf("hints pending while c is down = %v, want 6", got)
	}

	c.setDown(2, false)
	waitUntil(t, "hints delivered", func() bool { return kvtest.MetricValue(t, m.HintsPending) == 0 })
	if got := kvtest.MetricValue(t, m.HintsDelivered); got != 6 {
		t.Fatalf("hints delivered = %v, want 6", got)
	}
	// c alone answers: every write it missed is there.
	c.setDown(0, true)
	c.setDown(1, true)
	for i := range 5 {
		key := fmt.Appendf(nil, "k%d", i)
		if kv, err := cn.GetWith(ctx, "ev", key, catalog.QuorumOverride{R: 1}); err != nil || string(kv.Value) != "v" {
			t.Fatalf("get %s from c alone: %+v, %v", key, kv, err)
		}
	}
	if _, err := cn.GetWith(ctx, "ev", []byte("w3"), catalog.QuorumOverride{R: 1}); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("the W=3 write answered Unavailable reached c: %v", err)
	}
	if _, err := cn.GetWith(ctx, "ev", []byte("gone"), catalog.QuorumOverride{R: 1}); !errors.Is(err, catalog.ErrKeyNotFound) {
		t.Fatalf("the delete's hint did not reach c: %v", err)
	}
}

// With sloppy quorum a hint counts toward W: W=3 succeeds with a replica
// down, and the replica gets the write later.
func TestEventualSloppyQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{HintReplayInterval: 10 * time.Millisecond} })
	rangeID := c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "sl", Mode: catalog.ModeEventual, Replicas: 3, W: 3, R: 1, Ranges: 1,
		SloppyQuorum: true})
	a, cn := c.nodes[0], c.nodes[2]
	c.setDown(2, true)
	if _, err := a.Put(ctx, "sl", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("sloppy W=3 with one replica down: %v", err)
	}
	if rec, _ := cn.ev.Records.Read(rangeID, []byte("k")); !rec.Version.IsZero() {
		t.Fatalf("c holds k although it was down: %+v", rec)
	}
	c.setDown(2, false)
	waitUntil(t, "hint delivered to c", func() bool {
		rec, _ := cn.ev.Records.Read(rangeID, []byte("k"))
		return string(rec.Value) == "v"
	})
}

// Hints are bounded: over MaxHints they are dropped (and counted), and a
// hint older than MaxHintAge is dropped unreplayed.
func TestEventualHintBounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var offset atomic.Int64 // added to a's physical clock
	c := openEventualCluster(t, ctx, func(i int) NodeConfig {
		cfg := NodeConfig{HintReplayInterval: 10 * time.Millisecond}
		if i == 0 {
			cfg.MaxHints, cfg.MaxHintAge = 3, time.Minute
			cfg.PhysicalClock = func() int64 { return time.Now().UnixNano() + offset.Load() }
		}
		return cfg
	})
	rangeID := c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3, W: 2, R: 2, Ranges: 1})
	a, cn := c.nodes[0], c.nodes[2]
	m := a.store.Config.Metrics
	c.setDown(2, true)
	for i := range 5 {
		if _, err := a.Put(ctx, "ev", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatalf("W=2 with c down: %v", err)
		}
	}
	a.ev.Inflight.Wait()
	if q, d, p := kvtest.MetricValue(t, m.HintsQueued), kvtest.MetricValue(t, m.HintsDropped.WithLabelValues("full")),
		kvtest.MetricValue(t, m.HintsPending); q != 3 || d != 2 || p != 3 {
		t.Fatalf("hints queued %v, dropped (full) %v, pending %v; want 3, 2, 3", q, d, p)
	}
	offset.Store(int64(2 * time.Minute))
	waitUntil(t, "expired hints dropped", func() bool { return kvtest.MetricValue(t, m.HintsPending) == 0 })
	if got := kvtest.MetricValue(t, m.HintsDropped.WithLabelValues("expired")); got != 3 {
		t.Fatalf("hints dropped (expired) = %v, want 3", got)
	}
	c.setDown(2, false)
	time.Sleep(50 * time.Millisecond)
	if got := kvtest.MetricValue(t, m.HintsDelivered); got != 0 {
		t.Fatalf("hints delivered after expiry = %v, want 0", got)
	}
	if rec, _ := cn.ev.Records.Read(rangeID, []byte("k0")); !rec.Version.IsZero() {
		t.Fatalf("an expired hint reached c: %+v", rec)
	}
}

// The hints kept for a replica that then moves away go to the range's
// replicas instead: a range of two replicas on a and b, with b down, takes
// writes (W=1 per request, hints for b on a); b's replica moves to c and leaves; the
// replay writes the records to a and c, and deletes the hints as
// delivered, though b never comes back.
func TestHintsFollowAMovedReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{HintReplayInterval: 10 * time.Millisecond} })
	a := c.nodes[0]
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 2, W: 2, R: 1, Ranges: 1})
	rd := a.store.Catalog().Ranges["ev"][0]
	// The test writes through the replica that stays, and takes down the
	// other: whichever two nodes placement chose.
	var stay, gone, other *Node
	for _, n := range c.nodes {
		switch {
		case !rd.HasReplica(n.store.NodeID()):
			other = n
		case stay == nil:
			stay = n
		default:
			gone = n
		}
	}
	// A write with both up first: the coordinator's clock is then
	// confirmed by the other replica (eventual_clock.go).
	if _, err := stay.PutWith(ctx, "ev", []byte("first"), []byte("v"), catalog.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.recs.setDown(gone.store.NodeID(), true)
	for i := range 5 {
		if _, err := stay.PutWith(ctx, "ev", fmt.Appendf(nil, "k%d", i), []byte("v"), catalog.WriteOptions{Quorum: catalog.QuorumOverride{W: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := stay.ev.Hints.PendingTargets(); len(got) != 1 || got[0] != gone.store.NodeID() {
		t.Fatalf("hints pending on the coordinator for %v, want for node %d", got, gone.store.NodeID())
	}
	for _, op := range []catalog.CatalogOp{
		{Move: &catalog.MoveReplica{Range: rd.ID, From: gone.store.NodeID(), To: catalog.ReplicaDescriptor{NodeID: other.store.NodeID()}}},
		{Left: &catalog.RangeReplica{Range: rd.ID, Node: gone.store.NodeID()}},
	} {
		if _, err := kvtest.Retry(t, func() (struct{}, error) { return struct{}{}, c.nodes[0].proposeOp(ctx, op) }); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the hints redirected and delivered", func() bool { return len(stay.ev.Hints.PendingTargets()) == 0 })
	for i := range 5 {
		rec, err := other.ev.ReadLocalRecord(rd.ID, fmt.Appendf(nil, "k%d", i))
		if err != nil || string(rec.Value) != "v" {
			t.Fatalf("k%d on the replica that took the moved one's place: %q, %v", i, rec.Value, err)
		}
	}
}

// A replica a move adds to an eventual range does not count toward reads
// until it has filled (kv/eventual/fill.go). With N=2, W=1, R=2, writes
// of five keys acknowledged by q alone (p was down), then q's replica
// moved to r while q is down: a read from {p, r} would answer "not found"
// for a write that was acknowledged, were r counted. It answers Unavailable instead,
// naming the filling replica; once q is back (leaving, alive), r fills
// from it and from p, copying the compare-and-swap acceptor states too,
// meta clears the mark, and the read finds the value. The canary
// (FillingCounts) counts r at once, and the reads must miss.
func TestEventualNewReplicaFills(t *testing.T) {
	for _, canary := range []bool{false, true} {
		t.Run(fmt.Sprintf("canary=%v", canary), func(t *testing.T) { testNewReplicaFills(t, canary) })
	}
}

func testNewReplicaFills(t *testing.T, canary bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig {
		return NodeConfig{HintReplayInterval: time.Hour, evHooks: eventual.Hooks{FillingCounts: canary}}
	})
	c.createKeyspace(t, ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 2, W: 1, R: 2, Ranges: 1})
	rd := c.nodes[0].store.Catalog().Ranges["ev"][0]
	var p, q, r *Node
	for _, n := range c.nodes {
		switch {
		case !rd.HasReplica(n.store.NodeID()):
			r = n
		case p == nil:
			p = n
		default:
			q = n
		}
	}
	// With all up: a first write (the clocks confirm each other) and a
	// compare-and-swap, whose acceptor states r must copy.
	if _, err := q.PutWith(ctx, "ev", []byte("first"), []byte("v"), catalog.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.CompareAndSwap(ctx, "ev", []byte("swapped"), catalog.Expect{Absent: true}, []byte("s")); err != nil {
		t.Fatal(err)
	}
	c.recs.setDown(p.store.NodeID(), true)
	const keys = 5
	for i := range keys {
		if _, err := q.PutWith(ctx, "ev", fmt.Appendf(nil, "k%d", i), []byte("only-on-q"), catalog.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Each write's call to p fails in the background, after W=1 answered:
	// p comes back only once every one did (q holds a hint for each, which
	// it replays only hourly). Waiting for the first hint alone let a call
	// still under way reach p after it came back, and the canary's reads
	// found the value there.
	waitUntil(t, "q's hints for p, one a key", func() bool {
		hints, err := q.ev.Hints.Read(storage.HintSpan(records.HintTargetName(p.store.NodeID())))
		hinted := map[string]bool{}
		for _, e := range hints {
			if h, err := records.DecodeHint(e.Value); err == nil {
				hinted[string(h.Key)] = true
			}
		}
		for i := range keys {
			if !hinted[fmt.Sprintf("k%d", i)] {
				return false
			}
		}
		return err == nil
	})
	if !q.ev.Hints.Claim(p.store.NodeID()) { // and never replays them
		t.Fatal("q's hints for p are being replayed")
	}
	c.recs.setDown(p.store.NodeID(), false)
	c.recs.setDown(q.store.NodeID(), true)
	move := catalog.CatalogOp{Move: &catalog.MoveReplica{Range: rd.ID, From: q.store.NodeID(), To: catalog.ReplicaDescriptor{NodeID: r.store.NodeID()}}}
	if _, err := kvtest.Retry(t, func() (struct{}, error) { return struct{}{}, p.proposeOp(ctx, move) }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the move in p's and r's catalogs, r filling", func() bool {
		return p.store.Catalog().Ranges["ev"][0].IsFilling(r.store.NodeID()) && r.store.Catalog().Ranges["ev"][0].IsFilling(r.store.NodeID())
	})
	missed := 0
	var answers []string // what each read got, for a failure's message
	for i := range keys {
		kv, err := p.Get(ctx, "ev", fmt.Appendf(nil, "k%d", i))
		answers = append(answers, fmt.Sprintf("k%d: %q %v", i, kv.Value, err))
		switch {
		case errors.Is(err, catalog.ErrKeyNotFound):
			missed++
		case !canary && (!errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "still copying")):
			t.Fatalf("a read of k%d while r fills: %v, want Unavailable naming the filling replica", i, err)
		}
	}
	if !canary && missed > 0 {
		t.Fatalf("%d of %d reads while r fills answered not found for an acknowledged write", missed, keys)
	}
	if canary {
		if missed == 0 {
			t.Fatalf("canary: the reads counted the empty replica, want them to miss acknowledged writes (not found), but none did: %s",
				strings.Join(answers, "; "))
		}
		return
	}

	c.recs.setDown(q.store.NodeID(), false)
	waitUntil(t, "r filled", func() bool {
		r.ev.AntiEntropyStep()
		return r.ev.Filled(rd.ID)
	})
	for _, a := range p.fillAsks() {
		p.ask(a, func(ok bool) {
			if ok {
				if err := p.proposeOp(ctx, catalog.CatalogOp{Filled: &a.Replica}); err != nil {
					t.Errorf("proposing %v filled: %v", a.Replica, err)
				}
			}
		})
	}
	waitUntil(t, "r no longer filling in p's catalog", func() bool {
		return !p.store.Catalog().Ranges["ev"][0].IsFilling(r.store.NodeID())
	})
	for i := range keys {
		if kv, err := p.Get(ctx, "ev", fmt.Appendf(nil, "k%d", i)); err != nil || string(kv.Value) != "only-on-q" {
			t.Fatalf("k%d after r filled: %q, %v; want only-on-q", i, kv.Value, err)
		}
	}
	st, err := r.ev.Records.AcceptorState(rd.ID, []byte("swapped"))
	if err != nil || st.Accepted.IsZero() {
		t.Fatalf("r's acceptor state of the swapped key after it filled: %+v, %v; want q's and p's acceptance copied", st, err)
	}
}
