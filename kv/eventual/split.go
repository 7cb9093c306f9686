package eventual

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// Splits of eventual ranges (issue 12). A raft range splits in its own
// log (kv/store/split.go); an eventual range has no log, and its
// replicas agree on nothing but the catalog, meta's Raft group. So the
// catalog is where an eventual range splits, and each replica then moves
// its records on its own, with no coordination with the others:
//
//  1. One node per range decides: the first of its replicas, in the
//     catalog's order, that gossip sees alive (SplitTasks; two nodes
//     that both think so are harmless, below). Once its own replica's
//     records (records.Store.Size) pass StoreConfig.RangeMaxBytes, while
//     no replica of the range moves or fills and its replica here is
//     swept (below), it asks meta's leader for
//     catalog.CatalogOp.SplitEventual{Range, Mid}, Mid the middle of the
//     span it saw. Meta reserves an ID and splits in one step: the range
//     keeps [Lo, Mid), the new one, with the same replicas, gets
//     [Mid, Hi) and Parent = the range. A second request computed on the
//     same span (another decider's, a retry of one applied) is refused:
//     Mid is no longer the middle of the span.
//  2. Every replica, once its catalog has the split, serves the new
//     range at once, and moves the right half's records (data, tombstones
//     and compare-and-swap acceptor states) from the old range's prefix to
//     the new one's in the background (SweepStep): records.Store.MoveKey
//     per key, which merges last writer wins into what the new range holds
//     already, and deletes from the old prefix in the same batch, so the
//     move is crash-safe and can be done again. Once every key outside the
//     old range's span has moved, the replica records the span it swept
//     (storage.EventualSweptKey, synced): the old range is swept.
//     Hints need no move: they name a range and a key, and the replica
//     they reach serves the key where it lives now (3).
//  3. Until then, a replica serves a key of a range the way the key is
//     now (resolve): a request for the old range whose key is outside its
//     span now is served by the range that holds the key (a descendant
//     with this node's replica: splits keep the replicas, so a
//     coordinator with a catalog from before the split is served whole);
//     a request for a range with an ancestor not yet swept here first
//     moves the key (pulls it) from that ancestor. A range not held here
//     any more (its replica moved away after the split) answers
//     store.ErrKeyMoved: nothing was done, and the coordinator routes the
//     request again ("Routing again", below).
//
// Why no record is lost. Records are only ever merged, last writer
// wins, and a key's record sits in one prefix per replica at any time,
// so the only danger is a record left in an old range's prefix after
// the replica stopped looking there (the range swept): it would be
// stranded, unseen by reads, anti-entropy and purges. The timeline of the
// race:
//
//  1. A write of key k (right half) for range A reaches replica X, whose
//     catalog does not have the split yet: resolve says A holds k.
//  2. X's catalog gets the split; its sweep of A starts, scans A's
//     prefix and finds no k; it records A swept.
//  3. The write of 1 commits k under A: stranded.
//
// So every operation on a replica's records resolves the key and does
// its write under the read side of Coordinator.split.barrier, and a sweep
// takes the write side once, after it read the catalog and before it
// scans: every operation that resolved with an older catalog has
// committed then (the sweep sees its record), and every later one reads
// a catalog at least as new as the sweep's, so it writes k where k lives.
// A pull (3) is under the same read lock, for the same reason when the
// new range splits again.
//
// Quorums across the split: the new range has the old one's replicas, and
// each replica answers for a key with every record it holds of the key
// (pulled first, or swept), so a write acknowledged by W replicas before,
// during or after the split is seen by any R of them after. A
// compare-and-swap's acceptor state moves with its key, in the same
// batch as the record: the acceptors a proposal reaches through the old
// range or the new one are the same, with the same promises and
// acceptances, so Basic Paxos still chooses one value (a lost acceptor
// state would let a second value be chosen: the MoveCanaries.DropAcceptor
// canary).
//
// Anti-entropy, tombstone purges, scans and a fill's copy of acceptor
// states need a range's whole prefix: a replica refuses them (errSweeping)
// for a range that is not settled here, i.e. it or an ancestor has a
// sweep to do (a scan then reads the other replicas; a leaving replica
// hands its records off, and its range lets it go, only once settled). A
// purge then happens only once every replica holds the tombstone in the
// range's own prefix, and no older value of the key can hide in an
// ancestor's. A scan from a node whose catalog lags a split is completed
// by Coordinator.scanSplitSince.
//
// Not done: merges of eventual ranges (catalog.Mergeable refuses them),
// and a range with a replica moving or filling does not split (its new
// replica fills by anti-entropy of the range as it was). A replica that
// finds, sweeping, a key of a range it no longer holds (moved away after
// the split while this node was down) moves it to that range's prefix
// here all the same, where it stays until deleted by hand, as a range
// that left a node while it was down does (store.dropEventual).

// errSweeping refuses what needs a range's whole prefix on a replica that
// has not moved every record of it yet.
var errSweeping = fmt.Errorf("%w: the range split, and this replica is still moving its records", store.ErrUnavailable)

// splitState is what this node knows of the sweeps of its replicas.
type splitState struct {
	// barrier: operations on records resolve and write under its read
	// lock; a sweep takes its write lock once before it scans (above).
	barrier sync.RWMutex
	mu      struct {
		sync.Mutex
		// swept caches the ranges' swept spans (storage.EventualSweptKey),
		// read from Pebble on first use.
		swept map[uint64]sweptSpan
		// viewsOf and views cache the splitViews of one catalog, the
		// last one asked for, by keyspace: built once per catalog change
		// rather than once per request.
		viewsOf *store.CatalogView
		views   map[string]splitView
	}
}

// sweptSpan is a range's swept span; ok is false if it never swept.
type sweptSpan struct {
	span catalog.Span
	ok   bool
}

// sweptOf returns range id's swept span.
func (c *Coordinator) sweptOf(id uint64) (sweptSpan, error) {
	c.split.mu.Lock()
	defer c.split.mu.Unlock()
	if s, ok := c.split.mu.swept[id]; ok {
		return s, nil
	}
	raw, err := c.db.Get(storage.EventualSweptKey(id))
	var s sweptSpan
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return sweptSpan{}, err
	case len(raw) != 16:
		return sweptSpan{}, fmt.Errorf("range %d: swept span of %d bytes", id, len(raw))
	default:
		s = sweptSpan{span: catalog.Span{Lo: binary.BigEndian.Uint64(raw), Hi: binary.BigEndian.Uint64(raw[8:])}, ok: true}
	}
	if c.split.mu.swept == nil {
		c.split.mu.swept = map[uint64]sweptSpan{}
	}
	c.split.mu.swept[id] = s
	return s, nil
}

// setSwept records, synced, that range id's prefix here holds no key
// outside span.
func (c *Coordinator) setSwept(id uint64, span catalog.Span) error {
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, span.Lo), span.Hi)
	b := c.db.NewBatch()
	defer b.Close()
	if err := b.Set(storage.EventualSweptKey(id), v); err != nil {
		return err
	}
	if err := b.Commit(true /* sync: the moves before it too */); err != nil {
		return err
	}
	c.split.mu.Lock()
	defer c.split.mu.Unlock()
	if c.split.mu.swept == nil {
		c.split.mu.swept = map[uint64]sweptSpan{}
	}
	c.split.mu.swept[id] = sweptSpan{span: span, ok: true}
	return nil
}

// splitView is one catalog's ranges of one keyspace, by ID, with which
// of them split (have a child).
type splitView struct {
	cat      *store.CatalogView
	byID     map[uint64]*catalog.RangeDescriptor
	hasChild map[uint64]bool
}

// splitView returns the splitView of keyspace in cat, cached.
func (c *Coordinator) splitView(cat *store.CatalogView, keyspace string) splitView {
	c.split.mu.Lock()
	defer c.split.mu.Unlock()
	if c.split.mu.viewsOf != cat {
		c.split.mu.viewsOf, c.split.mu.views = cat, map[string]splitView{}
	}
	v, ok := c.split.mu.views[keyspace]
	if !ok {
		v = newSplitView(cat, keyspace)
		c.split.mu.views[keyspace] = v
	}
	return v
}

func newSplitView(cat *store.CatalogView, keyspace string) splitView {
	v := splitView{cat: cat, byID: map[uint64]*catalog.RangeDescriptor{}, hasChild: map[uint64]bool{}}
	for _, r := range cat.Ranges[keyspace] {
		v.byID[r.ID] = r
		if r.Parent != 0 {
			v.hasChild[r.Parent] = true
		}
	}
	return v
}

// owner returns the range of r's keyspace that holds key.
func (v splitView) owner(r *catalog.RangeDescriptor, key []byte) *catalog.RangeDescriptor {
	spans := v.cat.Spans[r.Keyspace]
	return v.cat.Ranges[r.Keyspace][catalog.SpanIndex(spans, catalog.HashKey(key))]
}

// ancestors returns the ranges r was split from, nearest first.
func (v splitView) ancestors(r *catalog.RangeDescriptor) []*catalog.RangeDescriptor {
	var out []*catalog.RangeDescriptor
	for p := r.Parent; p != 0 && len(out) < 64; {
		a, ok := v.byID[p]
		if !ok {
			break
		}
		out = append(out, a)
		p = a.Parent
	}
	return out
}

// unswept reports whether range r split and its prefix here may hold
// records of keys outside its span: it has no swept span of r's span,
// and r is held here or its prefix here is not empty. A range not held
// here any more may still hold records of its descendants that are (it
// left this node before this node swept it, and its data is kept, as
// store.dropEventual keeps that of a range that left while this node was
// down); one whose prefix is empty counts as swept, in memory only, so
// that no node writes a swept span for every range of the catalog.
func (c *Coordinator) unswept(v splitView, r *catalog.RangeDescriptor) (bool, error) {
	if !v.hasChild[r.ID] {
		return false, nil
	}
	s, err := c.sweptOf(r.ID)
	if err != nil {
		return false, err
	}
	if s.ok && s.span == r.Span {
		return false, nil
	}
	if r.Holds(c.store.NodeID()) {
		return true, nil
	}
	holds, err := c.Records.Holds(r.ID)
	if err != nil || holds {
		return holds, err
	}
	c.split.mu.Lock()
	c.split.mu.swept[r.ID] = sweptSpan{span: r.Span, ok: true}
	c.split.mu.Unlock()
	return false, nil
}

// Settled says, by a nil error, whether range r's prefix here holds
// every record of r and nothing else: neither r nor an ancestor of it is
// unswept (errSweeping otherwise).
func (c *Coordinator) Settled(r *catalog.RangeDescriptor) error { return c.settled(r) }

func (c *Coordinator) settled(r *catalog.RangeDescriptor) error {
	v := c.splitView(c.store.Catalog(), r.Keyspace)
	for _, a := range append([]*catalog.RangeDescriptor{r}, v.ancestors(r)...) {
		unswept, err := c.unswept(v, a)
		if err != nil {
			return err
		}
		if unswept {
			return fmt.Errorf("%w: range %d (range %d is not swept here)", errSweeping, r.ID, a.ID)
		}
	}
	return nil
}

// resolve returns the range whose prefix holds key on this replica now,
// for a request for range rangeID (see the top of the file): rangeID's,
// or the descendant that a split gave the key to; the key is first pulled
// from the ancestors of that range not swept here. Call it under the read
// lock of c.split.barrier, and write the key before unlocking.
func (c *Coordinator) resolve(rangeID uint64, key []byte) (*catalog.RangeDescriptor, error) {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return nil, err
	}
	v := c.splitView(c.store.Catalog(), r.Keyspace)
	to := r
	if !r.Span.Contains(catalog.HashKey(key)) {
		to = v.owner(r, key)
		if to == nil || !catalog.Ancestor(v.byID, to, r.ID) || !to.Holds(c.store.NodeID()) {
			return nil, &store.KeyMovedError{RangeID: r.ID, Span: r.Span}
		}
	}
	for _, a := range v.ancestors(to) {
		unswept, err := c.unswept(v, a)
		if err != nil {
			return nil, err
		}
		if !unswept || c.evHooks.SplitNoPull {
			continue
		}
		if _, err := c.Records.MoveKey(a.ID, to.ID, key, c.evHooks.Move); err != nil {
			return nil, err
		}
	}
	return to, nil
}

// sweepBatch is how many keys one scan of a sweep collects before moving
// them: its memory, against one iterator opened per batch (each resumes
// after the last key the one before looked at).
const sweepBatch = 1024

// SweepStep sweeps every eventual range that split and is not swept here
// yet (unswept; see the top of the file). kvd runs it with the
// split driver's passes, the simulator from its timers.
func (c *Coordinator) SweepStep() {
	cat := c.store.Catalog()
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		if cat.Keyspaces[name].Mode != catalog.ModeEventual {
			continue
		}
		v := c.splitView(cat, name)
		for _, r := range cat.Ranges[name] {
			if unswept, err := c.unswept(v, r); err != nil || !unswept {
				continue
			}
			if err := c.sweep(v, r); err != nil {
				c.store.Logger.Warn("moving a split range's records failed; the next pass retries", "range", r.ID, "err", err)
			}
		}
	}
}

// sweep moves every record and acceptor state of keys outside r's span on
// this replica to the range that holds the key in v (a key with both is
// moved whole when its record is), then records r swept. The
// Hooks.SweepStop canary may stop it half way, as a crash would.
func (c *Coordinator) sweep(v splitView, r *catalog.RangeDescriptor) error {
	// Every operation that resolved a key with an older catalog has
	// written it now (the barrier; see the race at the top of the file).
	c.split.barrier.Lock()
	c.split.barrier.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	inSpan := func(key []byte) bool { return r.Span.Contains(catalog.HashKey(key)) }
	moved := 0
	for _, acceptors := range []bool{false, true} {
		var after []byte
		for {
			keys, next, err := c.Records.KeysOutside(r.ID, acceptors, inSpan, after, sweepBatch)
			if err != nil {
				return err
			}
			for _, key := range keys {
				to := v.owner(r, key)
				if to == nil || to.ID == r.ID {
					return fmt.Errorf("range %d: no range holds key %q", r.ID, key)
				}
				if err := c.moveUnderBarrier(r.ID, to.ID, key); err != nil {
					return err
				}
				moved++
				if stop := c.evHooks.SweepStop; stop != nil && stop(r.ID, moved) {
					return fmt.Errorf("range %d: sweep stopped after %d keys (canary)", r.ID, moved)
				}
			}
			if next == nil {
				break
			}
			after = next
		}
	}
	if err := c.setSwept(r.ID, r.Span); err != nil {
		return err
	}
	c.Records.ForgetSize(r.ID)
	c.store.Logger.Info("moved a split range's records to the ranges split from it", "range", r.ID, "keyspace", r.Keyspace,
		"span", fmt.Sprintf("[%016x, %016x)", r.Span.Lo, r.Span.Hi), "keys_moved", moved)
	return nil
}

// moveUnderBarrier moves key from range from to range to, under the read
// lock of the barrier, as a pull does.
func (c *Coordinator) moveUnderBarrier(from, to uint64, key []byte) error {
	c.split.barrier.RLock()
	defer c.split.barrier.RUnlock()
	_, err := c.Records.MoveKey(from, to, key, c.evHooks.Move)
	return err
}

// SplitTask asks meta for the split of an eventual range this node
// decides for (SplitTasks).
type SplitTask struct {
	Op    catalog.SplitEventual
	Bytes int64
}

// SplitTasks returns the splits of the eventual ranges this node decides
// for (the first replica gossip sees alive) whose records here pass
// maxBytes, and which may split now: no replica of theirs moves or
// fills, and they are settled here (their size is then the range's).
func (c *Coordinator) SplitTasks(maxBytes int64) []SplitTask {
	if maxBytes <= 0 {
		return nil
	}
	self := c.store.NodeID()
	var out []SplitTask
	for _, r := range c.localEventualRanges() {
		if ok, _ := catalog.EventualSplittable(r); !ok || c.decider(r) != self || c.settled(r) != nil {
			continue
		}
		size, err := c.Records.Size(r.ID)
		if err != nil || size <= maxBytes {
			continue
		}
		left, _, _ := r.Span.Split()
		out = append(out, SplitTask{Op: catalog.SplitEventual{Range: r.ID, Mid: left.Hi}, Bytes: size})
	}
	return out
}

// decider returns the node that decides r's splits: its first replica
// that gossip sees alive (0 if none).
func (c *Coordinator) decider(r *catalog.RangeDescriptor) uint64 {
	for _, rep := range r.Replicas {
		if c.replicaAlive(rep.NodeID) {
			return rep.NodeID
		}
	}
	return 0
}

// Routing again. A replica answers store.ErrKeyMoved, doing nothing, only
// for a key whose range is not held on its node any more (resolve): a
// split gave the key to a new range, whose replica there moved away
// since. A coordinator whose catalog named the old range then routes the
// write or read again, once, to the range its catalog names now, if a
// split of the old one gave it the key (rerouteOf): a write with the
// record it stamped already, so that whatever the first routing stored
// is the same write. Were its catalog still the old one, the request
// fails as the replicas answered, and the client's retry routes it.

// maxReroutes bounds the routings again of one write or read.
const maxReroutes = 4

// rerouteOf returns the range to route a write or read of key again to,
// after it failed on range r with moved of its replicas answering
// store.ErrKeyMoved: the range the catalog names for key now, if a split
// of r gave it the key; nil if none, or after maxReroutes routings.
func (c *Coordinator) rerouteOf(r *catalog.RangeDescriptor, key []byte, moved, reroutes int) *catalog.RangeDescriptor {
	if moved == 0 || reroutes >= maxReroutes {
		return nil
	}
	v := c.splitView(c.store.Catalog(), r.Keyspace)
	to := v.owner(r, key)
	if to == nil || to.ID == r.ID || !catalog.Ancestor(v.byID, to, r.ID) {
		return nil
	}
	return to
}

// reroute writes o's record again, to range nr's replicas, and calls done
// with that write's result; prev is o's, which failed. An outcome unknown
// stays unknown: the first routing may have stored the record.
func (o *writeOp) reroute(nr *catalog.RangeDescriptor, prev error, done func(WriteResult)) {
	qs, err := o.n.eventualQuorums(o.ks, nr, o.q)
	if err != nil {
		done(WriteResult{Err: prev})
		return
	}
	next := o.n.newWriteOp(o.ks, nr, qs, o.key, o.Rec)
	next.own, next.stamped, next.guarded, next.q, next.reroutes = o.own, o.stamped, o.guarded, o.q, o.reroutes+1
	next.Start(func(res WriteResult) {
		if res.Err != nil && errors.Is(prev, store.ErrOutcomeUnknown) && !errors.Is(res.Err, store.ErrOutcomeUnknown) {
			res.Err = prev
		}
		done(res)
	})
}

// reroute reads o's key again, from range nr's replicas, and calls done
// with that read's result.
func (o *readOp) reroute(nr *catalog.RangeDescriptor, done func(ReadResult)) {
	qs, err := o.n.eventualQuorums(o.ks, nr, o.q)
	if err != nil {
		done(ReadResult{Err: err})
		return
	}
	next := o.n.newReadOp(o.ks, nr, qs, o.key)
	next.measured, next.q, next.reroutes, next.Stale = o.measured, o.q, o.reroutes+1, o.Stale
	next.Start(done)
}
