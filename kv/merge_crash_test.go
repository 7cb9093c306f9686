package kv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

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
	// The halves hold about 100 KiB: far under the merge limit.
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true,
		MergeBelowBytes: 1 << 30, Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	mergeSteps := []string{"subsumed", "merge-committed", "merge-staged", "merge-ingested"}
	c := startCrashNode(t, cfg, func(step string) bool { return slices.Contains(mergeSteps, step) })
	s, n := c.s, c.n
	values := putCrashKeys(t, ctx, n, catalog.ModeRaft)
	left := s.Catalog().Ranges["rx"][0].ID
	right, _, rightSpan := splitByHand(t, ctx, n, s, left)

	// Not let on: many merge passes' worth of ticks, and no subsume.
	time.Sleep(40 * cfg.TickInterval)
	if early := c.taken(); early != 0 || len(s.Catalog().Ranges["rx"]) != 2 {
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

	merged := func(db *storage.DB) (bool, string) { return mergeDone(t, db, left, right, rightSpan, values) }
	steps := c.restartEach(t, cfg, 500, true /* merges */, crashCheck{what: "merge", doneAt: "merge-ingested", state: merged,
		driven: func(db *storage.DB) bool { done, _ := merged(db); return done }})
	for _, want := range mergeSteps {
		if steps[want] != 1 {
			t.Errorf("crash points seen: %v; want one of each of %v", steps, mergeSteps)
		}
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
