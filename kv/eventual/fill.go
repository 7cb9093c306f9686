package eventual

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
)

// Filling a new replica (issue 12).
//
// A move or a growth gives an eventual range a replica on a node that
// holds none of its records (catalog.ReplicaDescriptor.Filling). Were it
// counted at once, a quorum could hear from it in place of the replica it
// replaced: with N=3, W=2, R=2, a write acknowledged by {A, D} and D
// replaced by an empty E, a read from {B, E} misses it; and the
// compare-and-swap acceptors of its keys, which anti-entropy does not
// copy, would promise with no memory of a value A and D accepted, and a
// second value could be chosen for the same swap. So until it is filled:
//
//   - writes reach it and count toward W, and its acceptances toward a
//     swap's phase 2: it holds what it acknowledged;
//   - reads, scans and a swap's phase 1 do not count its answers
//     (readable): they need R (a majority, for phase 1) among the others.
//
// Both stay safe: a write quorum holds at least W-f readable replicas (f
// filling), and a read quorum R of the N-f readable ones; W+R > N makes
// (W-f) + R > N-f, so they meet among the readable replicas. The same
// holds for the majorities of phase 1 and phase 2.
//
// The new replica fills itself (fillStep, in the anti-entropy loop, before
// any other range): one anti-entropy round with every other replica of
// the range, and with a leaving replica that is still alive (it may hold
// the only copy of a W=1 write), then a copy of every compare-and-swap
// acceptor state those replicas hold, merged into its own
// (records.Store.MergeAcceptor), each acceptance after the record of its
// key (copyAcceptors). A round that reached every other
// replica, complete (no leaf over the scan limit) and without an error,
// followed by a complete copy of the acceptor states, leaves it holding
// every record and acceptance the others held when it began; whatever
// was acknowledged since reached it as a write, or is on W replicas it
// now shares read quorums with. It then says so (Filled), and meta's
// leader clears the mark (catalog.CatalogOp.Filled), after which it
// counts like any replica.

// errFilling is what a read, a scan or a swap's phase 1 counts for the
// answer of a replica still filling.
var errFilling = errors.New("a new replica still copying the range's records: it does not count toward a read quorum yet")

// readable returns a, or errFilling if it is the answer of a replica of
// r that is still filling.
func (c *Coordinator) readable(r *catalog.RangeDescriptor, from uint64, a ReplicaAnswer) ReplicaAnswer {
	if a.Err == nil && r.IsFilling(from) && !c.evHooks.FillingCounts {
		return ReplicaAnswer{Err: errFilling}
	}
	return a
}

// fillState is what this node knows of the filling of its replicas.
type fillState struct {
	mu sync.Mutex
	// filled are the ranges whose filling replica here has finished
	// (Filled), until the catalog no longer marks it filling.
	filled map[uint64]bool
}

// Filled reports whether this node's replica of range rangeID has copied
// what the range's other replicas held (see above): true once a fill
// finished, and for a replica the catalog no longer marks filling.
func (c *Coordinator) Filled(rangeID uint64) bool {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return false
	}
	if !r.IsFilling(c.store.NodeID()) {
		return r.HasReplica(c.store.NodeID())
	}
	c.fill.mu.Lock()
	defer c.fill.mu.Unlock()
	return c.fill.filled[rangeID]
}

// nextFill returns the first of ranges whose replica here is filling and
// not filled yet, if any; it forgets the ranges the catalog no longer
// marks filling.
func (c *Coordinator) nextFill(ranges []*catalog.RangeDescriptor) *catalog.RangeDescriptor {
	self := c.store.NodeID()
	c.fill.mu.Lock()
	defer c.fill.mu.Unlock()
	var next *catalog.RangeDescriptor
	filling := map[uint64]bool{}
	for _, r := range ranges {
		if !r.IsFilling(self) {
			continue
		}
		filling[r.ID] = true
		if next == nil && !c.fill.filled[r.ID] {
			next = r
		}
	}
	for id := range c.fill.filled {
		if !filling[id] {
			delete(c.fill.filled, id)
		}
	}
	return next
}

// fillStep runs one attempt to fill this node's replica of r and calls
// done at its end: an anti-entropy round with the range's other replicas
// (and its live leaving ones), then, if that round reached every other
// replica and left nothing out, the copy of their acceptor states.
func (c *Coordinator) fillStep(r *catalog.RangeDescriptor, done func()) {
	self := c.store.NodeID()
	cat := c.store.Catalog()
	var peers []uint64
	complete := true
	for _, rep := range slices.Concat(r.Replicas, r.Leaving) {
		if rep.NodeID == self {
			continue
		}
		nd, ok := cat.Nodes[rep.NodeID]
		switch alive := ok && c.alive(nd); {
		case alive:
			peers = append(peers, rep.NodeID)
		case r.HasReplica(rep.NodeID):
			complete = false // a replica it must copy from is down: try again later
		}
	}
	c.startAntiEntropyRound(r, peers, false, func(res antiEntropyResult) {
		if !complete || res.err != nil || res.incomplete {
			if res.err != nil {
				c.store.Logger.Debug("filling a new replica: anti-entropy round failed", "range", r.ID, "err", res.err)
			}
			done()
			return
		}
		c.copyAcceptors(r, peers, nil, func(err error) {
			if err != nil {
				c.store.Logger.Debug("filling a new replica: copying compare-and-swap states failed", "range", r.ID, "err", err)
			} else {
				c.fill.mu.Lock()
				c.fill.filled[r.ID] = true
				c.fill.mu.Unlock()
				c.store.Logger.Info("a new replica holds what the range's other replicas held", "range", r.ID, "keyspace", r.Keyspace)
			}
			done()
		})
	})
}

// copyAcceptors copies into this replica of r the acceptor states of
// peers, a page at a time from after, one peer after another, and calls
// done with the first error.
//
// Each page is copied in two passes: the peer's records of the page's
// keys whose acceptor accepted a value are read and written here first,
// then the page is asked for again and merged. Merging an acceptance
// without the record that hides it would bring a deleted value back:
//
//  1. The peer holds key k's tombstone T, older than the purge horizon,
//     which anti-entropy no longer compares (so the fill's round did not
//     bring it here), and its acceptor an acceptance of an older value V.
//  2. This replica merges the acceptance of V.
//  3. The replicas purge T, each clearing V from its acceptance at the
//     same ballot (records.Store.Purge).
//  4. This replica holds V accepted and no T: a swap whose phase 1 hears
//     it may take its V at that ballot and choose it again.
//
// Read first, the record is T (then a purge since leaves T here and a
// cleared acceptance, later purged here too) or nothing (purged, V
// cleared already). A key whose acceptance the second pass finds and the
// first did not fails the copy: the fill tries again later.
func (c *Coordinator) copyAcceptors(r *catalog.RangeDescriptor, peers []uint64, after []byte, done func(error)) {
	if len(peers) == 0 {
		done(nil)
		return
	}
	peer := peers[0]
	req := ReplicaRequest{Kind: ReqAcceptors, RangeID: r.ID, after: after, limit: c.limits.MaxScanKeys}
	c.net.Call(peer, req, func(a ReplicaAnswer) {
		if a.Err != nil {
			done(fmt.Errorf("node %d: %w", peer, a.Err))
			return
		}
		read := map[string]bool{}
		var keys [][]byte
		for _, ka := range a.Acceptors {
			if !ka.State.Accepted.IsZero() {
				read[string(ka.Key)] = true
				keys = append(keys, ka.Key)
			}
		}
		c.copyRecords(r, peer, keys, func(err error) {
			if err != nil {
				done(err)
				return
			}
			c.net.Call(peer, req, func(a ReplicaAnswer) {
				if a.Err != nil {
					done(fmt.Errorf("node %d: %w", peer, a.Err))
					return
				}
				for _, ka := range a.Acceptors {
					if !ka.State.Accepted.IsZero() && !read[string(ka.Key)] {
						done(fmt.Errorf("node %d: key %q: its acceptor accepted a value while its page was copied", peer, ka.Key))
						return
					}
					if err := c.Records.MergeAcceptor(r.ID, ka.Key, ka.State); err != nil {
						done(err)
						return
					}
				}
				if len(a.Acceptors) < req.limit {
					c.copyAcceptors(r, peers[1:], nil, done)
					return
				}
				c.copyAcceptors(r, peers, a.Acceptors[len(a.Acceptors)-1].Key, done)
			})
		})
	})
}

// copyRecords reads peer's records of keys in range r, one after the
// other, and writes them into this replica (last writer wins).
func (c *Coordinator) copyRecords(r *catalog.RangeDescriptor, peer uint64, keys [][]byte, done func(error)) {
	if len(keys) == 0 {
		done(nil)
		return
	}
	key := keys[0]
	c.net.Call(peer, ReplicaRequest{Kind: ReqRead, RangeID: r.ID, Key: key}, func(a ReplicaAnswer) {
		if a.Err != nil {
			done(fmt.Errorf("node %d: key %q: %w", peer, key, a.Err))
			return
		}
		if !a.Rec.Version.IsZero() {
			if _, _, err := c.WriteLocalRecord(r.ID, key, a.Rec, false); err != nil {
				done(err)
				return
			}
		}
		c.copyRecords(r, peer, keys[1:], done)
	})
}

// LocalAcceptors returns up to limit of the compare-and-swap acceptor
// states of this node's replica of eventual range rangeID, of the keys
// after after, in key order. The range must be settled here (split.go).
func (c *Coordinator) LocalAcceptors(rangeID uint64, after []byte, limit int) ([]records.KeyAcceptor, error) {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return nil, err
	}
	if err := c.settled(r); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > c.limits.MaxScanKeys {
		return nil, fmt.Errorf("%w: %d acceptor states asked, want 1 to %d", catalog.ErrInvalidArgument, limit, c.limits.MaxScanKeys)
	}
	return c.Records.Acceptors(rangeID, after, limit)
}
