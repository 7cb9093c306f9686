package kv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// splitHold is a node whose splits' goroutines wait, before they write
// their file, until the test lets them go (StoreConfig.SplitHook
// "writing"): what the node does meanwhile is what it does while a big
// split's file is written, without a big split or a timing.
type splitHold struct {
	t       testing.TB
	db      *storage.DB
	s       *store.Store
	n       *Node
	writing chan struct{} // a split's goroutine reached "writing"
	release chan struct{} // closed (let): the goroutines write their files
	once    sync.Once
	ranges  []*catalog.RangeDescriptor
	values  map[string][]byte
	born    uint64 // the range the split founds
}

// newSplitHold starts the node with keyspace "rx" of two ranges, and fills
// them with keys of 500 bytes until the first holds several times
// MaxBatchBytes in its right half.
func newSplitHold(t testing.TB, ctx context.Context) *splitHold {
	h := &splitHold{t: t, writing: make(chan struct{}, 1), release: make(chan struct{}), values: map[string][]byte{}}
	// No merge driver (Node.StartSplits) runs here, so the small halves
	// stay apart: the store merges nothing on its own.
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: 1, NoLeaderBalancing: true,
		Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}
	cfg.SplitHook = func(step string) {
		if step != "writing" {
			return
		}
		select {
		case h.writing <- struct{}{}:
		default:
		}
		<-h.release
	}
	var err error
	if h.db, err = storage.OpenMem(storage.Options{Logger: kvtest.Quiet(), MaxBatchBytes: splitCrashMaxBatch}); err != nil {
		t.Fatal(err)
	}
	if h.s, err = store.OpenStore(h.db, cfg, nil, true); err != nil {
		t.Fatal(err)
	}
	if h.n, err = NewNode(h.s, NodeConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "rx", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 2}); err != nil {
		t.Fatal(err)
	}
	h.ranges = h.s.Catalog().Ranges["rx"]
	first := h.ranges[0]
	_, right, _ := first.Span.Split()
	moved := 0
	for i := 0; moved < 4*splitCrashMaxBatch; i++ {
		k, v := fmt.Sprintf("k%04d", i), fmt.Appendf(nil, "v%d-%0500d", i, 0)
		h.put(ctx, k, v)
		if right.Contains(catalog.HashKey([]byte(k))) {
			moved += len(v)
		}
	}
	return h
}

func (h *splitHold) put(ctx context.Context, k string, v []byte) {
	h.t.Helper()
	if _, err := kvtest.Retry(h.t, func() (string, error) { return h.n.Put(ctx, "rx", []byte(k), v) }); err != nil {
		h.t.Fatal(err)
	}
	h.values[k] = v
}

// key returns a key of range r that the test has not written yet.
func (h *splitHold) key(r *catalog.RangeDescriptor, prefix string) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%04d", prefix, i)
		if _, ok := h.values[k]; !ok && r.Span.Contains(catalog.HashKey([]byte(k))) {
			return k
		}
	}
}

// split reserves the new range in meta and proposes the split of the
// first range, on a goroutine: the result arrives once it is applied.
func (h *splitHold) split(ctx context.Context) <-chan error {
	old := h.ranges[0].ID
	born, err := h.n.localMetaSplit(ctx, &peerv1.SplitRequest{RangeId: old, Reserve: true})
	if err != nil {
		h.t.Fatal(err)
	}
	h.born = born
	out := make(chan error, 1)
	go func() {
		res, err := h.s.ProposeSplit(ctx, old, born)
		if err == nil {
			err = res.Err
		}
		out <- err
	}()
	return out
}

// let lets the splits' goroutines write their files.
func (h *splitHold) let() { h.once.Do(func() { close(h.release) }) }

func (h *splitHold) close() {
	h.let() // a failed test must not leave a goroutine held
	h.n.Close()
	if err := h.s.Close(); err != nil {
		h.t.Error(err)
	}
	if err := h.db.Close(); err != nil {
		h.t.Error(err)
	}
}

// While a split's file is written, the node's other range commits and
// answers writes and meta serves, and the splitting range only waits: a
// write to it is answered once the split is ingested, and then every key
// reads as written, from whichever range holds it now.
func TestSplitDoesNotStallTheNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newSplitHold(t, ctx)
	defer h.close()
	splitting, other := h.ranges[0], h.ranges[1]

	split := h.split(ctx)
	select {
	case <-h.writing:
	case err := <-split:
		t.Fatalf("the split was answered (%v) before its file was written", err)
	case <-ctx.Done():
		t.Fatal("the split's goroutine never started")
	}
	inFlight := 0
	if err := h.s.Do(ctx, func() { inFlight = h.s.SplitsInFlight() }); err != nil {
		t.Fatal(err)
	}
	if inFlight != 1 {
		t.Fatalf("%d splits in flight while one is held, want 1", inFlight)
	}

	// A write to the splitting range, of a key its left half keeps,
	// waits for the split.
	left, _, _ := splitting.Span.Split()
	waiting := h.key(&catalog.RangeDescriptor{Span: left}, "w")
	waitingDone := make(chan error, 1)
	go func() {
		_, err := h.n.Put(ctx, "rx", []byte(waiting), []byte("after the split"))
		waitingDone <- err
	}()
	// The other range commits, many times over, and meta answers.
	for i := range 20 {
		k := h.key(other, fmt.Sprintf("o%d-", i))
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := h.n.Put(wctx, "rx", []byte(k), []byte("during the split")); err != nil {
			t.Fatalf("write %d to range %d while range %d splits: %v", i, other.ID, splitting.ID, err)
		}
		wcancel()
		h.values[k] = []byte("during the split")
	}
	if _, err := h.n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ry", Mode: catalog.ModeRaft, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatalf("meta while a range splits: %v", err)
	}
	select {
	case err := <-waitingDone:
		t.Fatalf("a write to the splitting range was answered (%v) before its split's file was written", err)
	case err := <-split:
		t.Fatalf("the split was answered (%v) before its file was written", err)
	default:
	}

	h.let()
	if err := <-split; err != nil {
		t.Fatalf("split: %v", err)
	}
	if err := <-waitingDone; err != nil {
		t.Fatalf("the write that waited for the split: %v", err)
	}
	h.values[waiting] = []byte("after the split")
	// The catalog's step of the split, as the split driver takes it.
	tasks, err := h.s.SplitWork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if err := h.n.splitStep(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.s.Catalog().Ranges["rx"]); got != 3 {
		t.Fatalf("the catalog has %d ranges after the split, want 3", got)
	}
	for k, v := range h.values {
		got, err := kvtest.Retry(t, func() (catalog.KeyValue, error) { return h.n.Get(ctx, "rx", []byte(k)) })
		if err != nil || !bytes.Equal(got.Value, v) {
			t.Fatalf("after the split, %s reads %.20q (%v), want %.20q", k, got.Value, err, v)
		}
	}
	if files, err := h.db.StagedFiles(); err != nil || len(files) != 0 {
		t.Errorf("staged files left after the split: %v (%v)", files, err)
	}
}

// A store closed while a split's file is being written stops the
// split's goroutine (goleak checks: TestMain) and leaves no staged file.
func TestSplitClosedWhileWriting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newSplitHold(t, ctx)
	split := h.split(ctx)
	<-h.writing
	closed := make(chan struct{})
	go func() {
		h.n.Close()
		if err := h.s.Close(); err != nil {
			t.Error(err)
		}
		close(closed)
	}()
	// Close cancels the split, whose goroutine is let go now (likely
	// after the cancel, else before: either way it must end, its file
	// go, and Close return).
	time.Sleep(10 * time.Millisecond)
	h.let()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return while a split's file was being written")
	}
	if err := <-split; err == nil {
		t.Error("the split was answered as applied, though the store closed before its ingest")
	}
	if files, err := h.db.StagedFiles(); err != nil || len(files) != 0 {
		t.Errorf("staged files left after Close: %v (%v)", files, err)
	}
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// A replica removed while its split's file is being written (here: its
// keyspace dropped) gives the split up: its proposal is answered, the
// goroutine ends once let go, its file is removed, and no replica of the
// range it was to found starts.
func TestSplitReplicaRemovedWhileWriting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newSplitHold(t, ctx)
	defer h.close()
	split := h.split(ctx)
	<-h.writing
	if err := h.n.DropKeyspace(ctx, "rx"); err != nil {
		t.Fatal(err)
	}
	if err := <-split; err == nil {
		t.Error("the split was answered as applied, though its replica was removed before its ingest")
	}
	h.let()
	// The goroutine ends and the loop removes its file.
	for {
		inFlight := -1
		if err := h.s.Do(ctx, func() { inFlight = h.s.SplitsInFlight() }); err != nil {
			t.Fatal(err)
		}
		files, err := h.db.StagedFiles()
		if err != nil {
			t.Fatal(err)
		}
		if inFlight == 0 && len(files) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d splits in flight and staged files %v after the replica was removed", inFlight, files)
		case <-time.After(5 * time.Millisecond):
		}
	}
	statuses, err := h.s.RangeStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{h.ranges[0].ID, h.ranges[1].ID, h.born} {
		if _, ok := statuses[id]; ok {
			t.Errorf("range %d has a replica here after keyspace rx was dropped", id)
		}
	}
	if has, err := consensus.HasRangeState(h.db, h.born); err != nil || has {
		t.Errorf("the range the split was to found has state here (%v, %v)", has, err)
	}
}
