package kv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// A crash at any step of a split's apply leaves the range as it was
// before the split or fully split, never a mix, and the restarted node
// converges on the split: one node, whose range holds about six times its
// MaxBatchBytes, splits once; its disk is cloned as a crash would leave it
// (vfs CrashClone: what was not synced is lost) at every step
// (StoreConfig.SplitHook), and each clone is checked, then opened as a
// restarted node would open it and driven until it applied its log.
// The same for a paxos range (subtest paxos): the new range's acceptor
// state is founded, at the split's slot, with the split, or not at all.
func TestSplitCrashPoints(t *testing.T) {
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		t.Run(string(mode), func(t *testing.T) {
			steps := splitCrashPoints(t, mode, store.Canary{})
			for _, want := range []string{"committed", "staged", "ingested"} {
				if steps[want] != 1 {
					t.Errorf("crash points seen: %v; want one of each of committed, staged, ingested", steps)
				}
			}
		})
	}
}

// The SplitStateFirst canary (a split's state ingested before its data)
// must be caught by the crash points, of a raft range and of a paxos one.
func TestSplitCrashCanary(t *testing.T) {
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		t.Run(string(mode), func(t *testing.T) {
			huntCanary(t, 1, func(tb testing.TB, _ uint64) { splitCrashPoints(tb, mode, store.Canary{SplitStateFirst: true}) })
		})
	}
}

// splitCrashMaxBatch is the MaxBatchBytes of the crash points' node.
const splitCrashMaxBatch = 16 << 10

func splitCrashPoints(t testing.TB, mode catalog.Mode, canary store.Canary) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// No merge driver (Node.StartSplits) runs here, so the two small
	// halves stay apart: the store merges nothing on its own.
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true,
		Canary: canary, Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	c := startCrashNode(t, cfg, func(string) bool { return true })
	values := putCrashKeys(t, ctx, c.n, mode)
	old := c.s.Catalog().Ranges["rx"][0].ID
	born, index, right := splitByHand(t, ctx, c.n, c.s, old)
	for k, v := range values {
		kv, err := c.n.Get(ctx, "rx", []byte(k))
		if err != nil || !bytes.Equal(kv.Value, v) {
			t.Fatalf("after the split, %s reads %.20q (%v)", k, kv.Value, err)
		}
	}
	moved := 0
	for k := range values {
		if right.Contains(catalog.HashKey([]byte(k))) {
			moved += len(values[k])
		}
	}
	if moved < 3*splitCrashMaxBatch {
		t.Fatalf("the split moved %d bytes, want several times MaxBatchBytes (%d)", moved, splitCrashMaxBatch)
	}
	return c.restartEach(t, cfg, 50, false /* merges */, crashCheck{what: "split", doneAt: "ingested",
		state: func(db *storage.DB) (bool, string) { return splitDone(t, db, old, born, index, right, values) },
		driven: func(db *storage.DB) bool {
			applied, _ := consensus.LoadApplied(db, old)
			return applied >= index
		},
	})
}

// crashNode is a node of one store whose disk is cloned, as a crash would
// leave it (vfs CrashClone: what was not synced is lost), at every step
// of a split or merge (StoreConfig.SplitHook) that keep takes.
type crashNode struct {
	db *storage.DB
	s  *store.Store
	n  *Node

	mu     sync.Mutex
	clones []crashClone
}

// crashClone is the disk as a crash at step would leave it.
type crashClone struct {
	step string
	fs   *vfs.MemFS
}

// startCrashNode starts a crash node with store configuration cfg (its
// SplitHook is the node's); the test's end closes it.
func startCrashNode(t testing.TB, cfg store.StoreConfig, keep func(step string) bool) *crashNode {
	c := &crashNode{}
	cfg.SplitHook = func(step string) {
		if !keep(step) {
			return
		}
		fs, err := c.db.CrashClone(vfs.CrashCloneCfg{})
		if err != nil {
			panic(err)
		}
		c.mu.Lock()
		c.clones = append(c.clones, crashClone{step, fs})
		c.mu.Unlock()
	}
	c.db, c.s, c.n = startOneNode(t, storage.Options{Logger: kvtest.Quiet(), MaxBatchBytes: splitCrashMaxBatch}, cfg)
	return c
}

// startOneNode starts a node of one store, founding its cluster, on an
// in-memory database opened with opts; the test's end closes them.
func startOneNode(t testing.TB, opts storage.Options, cfg store.StoreConfig) (*storage.DB, *store.Store, *Node) {
	db, err := storage.OpenMem(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := store.OpenStore(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n, err := NewNode(s, NodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return db, s, n
}

// taken returns the number of clones taken so far.
func (c *crashNode) taken() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clones)
}

// crashCheck is what restartEach checks of each clone: state says
// whether the database holds the operation (a split or a merge) done or
// not yet, and what is neither ("" if nothing); doneAt is the crash step
// from which a clone holds it done; driven says when a restarted node
// has applied enough of its log to be checked again.
type crashCheck struct {
	what   string
	doneAt string
	state  func(db *storage.DB) (done bool, why string)
	driven func(db *storage.DB) bool
}

// restartEach opens every clone taken and checks it (cc), restarts it as
// a node with store configuration cfg (merges let on if merges), drives
// it at most rounds rounds until cc.driven, requires the operation done
// then, and no staged file left. It returns how many clones each step
// left.
func (c *crashNode) restartEach(t testing.TB, cfg store.StoreConfig, rounds int, merges bool, cc crashCheck) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	steps := map[string]int{}
	for _, cl := range c.clones {
		steps[cl.step]++
		func() {
			db, err := storage.Open("db", storage.Options{FS: cl.fs, Logger: kvtest.Quiet(), MaxBatchBytes: splitCrashMaxBatch})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			done, why := cc.state(db)
			switch {
			case why != "":
				t.Errorf("crash at %s: neither before the %s nor after it: %s", cl.step, cc.what, why)
				return
			case done != (cl.step == cc.doneAt):
				t.Errorf("crash at %s: %s done %v, want %v", cl.step, cc.what, done, cl.step == cc.doneAt)
			}
			rs, err := store.OpenDriven(db, cfg, nil, false)
			if err != nil {
				t.Fatalf("crash at %s: the node does not restart: %v", cl.step, err)
			}
			if merges {
				rs.EnableMerges()
			}
			for range rounds {
				if cc.driven(db) {
					break
				}
				rs.Tick()
				if err := rs.HandleReady(); err != nil {
					t.Fatalf("crash at %s: %v", cl.step, err)
				}
			}
			if done, why := cc.state(db); !done {
				t.Errorf("crash at %s: the restarted node did not finish the %s: %s", cl.step, cc.what, why)
			}
			if files, err := db.StagedFiles(); err != nil || len(files) != 0 {
				t.Errorf("crash at %s: staged files left after the restart: %v, %v", cl.step, files, err)
			}
		}()
	}
	return steps
}

// putCrashKeys creates keyspace rx of mode, of one range, on n and writes 200 keys
// of about 500 bytes to it, which it returns.
func putCrashKeys(t testing.TB, ctx context.Context, n *Node, mode catalog.Mode) map[string][]byte {
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "rx", Mode: mode, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatal(err)
	}
	values := map[string][]byte{}
	for i := range 200 {
		k, v := fmt.Sprintf("k%03d", i), fmt.Appendf(nil, "v%d-%0500d", i, 0)
		values[k] = v
		if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "rx", []byte(k), v) }); err != nil {
			t.Fatal(err)
		}
	}
	return values
}

// splitByHand splits range old of s's node n once, as the split driver
// does (splitStep), and returns the new range, the split's index and the
// new range's span in the catalog.
func splitByHand(t testing.TB, ctx context.Context, n *Node, s *store.Store, old uint64) (born, index uint64, right catalog.Span) {
	born, err := n.localMetaSplit(ctx, &peerv1.SplitRequest{RangeId: old, Reserve: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ProposeSplit(ctx, old, born)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := s.SplitWork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if err := n.splitStep(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range s.Catalog().Ranges["rx"] {
		if r.ID == born {
			right = r.Span
		}
	}
	if right == (catalog.Span{}) {
		t.Fatalf("the catalog does not have range %d: %v", born, s.Catalog().Ranges["rx"])
	}
	return born, res.Version, right
}

// rangeData returns range id's keys and values in db.
func rangeData(t testing.TB, db *storage.DB, id uint64) map[string][]byte {
	out := map[string][]byte{}
	if err := command.EachData(db, id, nil, nil, func(k, raw []byte) (bool, error) {
		v, err := command.DecodeValue(raw)
		out[string(k)] = bytes.Clone(v.Data)
		return true, err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// splitDone reports whether db holds range old split at index (true) or
// not yet (false); why says what is neither.
func splitDone(t testing.TB, db *storage.DB, old, born, index uint64, right catalog.Span, values map[string][]byte) (bool, string) {
	applied, err := consensus.LoadApplied(db, old)
	if err != nil {
		t.Fatal(err)
	}
	left, moved := rangeData(t, db, old), rangeData(t, db, born)
	has, err := consensus.HasRangeState(db, born)
	if err != nil {
		t.Fatal(err)
	}
	if applied < index {
		if len(moved) != 0 || has {
			return false, fmt.Sprintf("range %d at %d, before the split, but range %d has state (%v) or %d keys", old, applied, born, has, len(moved))
		}
		if why := sameData(left, values, func(string) bool { return true }); why != "" {
			return false, fmt.Sprintf("range %d at %d, before the split: %s", old, applied, why)
		}
		return false, ""
	}
	inRight := func(k string) bool { return right.Contains(catalog.HashKey([]byte(k))) }
	if !has {
		return false, fmt.Sprintf("range %d at %d, split, but range %d has no consensus state", old, applied, born)
	}
	if pl, _, err := consensus.LoadPaxosLog(db, born); err == nil && pl.HardState.Commit > 0 {
		// A paxos range: founded at the split's slot, as a snapshot there.
		if pl.Snap.Slot != index || pl.HardState.Commit != index || len(pl.Snap.Configs) != 1 {
			return false, fmt.Sprintf("range %d, born of the split at %d, is founded at slot %d, commit %d, with configurations %+v",
				born, index, pl.Snap.Slot, pl.HardState.Commit, pl.Snap.Configs)
		}
	}
	if why := sameData(left, values, func(k string) bool { return !inRight(k) }); why != "" {
		return false, fmt.Sprintf("range %d, split: %s", old, why)
	}
	if why := sameData(moved, values, inRight); why != "" {
		return false, fmt.Sprintf("range %d, born of the split: %s", born, why)
	}
	return true, ""
}

// sameData says how got differs from the entries of want that keep
// keeps ("" if it does not).
func sameData(got, want map[string][]byte, keep func(string) bool) string {
	n := 0
	for k, v := range want {
		if !keep(k) {
			continue
		}
		n++
		if !bytes.Equal(got[k], v) {
			return fmt.Sprintf("key %s holds %.20q", k, got[k])
		}
	}
	if len(got) != n {
		return fmt.Sprintf("%d keys, want %d", len(got), n)
	}
	return ""
}
