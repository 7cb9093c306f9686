package kv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// Faults of one range (kv/store/rangefault.go, issue 10 scenario 9): a range that
// cannot apply or compact stops alone, says why, and the node and its
// other ranges go on, across a restart too. (Snapshots that fail to
// arrive stop nothing: kv/snapshot_test.go.)

// A committed entry that cannot be applied stops its range alone, in the
// round that meets it, and leaves nothing of that round's entries of the
// range: they share the round's batch with the other ranges' effects,
// which are committed and answered. A restart meets the entry again and
// the range starts failed again. Each canary (faultCanaries) is caught.
func TestApplyFaultStopsOneRange(t *testing.T) {
	if v := applyFaultScenario(t, store.FaultCanaries{}); len(v) > 0 {
		t.Fatalf("without a canary:\n%s", strings.Join(v, "\n"))
	}
	for name, k := range map[string]store.FaultCanaries{
		"faultStopsStore":  {FaultStopsStore: true},
		"sharedApplyBatch": {SharedApplyBatch: true},
	} {
		t.Run(name, func(t *testing.T) {
			if v := applyFaultScenario(t, k); len(v) == 0 {
				t.Fatal("the canary was not caught")
			} else {
				t.Logf("caught: %s", strings.Join(v, "; "))
			}
		})
	}
}

// applyFaultScenario runs the scenario on one node's store, driven round by
// round as the simulator does, and returns what went wrong.
//
//  1. Ranges A and B of the default keyspace (this node their only voter)
//     get, in one round: A `put a`, B `put b`, a corrupt entry, `put c`.
//  2. The next round commits and applies them: A's put; B's put, then the
//     corrupt entry, which stops B.
//  3. A's client is answered, a is stored; B's clients learn that the
//     outcome is unknown, b is not stored and B's applied index is what it
//     was; B refuses requests; the store runs on.
//  4. The store restarts on the same database: B applies `put b` again,
//     meets the corrupt entry again, and stops again; A serves.
func applyFaultScenario(t *testing.T, k store.FaultCanaries) (violations []string) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	violate := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }
	open := func() *store.Store {
		cfg := store.StoreConfig{TickInterval: time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, Self: catalog.NodeDescriptor{Name: "n1", Addr: "a", Zone: "z", Weight: 1}}
		s, err := store.OpenDriven(db, cfg, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		s.Canary = k
		return s
	}
	// rounds runs the loop's rounds; it reports false if the store
	// stopped (what run does on an error).
	rounds := func(s *store.Store, n int) bool {
		for range n {
			s.Tick()
			if err := s.HandleReady(); err != nil {
				violate("the store stopped: %v", err)
				return false
			}
		}
		return true
	}
	s := open()
	if !rounds(s, 5) {
		return
	}
	ranges := s.Catalog().Ranges["default"]
	a, b := ranges[0].ID, ranges[1].ID
	for _, id := range []uint64{a, b} {
		if s.Replicas[id] == nil || s.Replicas[id].Role != consensus.RoleLeader {
			t.Fatalf("range %d has no leader here", id)
		}
	}
	appliedB := s.Replicas[b].Applied

	answers := map[string]error{}
	propose := func(id uint64, key string) {
		if _, err := s.StartPropose(id, &command.Command{Op: command.OpPut, Key: []byte(key), Value: []byte("v")}, func(res command.Result) { answers[key] = res.Err }); err != nil {
			t.Fatal(err)
		}
	}
	propose(a, "a")
	propose(b, "b")
	if err := s.Replicas[b].Core.Propose([]byte{0xff, 0xee}); err != nil { // no command version
		t.Fatal(err)
	}
	propose(b, "c")
	// A read waiting on B when it stops (one the leader has not confirmed
	// yet).
	var readErr error
	s.Replicas[b].Reads[1<<62] = func(err error) { readErr = err }
	if !rounds(s, 3) {
		return
	}

	stored := func(id uint64, key string) bool {
		_, err := db.Get(storage.DataKey(id, []byte(key)))
		return err == nil
	}
	if err, ok := answers["a"]; !ok || err != nil {
		violate("range A's client: answered %v, %v; want applied", ok, err)
	}
	if !stored(a, "a") {
		violate("range A's write is not stored")
	}
	for _, key := range []string{"b", "c"} {
		if err, ok := answers[key]; !ok || !errors.Is(err, store.ErrOutcomeUnknown) {
			violate("range B's client of %s: answered %v, %v; want outcome unknown", key, ok, err)
		}
	}
	if stored(b, "b") {
		violate("the effect of range B's entry before the corrupt one was committed without its applied index")
	}
	if !errors.As(readErr, new(*store.RangeFailedError)) || !errors.Is(readErr, store.ErrUnavailable) {
		violate("a read waiting on range B was answered %v, want unavailable with the range's fault", readErr)
	}
	if got, err := consensus.LoadApplied(db, b); err != nil || got != appliedB {
		violate("range B's stored applied index is %d (%v), want %d as before the round", got, err, appliedB)
	}
	f := s.Failed[b]
	if f == nil || f.Fault.Kind != consensus.FaultApply || !errors.Is(f.Fault, codec.ErrCorrupt) {
		violate("range B: %+v, want stopped by an apply fault on a corrupt entry", f)
	}
	if st := s.RangeStatusesOnLoop()[b]; st.State != store.StateFailed || !strings.Contains(st.Error, "apply failed") || st.Applied != appliedB {
		violate("range B's status: %+v", st)
	}
	if _, err := s.StartPropose(b, &command.Command{Op: command.OpPut, Key: []byte("d"), Value: []byte("v")}, func(command.Result) {}); !errors.Is(err, store.ErrUnavailable) {
		violate("a write to range B: %v, want unavailable", err)
	}
	if _, err := s.StartPropose(a, &command.Command{Op: command.OpPut, Key: []byte("e"), Value: []byte("v")}, func(res command.Result) { answers["e"] = res.Err }); err != nil {
		violate("a write to range A after B stopped: %v", err)
	}
	if !rounds(s, 3) {
		return
	}
	if err, ok := answers["e"]; !ok || err != nil || !stored(a, "e") {
		violate("range A's write after B stopped: answered %v, %v", ok, err)
	}

	s = open()
	if !rounds(s, 5) {
		return
	}
	if f := s.Failed[b]; f == nil || f.Fault.Kind != consensus.FaultApply {
		violate("after a restart range B is %+v, want stopped again by its corrupt entry", f)
	}
	if stored(b, "b") {
		violate("after a restart, range B's write before the corrupt entry is stored")
	}
	if s.Replicas[a] == nil || !stored(a, "e") {
		violate("after a restart range A is not served")
	}

	// The range leaves the node: the stopped replica goes, with its data.
	dropped := false
	drop := &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(catalog.CatalogOp{Drop: "default"})}
	if _, err := s.StartPropose(catalog.MetaRangeID, drop, func(res command.Result) { dropped = res.Err == nil }); err != nil {
		t.Fatal(err)
	}
	if !rounds(s, 3) {
		return
	}
	if !dropped || s.Failed[b] != nil || len(s.RangeStatusesOnLoop()) != 1 {
		violate("after the keyspace was dropped (%v), range B is still kept: %+v", dropped, s.Failed[b])
	}
	if got := kvtest.MetricValue(t, s.Config.Metrics.RangesFailed); got != 0 {
		violate("quorumkv_ranges_failed = %v after the failed range left", got)
	}
	for _, key := range []string{"a", "e"} {
		if stored(a, key) {
			violate("range A's data survived the drop")
		}
	}
	if got, err := consensus.LoadApplied(db, b); err != nil || got != 0 {
		violate("range B's applied index survived the drop: %d, %v", got, err)
	}
	return violations
}

// A leader retries a snapshot it could not build after 10 ticks, then
// twice as long each time, up to snapshotRetryMaxTicks; the fault is
// reported while raft keeps asking for the snapshot.
func TestSnapshotFaultBackoff(t *testing.T) {
	var f consensus.SnapshotFault
	err := errors.New("too big")
	now := int64(1000)
	for i, want := range []int64{10, 20, 40, 80, 160, 320, 600, 600, 600, 600, 600, 600, 600} {
		f.Asked = now
		f.Failed(now, err)
		if got := f.RetryAt - now; got != want {
			t.Errorf("failure %d: retry in %d ticks, want %d", i+1, got, want)
		}
		if r := f.Report(now); !strings.Contains(r, "too big") || !strings.Contains(r, fmt.Sprintf("%d attempts", i+1)) {
			t.Errorf("failure %d: reported %q", i+1, r)
		}
		now = f.RetryAt
	}
	if r := f.Report(f.Asked + consensus.SnapshotFaultStaleTicks + 1); r != "" {
		t.Errorf("reported %q after raft stopped asking for the snapshot", r)
	}
}

// otherReplica returns a replica of rd other than node not.
func (c *simCluster) otherReplica(rd *catalog.RangeDescriptor, not uint64) uint64 {
	for _, rep := range rd.Replicas {
		if rep.NodeID != not {
			return rep.NodeID
		}
	}
	c.t.Fatalf("range %d has no replica but node %d", rd.ID, not)
	return 0
}

// isolate cuts node id off from the other nodes until the returned heal.
func (c *simCluster) isolate(id uint64) (heal func()) {
	var nodes []sim.NodeID
	for _, n := range c.ids {
		nodes = append(nodes, sim.NodeID(n))
	}
	return c.s.Net().Partition(sim.Isolate(nodes, sim.NodeID(id)))
}

var errNotAnswered = errors.New("not answered yet")

// propose proposes cmd on node n and returns where its answer will be.
func (c *simCluster) propose(n *simNode, rangeID uint64, cmd *command.Command) *command.Result {
	c.t.Helper()
	res := &command.Result{Err: errNotAnswered}
	if _, err := n.store.StartPropose(rangeID, cmd, func(r command.Result) { *res = r }); err != nil {
		c.t.Fatalf("proposing to range %d on node %d: %v", rangeID, n.id, err)
	}
	n.round()
	return res
}

// writeKeys proposes count puts of distinct keys k00, k01... with values
// of size bytes on node n, and returns their answers as they come.
func (c *simCluster) writeKeys(n *simNode, rangeID uint64, count, size int) *[]error {
	c.t.Helper()
	answers := new([]error)
	for i := range count {
		cmd := &command.Command{Op: command.OpPut, Key: fmt.Appendf(nil, "k%02d", i), Value: make([]byte, size)}
		if _, err := n.store.StartPropose(rangeID, cmd, func(r command.Result) { *answers = append(*answers, r.Err) }); err != nil {
			c.t.Fatalf("proposing to range %d on node %d: %v", rangeID, n.id, err)
		}
	}
	n.round()
	return answers
}

// requireWrite requires a put to range id, on whichever node leads it, to
// be applied.
func (c *simCluster) requireWrite(id uint64, key string) {
	c.t.Helper()
	var res *command.Result
	c.require(fmt.Sprintf("a write to range %d", id), 5*time.Second, func() bool {
		if res != nil && res.Err == nil {
			return true
		}
		if res != nil && !errors.Is(res.Err, store.ErrOutcomeUnknown) && !errors.Is(res.Err, errNotAnswered) {
			c.t.Fatalf("a write to range %d: %v", id, res.Err)
		}
		leader := c.node(c.rangeLeader(id))
		if leader == nil || (res != nil && errors.Is(res.Err, errNotAnswered)) {
			return false
		}
		r := &command.Result{Err: errNotAnswered}
		if _, err := leader.store.StartPropose(id, &command.Command{Op: command.OpPut, Key: []byte(key), Value: []byte("v")}, func(a command.Result) { *r = a }); err == nil {
			res = r
			leader.round()
		}
		return false
	})
}

// rangeConverged reports whether every replica of rd has applied the same
// index, all it knows committed.
func (c *simCluster) rangeConverged(rd *catalog.RangeDescriptor) bool {
	var applied uint64
	for i, rep := range rd.Replicas {
		n := c.node(rep.NodeID)
		if n == nil || n.store.Replicas[rd.ID] == nil {
			return false
		}
		r := n.store.Replicas[rd.ID]
		if r.Applied < r.Core.Status().Commit || (i > 0 && r.Applied != applied) {
			return false
		}
		applied = r.Applied
	}
	return true
}

// A round's apply batch takes each replica's effects whole: when the next
// replica's would take it over MaxBatchBytes, it is committed first and a
// new one started (the whole round in one batch stopped the node).
func TestRoundBatchCommitsWhenFull(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet(), MaxBatchBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &store.Store{DB: db}
	ab := &store.RoundBatch{S: s, B: db.NewBatch()}
	defer func() { ab.B.Close() }()
	for _, key := range []string{"a", "b", "c"} {
		rb := db.NewBatch()
		if err := rb.Set([]byte(key), make([]byte, 3<<10)); err != nil {
			t.Fatal(err)
		}
		if err := ab.Append(rb); err != nil {
			t.Fatalf("appending %s: %v", key, err)
		}
		rb.Close()
	}
	if _, err := db.Get([]byte("b")); err != nil {
		t.Fatalf("the first full batch was not committed: %v", err)
	}
	if _, err := db.Get([]byte("c")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the last replica's effects were committed before the round's end: %v", err)
	}
	if err := ab.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get([]byte("c")); err != nil {
		t.Fatal(err)
	}
}
