package kv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

// Issue 10's scenarios on eventual keyspaces, each replayed in the
// simulator, one operation at a time, by a test that plays the client.

// evHarness runs single operations on a simulated cluster's nodes, as
// their API would, waiting for each.
type evHarness struct {
	t     *testing.T
	c     *simCluster
	ks    string
	shift map[uint64]time.Duration // each node's clock step
}

func newEvHarness(t *testing.T, seed uint64, nodes int, ks catalog.KeyspaceDescriptor) *evHarness {
	h := &evHarness{t: t, ks: ks.Name, shift: map[uint64]time.Duration{}}
	h.c = newSimClusterWith(t, seed, nodes, []catalog.KeyspaceDescriptor{ks}, func(c *simCluster) {
		c.nodeConfig = func(id uint64, cfg *NodeConfig) {
			phys := cfg.PhysicalClock
			cfg.PhysicalClock = func() int64 { return phys() + int64(h.shift[id]) }
		}
	})
	return h
}

func (h *evHarness) node(id uint64) *Node {
	h.t.Helper()
	n := h.c.node(id)
	if n == nil {
		h.t.Fatalf("node %d is down", id)
	}
	return n.node
}

func (h *evHarness) lookup(id uint64, key string) (catalog.KeyspaceDescriptor, *catalog.RangeDescriptor) {
	h.t.Helper()
	ks, rd, err := h.node(id).ev.Lookup(h.ks, []byte(key))
	if err != nil {
		h.t.Fatal(err)
	}
	return ks, rd
}

// wait runs the sim until *done is set.
func (h *evHarness) wait(what string, done *bool) {
	h.t.Helper()
	h.c.require(what, 2*simOpBudget, func() bool { return *done })
}

// write is Put (or Delete, with a tombstone) through node id.
func (h *evHarness) write(id uint64, key string, rec wrn.Record, q catalog.QuorumOverride) (wrn.Version, error) {
	h.t.Helper()
	ks, rd := h.lookup(id, key)
	w, err := h.node(id).ev.NewEventualWrite(ks, rd, []byte(key), rec, q)
	if err != nil {
		return wrn.Version{}, err
	}
	var res eventual.WriteResult
	done := false
	w.Start(func(r eventual.WriteResult) { res, done = r, true })
	h.wait("a write of "+key, &done)
	return w.Rec.Version, res.Err
}

func (h *evHarness) put(id uint64, key, value string) (wrn.Version, error) {
	h.t.Helper()
	return h.write(id, key, wrn.Record{Value: []byte(value)}, catalog.QuorumOverride{})
}

// get is Get through node id with R=r (0: the keyspace's).
func (h *evHarness) get(id uint64, key string, r int) (wrn.Record, error) {
	h.t.Helper()
	ks, rd := h.lookup(id, key)
	op, err := h.node(id).ev.NewEventualRead(ks, rd, []byte(key), catalog.QuorumOverride{R: r})
	if err != nil {
		return wrn.Record{}, err
	}
	var res eventual.ReadResult
	done := false
	op.Start(func(r eventual.ReadResult) { res, done = r, true })
	h.wait("a read of "+key, &done)
	return res.Rec, res.Err
}

// cas is CompareAndSwapWith through node id (a conditional delete when
// rec is a tombstone), with idempotency key idem.
func (h *evHarness) cas(id uint64, key string, expect catalog.Expect, rec wrn.Record, idem string) (string, error) {
	h.t.Helper()
	ks, rd := h.lookup(id, key)
	op, err := h.node(id).ev.NewCASOp(ks, rd, []byte(key), expect, rec, []byte(idem))
	if err != nil {
		return "", err
	}
	var res eventual.CASResult
	done := false
	op.Start(func(r eventual.CASResult) { res, done = r, true })
	h.wait("a compare-and-swap of "+key, &done)
	return res.Version, res.Err
}

func (h *evHarness) swap(id uint64, key string, expect catalog.Expect, value, idem string) (string, error) {
	h.t.Helper()
	return h.cas(id, key, expect, wrn.Record{Value: []byte(value)}, idem)
}

// record is node id's record of key.
func (h *evHarness) record(id uint64, key string) wrn.Record {
	h.t.Helper()
	_, rd := h.lookup(h.c.ids[0], key)
	rec, err := h.node(id).ev.Records.Read(rd.ID, []byte(key))
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// accepted is node id's acceptor state of key.
func (h *evHarness) accepted(id uint64, key string) paxos.AcceptorState {
	h.t.Helper()
	_, rd := h.lookup(h.c.ids[0], key)
	st, err := h.node(id).ev.Records.AcceptorState(rd.ID, []byte(key))
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// Scenario 3: "Unavailable means nothing was written" is true. N=3, W=3,
// one node cut off (gossip still sees it alive): a write stored on the
// two others, and a swap chosen by them but not stored on W replicas,
// are of unknown outcome, not Unavailable; the swap's retry with the
// same idempotency key is never told "condition failed", and once the
// node is back it finishes the write and answers success. With the node
// down to gossip, both are refused at once, and nothing is written. (On
// the code before, both answered Unavailable, and the retry "condition
// failed: it holds sold to alice": the winner told he lost.)
func TestSimEventualTruthfulAnswers(t *testing.T) {
	h := newEvHarness(t, 1, 3, evKeyspace(3, 3, 1))
	nodes := []sim.NodeID{1, 2, 3}
	heal := h.c.s.Net().Partition(sim.Isolate(nodes, 3))

	v, err := h.put(1, "k", "v1")
	if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "stored on 2 of 3 replicas") {
		t.Fatalf("W=3 write with node 3 cut off: %v; want outcome unknown, stored on 2 of 3", err)
	}
	if transport.ConnectCode(err).String() != "unknown" {
		t.Fatalf("the write's outcome unknown maps to Connect code %v", transport.ConnectCode(err))
	}
	for _, id := range []uint64{1, 2} {
		if rec := h.record(id, "k"); rec.Version != v {
			t.Fatalf("node %d holds %s, want the write of unknown outcome", id, describeRecord(rec))
		}
	}

	buy := func(id uint64, buyer string) (string, error) {
		t.Helper()
		return h.swap(id, "phone", catalog.Expect{Absent: true}, "sold to "+buyer, "order-"+buyer)
	}
	_, err = buy(1, "alice")
	if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "chosen") {
		t.Fatalf("swap with node 3 cut off: %v; want outcome unknown, chosen", err)
	}
	if transport.ConnectCode(err).String() != "unknown" {
		t.Fatalf("the swap's outcome unknown maps to Connect code %v", transport.ConnectCode(err))
	}
	// The retry, through another node: still not on W replicas, and never
	// "condition failed".
	if _, err = buy(2, "alice"); !errors.Is(err, store.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "chosen") {
		t.Fatalf("retry of alice's swap with node 3 cut off: %v; want outcome unknown, chosen", err)
	}
	if _, err = buy(2, "bob"); !errors.Is(err, command.ErrConditionFailed) || !strings.Contains(err.Error(), `holds "sold to alice"`) {
		t.Fatalf("bob's swap: %v; want condition failed, sold to alice", err)
	}
	heal()
	version, err := buy(2, "alice")
	if err != nil {
		t.Fatalf("retry of alice's swap with node 3 back: %v; want success", err)
	}
	if again, err := buy(1, "alice"); err != nil || again != version {
		t.Fatalf("another retry of alice's swap: %q, %v; want success at %s", again, err, version)
	}
	rec, err := h.get(3, "phone", 3)
	if err != nil || string(rec.Value) != "sold to alice" || eventual.FormatRecordVersion(rec.Version) != version {
		t.Fatalf("R=3 read: %s, %v; want sold to alice at %s", describeRecord(rec), err, version)
	}

	// Node 3 down to gossip: refused before anything is sent.
	h.c.s.Crash(3)
	for _, w := range []struct {
		what string
		do   func() error
	}{
		{"write", func() error { _, err := h.put(1, "k", "v2"); return err }},
		{"swap", func() error {
			_, err := h.swap(1, "k", catalog.Expect{Exists: true}, "v3", "")
			return err
		}},
	} {
		err := w.do()
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "hears from 2 of 3 replicas") ||
			!strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("%s with node 3 down: %v; want Unavailable at once", w.what, err)
		}
		if !transport.QuorumLost(transport.ToConnect(err)) {
			t.Fatalf("%s with node 3 down: %v; want the Quorumkv-Quorum: lost metadata, so that clients give up at once", w.what, err)
		}
	}
	for _, id := range []uint64{1, 2} {
		if rec := h.record(id, "k"); rec.Version != v {
			t.Fatalf("node %d holds %s after writes answered Unavailable, want v1 still", id, describeRecord(rec))
		}
	}
}

// Scenario 3, the swaps' side: with one of three replicas cut off (gossip
// sees it alive), contended swaps go on. A call to it that fails counts
// as a refusal, and the two others decide (on the code before, a failed
// call was not counted, and a swap whose other acceptor refused for a
// competing ballot answered Unavailable, "needs a majority of 3
// replicas", although two had answered).
func TestSimEventualCASOneReplicaCutOff(t *testing.T) {
	h := newEvHarness(t, 1, 3, evKeyspace(3, 2, 2))
	h.c.s.Net().Partition(sim.Isolate([]sim.NodeID{1, 2, 3}, 3))
	wins := 0
	for k := range 30 {
		key := fmt.Sprintf("k%d", k)
		var errs [2]error
		done := [2]bool{}
		for i, id := range []uint64{1, 2} {
			ks, rd := h.lookup(id, key)
			op, err := h.node(id).ev.NewCASOp(ks, rd, []byte(key), catalog.Expect{Absent: true}, wrn.Record{Value: fmt.Appendf(nil, "%d", i)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			op.Start(func(r eventual.CASResult) { errs[i], done[i] = r.Err, true })
		}
		h.c.require("two dueling swaps", 2*simOpBudget, func() bool { return done[0] && done[1] })
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, command.ErrConditionFailed):
				t.Fatalf("key %s: put-if-absent through node %d: %v", key, i+1, err)
			}
		}
	}
	if wins != 30 {
		t.Fatalf("%d swaps won on 30 keys; want exactly one per key", wins)
	}
}

// Scenario 4: an eventual compare-and-swap answered 412 for a swap it had
// performed. No faults: two (or four) clients, one key, one coordinator,
// each reading the key and swapping it if unchanged since (REST's
// If-Match on the version), retrying an Unavailable or unknown answer
// with the same idempotency key, as the Go client does. On the code before, a proposal
// preempted after its value was accepted could see that value chosen by
// the other client's proposal and superseded by its next swap; its
// later attempt, or the client's retry (a new request that knew none of
// its values), then found another value and answered "condition failed".
// The swaps' history, checked with porcupine, was not linearizable, and
// values of swaps answered 412 were read back (clients=4 failed on 5 of
// seeds 1-10; clients=2, the e2e workload, on seed 78 of 1-200).
func TestSimEventualCASVersionChain(t *testing.T) {
	for _, clients := range []int{2, 4} {
		t.Run(fmt.Sprintf("clients=%d", clients), func(t *testing.T) { testCASVersionChain(t, clients) })
	}
}

func testCASVersionChain(t *testing.T, nclients int) {
	sim.RunSeeds(t, 10, func(t *testing.T, seed uint64) {
		h := newEvHarness(t, seed, 3, evKeyspace(3, 2, 2))
		s := h.c.s
		const key, swaps = "k", 150
		var ops []porcupine.Operation
		var stamp int64
		next := func() int64 { stamp = max(int64(s.Now()), stamp+1); return stamp }
		failed := map[string]bool{} // values of swaps answered 412
		seen := map[string]bool{}   // values read back
		type client struct {
			id      int
			version string // of the value last read
			was     string
			n       int
			busy    bool
		}
		var clients []*client
		for i := range nclients {
			clients = append(clients, &client{id: i + 1})
		}
		ks, rd := h.lookup(1, key)
		n1 := h.node(1)
		var step func(cl *client)
		read := func(cl *client) {
			op, err := n1.ev.NewEventualRead(ks, rd, []byte(key), catalog.QuorumOverride{})
			if err != nil {
				t.Fatal(err)
			}
			op.Start(func(r eventual.ReadResult) {
				if r.Err != nil {
					s.After(time.Millisecond, func() { step(cl) })
					return
				}
				cl.version, cl.was = "", ""
				if r.Rec.Exists() {
					cl.version, cl.was = eventual.FormatRecordVersion(r.Rec.Version), string(r.Rec.Value)
					seen[cl.was] = true
				}
				step(cl)
			})
		}
		step = func(cl *client) {
			if cl.n == swaps/nclients {
				cl.busy = false
				return
			}
			cl.n++
			value := fmt.Sprintf("c%d-%d", cl.id, cl.n)
			expect, in := catalog.Expect{Absent: true}, evModelIn{kind: evCAS, key: key, absent: true, value: value, client: uint64(cl.id), seq: uint64(cl.n)}
			if cl.version != "" {
				expect, in.absent, in.was = catalog.Expect{Version: cl.version}, false, cl.was
			}
			call := next()
			tries := 0
			var attempt func()
			attempt = func() {
				tries++
				op, err := n1.ev.NewCASOp(ks, rd, []byte(key), expect, wrn.Record{Value: []byte(value)}, []byte(value))
				if err != nil {
					t.Fatal(err)
				}
				op.Start(func(r eventual.CASResult) {
					switch {
					case errors.Is(r.Err, store.ErrUnavailable), errors.Is(r.Err, store.ErrOutcomeUnknown):
						s.After(time.Duration(1+s.Rand().IntN(20))*time.Millisecond, attempt) // the client's retry
						return
					case r.Err != nil && !errors.Is(r.Err, command.ErrConditionFailed):
						t.Errorf("swap %s: %v", value, r.Err)
					}
					in.tries = uint64(tries)
					ops = append(ops, porcupine.Operation{ClientId: cl.id - 1, Input: in, Call: call,
						Output: evModelOut{swapped: r.Err == nil}, Return: next()})
					if r.Err != nil {
						failed[value] = true
					}
					read(cl)
				})
			}
			attempt()
		}
		for _, cl := range clients {
			cl.busy = true
			read(cl)
		}
		h.c.require("the clients' swaps", time.Minute, func() bool {
			return !slices.ContainsFunc(clients, func(cl *client) bool { return cl.busy })
		})
		// The final value, read linearizably: a swap that never holds.
		call := next()
		final, err := h.swap(1, key, catalog.Expect{Version: "probe"}, "probe", "")
		if !errors.Is(err, command.ErrConditionFailed) {
			t.Fatalf("probe: %q, %v", final, err)
		}
		rec, err := h.get(1, key, 3)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(rec.Value)] = true
		ops = append(ops, porcupine.Operation{ClientId: nclients, Input: evModelIn{kind: evProbe, key: key}, Call: call,
			Output: evModelOut{rec: rec}, Return: next()})
		for v := range failed {
			if seen[v] {
				t.Errorf("the swap to %q was answered 412 (condition failed), yet its value was read back", v)
			}
		}
		checkEvLinearizable(t, ops, t.Errorf)
		t.Logf("seed %d: %d swaps, %d answered 412", seed, len(ops)-1, len(failed))
	})
}

// Scenario 5: deleted values stay deleted. A key created by compare-and-
// swap, deleted (by a plain delete, or a conditional one), its tombstone
// purged by anti-entropy on every replica: the next put-if-absent
// succeeds, and the old value never comes back. (On the code before, the
// acceptors still held the old accepted value, the put-if-absent found
// it, failed, and wrote it back to every replica; and a conditional
// delete answered Unimplemented.)
func TestSimEventualDeleteStaysDeleted(t *testing.T) {
	for _, conditional := range []bool{false, true} {
		t.Run(fmt.Sprintf("conditional=%v", conditional), func(t *testing.T) {
			h := newEvHarness(t, 1, 3, evKeyspace(3, 2, 2))
			if _, err := h.swap(1, "k", catalog.Expect{Absent: true}, "old", ""); err != nil {
				t.Fatal(err)
			}
			if conditional {
				if _, err := h.cas(2, "k", catalog.Expect{Value: []byte("never")}, wrn.Record{Tombstone: true}, ""); !errors.Is(err, command.ErrConditionFailed) {
					t.Fatalf("conditional delete expecting another value: %v", err)
				}
				if _, err := h.cas(2, "k", catalog.Expect{Value: []byte("old")}, wrn.Record{Tombstone: true}, ""); err != nil {
					t.Fatalf("conditional delete: %v", err)
				}
			} else if _, err := h.write(2, "k", wrn.Record{Tombstone: true}, catalog.QuorumOverride{}); err != nil {
				t.Fatal(err)
			}
			h.c.require("every replica to purge the tombstone", 10*time.Second, func() bool {
				for _, id := range h.c.ids {
					if !h.record(id, "k").Version.IsZero() {
						return false
					}
				}
				return true
			})
			accepted := make([]paxos.AcceptorState, len(h.c.ids))
			for i, id := range h.c.ids {
				accepted[i] = h.accepted(id, "k")
			}
			if _, err := h.swap(3, "k", catalog.Expect{Absent: true}, "new", ""); err != nil {
				t.Fatalf("put-if-absent after the delete was purged: %v", err)
			}
			for i, st := range accepted {
				if st.Accepted.IsZero() {
					continue
				}
				if v, err := records.DecodeCASValue(st.Value); err != nil || !v.Rec.Version.IsZero() || len(v.Hist) == 0 {
					t.Fatalf("node %d's acceptor holds %+v, %v after the purge; want its swap history and no record", h.c.ids[i], v, err)
				}
			}
			if rec, err := h.get(1, "k", 3); err != nil || string(rec.Value) != "new" {
				t.Fatalf("R=3 read: %s, %v; want new", describeRecord(rec), err)
			}
		})
	}
}

// Scenario 6: a clock more than the HLC's maximum offset off. A node whose
// clock is 2 s ahead writes nothing, neither a plain write nor a swap: the
// other replicas refuse its versions (and count the refusals), and its
// own replica and acceptor do not get them before another one did. A node
// whose clock is 2 s behind, once it has read a version that far ahead of
// it, refuses to coordinate writes, and it cannot stamp a swap past the
// key's version. Exactly one swap wins, and every acknowledged write is
// visible to the next R=N read. (On the code before, the node ahead wrote
// far-future records: a later acknowledged swap was invisible to an R=N
// read, and a later acknowledged plain write too.)
func TestSimEventualClockOffset(t *testing.T) {
	h := newEvHarness(t, 1, 3, evKeyspace(3, 2, 2))
	metric := func(id uint64, by string) float64 {
		return kvtest.MetricValue(t, h.node(id).store.Config.Metrics.ClockOffsetRefusals.WithLabelValues(by))
	}
	if _, err := h.put(1, "plain", "before"); err != nil {
		t.Fatal(err)
	}
	h.shift[1] = 2 * time.Second
	// Past the clock guard's trust in node 1's clock.
	if err := h.c.s.RunFor(2 * eventual.ClockTrustWindow); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		what string
		do   func() error
	}{
		{"write", func() error { _, err := h.put(1, "plain", "ahead"); return err }},
		{"swap", func() error {
			_, err := h.swap(1, "phone", catalog.Expect{Absent: true}, "sold to mallory", "")
			return err
		}},
	} {
		err := w.do()
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "maximum clock offset") || !strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("%s through node 1, 2s ahead: %v; want Unavailable naming the offset", w.what, err)
		}
		if code := transport.ConnectCode(err); code != connect.CodeUnavailable {
			t.Fatalf("%s through node 1, 2s ahead: Connect code %v, want unavailable", w.what, code)
		}
	}
	for _, id := range h.c.ids {
		if rec := h.record(id, "plain"); string(rec.Value) != "before" {
			t.Fatalf("node %d holds %s: node 1's write, 2s ahead, was stored", id, describeRecord(rec))
		}
		if st := h.accepted(id, "phone"); !st.Accepted.IsZero() {
			t.Fatalf("node %d's acceptor took node 1's swap, 2s ahead", id)
		}
	}
	if metric(2, "replica")+metric(3, "replica") == 0 {
		t.Fatal("no refusal counted in quorumkv_wrn_clock_offset_refusals_total{by=replica}")
	}

	// Exactly one swap wins, and the acknowledged ones are seen.
	if _, err := h.swap(2, "phone", catalog.Expect{Absent: true}, "sold to alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.swap(3, "phone", catalog.Expect{Value: []byte("sold to alice")}, "sold to bob", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.swap(1, "phone", catalog.Expect{Value: []byte("sold to alice")}, "sold to alice again", ""); err == nil {
		t.Fatal("a second swap from sold to alice succeeded through node 1, 2s ahead")
	}
	if rec, err := h.get(1, "phone", 3); err != nil || string(rec.Value) != "sold to bob" {
		t.Fatalf("R=3 read: %s, %v; want sold to bob", describeRecord(rec), err)
	}
	if _, err := h.put(2, "plain", "after"); err != nil {
		t.Fatal(err)
	}
	if rec, err := h.get(3, "plain", 3); err != nil || string(rec.Value) != "after" {
		t.Fatalf("R=3 read of plain: %s, %v; want after", describeRecord(rec), err)
	}

	// Node 3, 2s behind: its read sees versions that far ahead of it.
	h.shift[1], h.shift[3] = 0, -2*time.Second
	if _, err := h.get(3, "plain", 2); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		what string
		do   func() error
	}{
		{"write", func() error { _, err := h.put(3, "plain", "behind"); return err }},
		{"swap", func() error {
			_, err := h.swap(3, "phone", catalog.Expect{Value: []byte("sold to bob")}, "sold to carol", "")
			return err
		}},
	} {
		err := w.do()
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, wrn.ErrClockOffset) || !strings.Contains(err.Error(), "behind") {
			t.Fatalf("%s through node 3, 2s behind: %v; want Unavailable, its clock behind", w.what, err)
		}
	}
	if metric(3, "coordinator") == 0 {
		t.Fatal("no refusal counted in quorumkv_wrn_clock_offset_refusals_total{by=coordinator}")
	}
	// Clocks fixed: once node 1's HLC, which ran ahead, is caught up,
	// every node writes again.
	h.shift[3] = 0
	if err := h.c.s.RunFor(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, id := range h.c.ids {
		if _, err := h.put(id, "plain", fmt.Sprintf("from %d", id)); err != nil {
			t.Fatalf("write through node %d with the clocks fixed: %v", id, err)
		}
		if _, err := h.swap(id, "phone", catalog.Expect{Exists: true}, fmt.Sprintf("sold to %d", id), ""); err != nil {
			t.Fatalf("swap through node %d with the clocks fixed: %v", id, err)
		}
	}
}
