package kv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// A crash at any step of a merge leaves the two ranges as they were before
// it or fully merged, never a mix, and the restarted node finishes the
// merge: one node splits its range once (as TestSplitCrashPoints does),
// then, with merges let on (Store.EnableMerges, as Node.StartSplits does),
// merges the halves back; its disk is cloned as a crash would leave it
// (vfs CrashClone) at every step of the subsume and the merge
// (StoreConfig.SplitHook), and each clone is checked, then opened as a
// restarted node opens it and driven until the merge is done.
//
// It also checks that a store whose merges were not let on merges nothing
// on its own: nothing would record the merge in the catalog.
func TestMergeCrashPoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type clone struct {
		step string
		fs   *vfs.MemFS
	}
	var mu sync.Mutex
	var clones []clone
	var db *storage.DB
	// The halves hold about 100 KiB: far under the merge limit.
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true,
		MergeBelowBytes: 1 << 30, Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	live := cfg
	live.SplitHook = func(step string) {
		switch step {
		case "subsumed", "merge-committed", "merge-staged", "merge-ingested":
		default:
			return
		}
		fs, err := db.CrashClone(vfs.CrashCloneCfg{})
		if err != nil {
			panic(err)
		}
		mu.Lock()
		clones = append(clones, clone{step, fs})
		mu.Unlock()
	}
	opts := storage.Options{Logger: kvtest.Quiet(), MaxBatchBytes: splitCrashMaxBatch}
	var err error
	if db, err = storage.OpenMem(opts); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := store.OpenStore(db, live, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := NewNode(s, NodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	values := putCrashKeys(t, ctx, n)
	left := s.Catalog().Ranges["rx"][0].ID
	right, _, rightSpan := splitByHand(t, ctx, n, s, left)

	// Not let on: many merge passes' worth of ticks, and no subsume.
	time.Sleep(40 * cfg.TickInterval)
	mu.Lock()
	early := len(clones)
	mu.Unlock()
	if early != 0 || len(s.Catalog().Ranges["rx"]) != 2 {
		t.Fatalf("the store merged on its own (%d merge steps, %d ranges): merges were not let on", early, len(s.Catalog().Ranges["rx"]))
	}

	s.EnableMerges()
	for len(s.Catalog().Ranges["rx"]) != 1 {
		if ctx.Err() != nil {
			t.Fatalf("the halves did not merge back: %v", s.Catalog().Ranges["rx"])
		}
		n.mergePass(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	for k, v := range values {
		if kv, err := n.Get(ctx, "rx", []byte(k)); err != nil || string(kv.Value) != string(v) {
			t.Fatalf("after the merge, %s reads %.20q (%v)", k, kv.Value, err)
		}
	}
	// A request still addressed to the merged-away range (a node whose
	// catalog is behind) is told its key moved, which routing retries,
	// not that the range is unknown.
	if _, err := s.Propose(ctx, right, &command.Command{Op: command.OpPut, Key: []byte("k000"), Value: []byte("x")}); !errors.Is(err, store.ErrKeyMoved) {
		t.Errorf("a write to the merged-away range %d: %v, want ErrKeyMoved", right, err)
	}
	if err := s.ReadBarrier(ctx, right); !errors.Is(err, store.ErrKeyMoved) {
		t.Errorf("a read of the merged-away range %d: %v, want ErrKeyMoved", right, err)
	}

	mu.Lock()
	defer mu.Unlock()
	steps := map[string]int{}
	for _, c := range clones {
		steps[c.step]++
	}
	for _, want := range []string{"subsumed", "merge-committed", "merge-staged", "merge-ingested"} {
		if steps[want] != 1 {
			t.Errorf("crash points seen: %v; want one of each of subsumed, merge-committed, merge-staged, merge-ingested", steps)
		}
	}
	for _, c := range clones {
		func() {
			db, err := storage.Open("db", storage.Options{FS: c.fs, Logger: kvtest.Quiet(), MaxBatchBytes: splitCrashMaxBatch})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			merged, why := mergeDone(t, db, left, right, rightSpan, values)
			if why != "" {
				t.Errorf("crash at %s: the ranges are neither as before the merge nor merged: %s", c.step, why)
				return
			}
			if want := c.step == "merge-ingested"; merged != want {
				t.Errorf("crash at %s: merged %v, want %v", c.step, merged, want)
			}
			rs, err := store.OpenDriven(db, cfg, nil, false)
			if err != nil {
				t.Fatalf("crash at %s: the node does not restart: %v", c.step, err)
			}
			rs.EnableMerges()
			for range 500 {
				if merged, _ := mergeDone(t, db, left, right, rightSpan, values); merged {
					break
				}
				rs.Tick()
				if err := rs.HandleReady(); err != nil {
					t.Fatalf("crash at %s: %v", c.step, err)
				}
			}
			if merged, why := mergeDone(t, db, left, right, rightSpan, values); !merged {
				t.Errorf("crash at %s: the restarted node did not merge the ranges: %s", c.step, why)
			}
			if files, err := db.StagedFiles(); err != nil || len(files) != 0 {
				t.Errorf("crash at %s: staged files left after the restart: %v, %v", c.step, files, err)
			}
		}()
	}
}

// mergeDone reports whether db holds range right merged into range left
// (true) or both ranges as the split left them (false); why says what is
// neither.
func mergeDone(t testing.TB, db *storage.DB, left, right uint64, rightSpan catalog.Span, values map[string][]byte) (bool, string) {
	l, r := rangeData(t, db, left), rangeData(t, db, right)
	has, err := consensus.HasRangeState(db, right)
	if err != nil {
		t.Fatal(err)
	}
	inRight := func(k string) bool { return rightSpan.Contains(catalog.HashKey([]byte(k))) }
	if len(r) == 0 && !has {
		if why := sameData(l, values, func(string) bool { return true }); why != "" {
			return false, fmt.Sprintf("range %d merged: %s", left, why)
		}
		return true, ""
	}
	if !has {
		return false, fmt.Sprintf("range %d holds %d keys and no Raft state", right, len(r))
	}
	if why := sameData(l, values, func(k string) bool { return !inRight(k) }); why != "" {
		return false, fmt.Sprintf("range %d, not merged: %s", left, why)
	}
	if why := sameData(r, values, inRight); why != "" {
		return false, fmt.Sprintf("range %d, not merged: %s", right, why)
	}
	return false, ""
}
