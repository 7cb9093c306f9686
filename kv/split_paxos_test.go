package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// A paxos range split keeps the versions of the values it moved valid
// for compare-and-swap, and refuses the moved keys until the catalog
// follows (TestPaxosSplitVersions); the SplitFoundsLow canary, a new range
// founded at slot 1 instead of the split's slot, makes a stale version
// win a compare-and-swap and must be caught (TestPaxosSplitFoundingCanary).
func TestPaxosSplitVersions(t *testing.T) {
	if why := paxosSplitVersions(t, store.Canary{}); why != "" {
		t.Fatal(why)
	}
}

func TestPaxosSplitFoundingCanary(t *testing.T) {
	if why := paxosSplitVersions(t, store.Canary{SplitFoundsLow: true}); why == "" {
		t.Fatal("the planted bug (a paxos range born of a split founded at slot 1) went unnoticed")
	} else {
		t.Logf("caught: %s", why)
	}
}

// paxosSplitVersions runs one node with a paxos keyspace of one range:
//
//  1. key m is written six times, and every version is read back; key m2
//     is written once and read back;
//  2. the range splits in its log (as the split driver does, without the
//     catalog step), at a slot after every one of those writes;
//  3. a write of m, which the split moved, straight to the old range is
//     refused with ErrKeyMoved; one through the node (routed by the
//     catalog, which does not have the split yet) waits, retrying;
//  4. the catalog records the split: the routed write completes, in the
//     new range, and a compare-and-swap of another moved key, m2,
//     expecting the version read before the split, succeeds;
//  5. m is written again until the new range's slot passes every version
//     read in 1; a compare-and-swap expecting a version read in 1 whose
//     slot the new range has reused for m must fail (the value changed);
//  6. a compare-and-swap expecting the newest version succeeds.
//
// It returns what went wrong ("" if nothing); a failure of the set-up
// fails t.
func paxosSplitVersions(t *testing.T, canary store.Canary) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true, MergeBelowBytes: -1,
		Canary: canary, Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	_, s, n := startOneNode(t, storage.Options{Logger: kvtest.Quiet()}, cfg)
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "px", Mode: catalog.ModePaxos, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatal(err)
	}
	old := s.Catalog().Ranges["px"][0]
	_, right, ok := old.Span.Split()
	if !ok {
		t.Fatalf("range %d's span cannot be halved", old.ID)
	}
	// m and m2 are keys of the half that moves.
	var moved [][]byte
	for i := 0; len(moved) < 2; i++ {
		if k := fmt.Appendf(nil, "m%d", i); right.Contains(catalog.HashKey(k)) {
			moved = append(moved, k)
		}
	}
	m, m2 := moved[0], moved[1]
	put := func(v string) string {
		t.Helper()
		ver, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "px", m, []byte(v)) })
		if err != nil {
			t.Fatalf("put %q: %v", v, err)
		}
		return ver
	}
	// 1.
	var before []string
	for i := range 6 {
		put(fmt.Sprintf("before-%d", i))
		kv, err := n.Get(ctx, "px", m)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, kv.Version)
	}
	if _, err := n.Put(ctx, "px", m2, []byte("m2")); err != nil {
		t.Fatal(err)
	}
	kv2, err := n.Get(ctx, "px", m2)
	if err != nil {
		t.Fatal(err)
	}
	// 2.
	born, err := n.localMetaSplit(ctx, &peerv1.SplitRequest{RangeId: old.ID, Reserve: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ProposeSplit(ctx, old.ID, born)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("the split of paxos range %d: %v", old.ID, err)
	}
	// 3.
	res, err = s.Propose(ctx, old.ID, &command.Command{Op: command.OpPut, Key: m, Value: []byte("to the old range")})
	if err == nil {
		err = res.Err
	}
	if !errors.Is(err, store.ErrKeyMoved) {
		return fmt.Sprintf("a write of a moved key to the range that split: %v, want ErrKeyMoved", err)
	}
	routed := make(chan error, 1)
	go func() {
		_, err := n.Put(ctx, "px", m, []byte("routed"))
		routed <- err
	}()
	select {
	case err := <-routed:
		return fmt.Sprintf("a write of a moved key ended (%v) before the catalog had the split", err)
	case <-time.After(50 * time.Millisecond):
	}
	// 4.
	tasks, err := s.SplitWork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if err := n.splitStep(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-routed; err != nil {
		return fmt.Sprintf("the routed write of a moved key: %v", err)
	}
	if r, err := n.Route("px", m); err != nil || r.ID != born {
		return fmt.Sprintf("the catalog routes the moved key to %+v (%v), want range %d", r, err, born)
	}
	if _, err := n.CompareAndSwap(ctx, "px", m2, catalog.Expect{Version: kv2.Version}, []byte("m2 swapped")); err != nil {
		return fmt.Sprintf("a compare-and-swap of a moved key expecting its version %s, read before the split: %v", kv2.Version, err)
	}
	// 5.
	var last string
	for i := 0; ; i++ {
		last = put(fmt.Sprintf("after-%d", i))
		var rid, slot uint64
		if _, err := fmt.Sscanf(last, "%d.%d", &rid, &slot); err != nil || rid != born {
			return fmt.Sprintf("a write of the moved key has version %q (%v), not one of range %d", last, err, born)
		}
		for _, v := range before {
			var orid, oslot uint64
			if _, err := fmt.Sscanf(v, "%d.%d", &orid, &oslot); err != nil {
				t.Fatal(err)
			}
			if oslot != slot {
				continue
			}
			if _, err := n.CompareAndSwap(ctx, "px", m, catalog.Expect{Version: v}, []byte("stale")); !errors.Is(err, command.ErrConditionFailed) {
				return fmt.Sprintf("a compare-and-swap expecting version %s, read before the split, of a key written since (version %s): %v, want ErrConditionFailed", v, last, err)
			}
		}
		var newest uint64
		fmt.Sscanf(before[len(before)-1], "%d.%d", new(uint64), &newest)
		if slot > newest || i > 100 {
			break
		}
	}
	// 6.
	if _, err := n.CompareAndSwap(ctx, "px", m, catalog.Expect{Version: last}, []byte("swapped")); err != nil {
		return fmt.Sprintf("a compare-and-swap expecting the newest version %s: %v", last, err)
	}
	return ""
}

// Paxos ranges split but do not merge: on one node whose merge limit is
// far above its ranges' size, a keyspace of one range splits once; for a
// raft keyspace the store then subsumes the new range for a merge into
// the old one at once (the new range stops holding its keys); for a
// paxos keyspace it does not within a second: the new range keeps its
// keys, and a Subsume or Merge proposed by hand is refused
// (catalog.ErrMerge) and changes nothing.
func TestPaxosRangesDoNotMerge(t *testing.T) {
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		t.Run(string(mode), func(t *testing.T) { splitThenMerge(t, mode) })
	}
}

func splitThenMerge(t *testing.T, mode catalog.Mode) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true, MergeBelowBytes: 1 << 30,
		Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	_, s, n := startOneNode(t, storage.Options{Logger: kvtest.Quiet()}, cfg)
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "mx", Mode: mode, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatal(err)
	}
	old := s.Catalog().Ranges["mx"][0]
	_, right, _ := old.Span.Split()
	var key []byte
	for i := 0; key == nil; i++ {
		if k := fmt.Appendf(nil, "k%d", i); right.Contains(catalog.HashKey(k)) {
			key = k
		}
	}
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "mx", key, []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	born, err := n.localMetaSplit(ctx, &peerv1.SplitRequest{RangeId: old.ID, Reserve: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.ProposeSplit(ctx, old.ID, born); err != nil || res.Err != nil {
		t.Fatalf("the split of %s range %d: %v, %v", mode, old.ID, err, res.Err)
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
	// The store's merge driver runs on its ticks once merges are let on
	// (Node.StartSplits does it in kvd): a raft range is subsumed within a
	// tenth of a second; the paxos one is given a second.
	s.EnableMerges()
	subsumed := func() bool {
		holds, err := s.Holds(born, key)
		return err == nil && !holds
	}
	wait := time.Second
	if mode == catalog.ModeRaft {
		wait = 3 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && !subsumed() {
		time.Sleep(20 * time.Millisecond)
	}
	if mode == catalog.ModeRaft {
		if !subsumed() {
			t.Fatalf("raft range %d was not subsumed for a merge within %v", born, wait)
		}
		return
	}
	if subsumed() {
		t.Fatalf("paxos range %d was subsumed for a merge", born)
	}
	propose := func(rangeID uint64, op command.Op, v any) error {
		res, err := s.Propose(ctx, rangeID, &command.Command{Op: op, Value: catalog.MustJSON(v)})
		if err == nil {
			err = res.Err
		}
		return err
	}
	if err := propose(born, command.OpSubsume, command.Subsume{Into: old.ID, Lo: right.Lo, Hi: right.Hi}); !errors.Is(err, catalog.ErrMerge) {
		t.Errorf("a Subsume of paxos range %d: %v, want ErrMerge", born, err)
	}
	if err := propose(old.ID, command.OpMerge, command.Merge{Right: born, Lo: right.Lo, Hi: right.Hi, Voters: []uint64{s.NodeID()}}); !errors.Is(err, catalog.ErrMerge) {
		t.Errorf("a Merge into paxos range %d: %v, want ErrMerge", old.ID, err)
	}
	if kv, err := n.Get(ctx, "mx", key); err != nil || string(kv.Value) != "v" || subsumed() {
		t.Errorf("after the refused merge, %s reads %q (%v) from range %d (subsumed %v)", key, kv.Value, err, born, subsumed())
	}
}
