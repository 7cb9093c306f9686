package eventual

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// ReplayHints is one step of the replay loop, which runs every replay
// interval: each target not replayed to already gets a replay, which
// drops its expired hints and, if the target is alive and past its
// backoff, sends it the others (hintReplay).
func (c *Coordinator) ReplayHints() {
	for _, to := range c.Hints.PendingTargets() {
		if c.Hints.Claim(to) {
			r := &hintReplay{n: c, to: to, span: storage.HintSpan(records.HintTargetName(to)), reachable: c.targetReachable(to)}
			r.next()
		}
	}
}

// targetReachable says whether gossip sees node to alive and its backoff
// is over. A node the catalog no longer knows is never reachable: its
// hints expire.
func (c *Coordinator) targetReachable(to uint64) bool {
	nd, ok := c.store.Catalog().Nodes[to]
	return ok && c.alive(nd) && c.Hints.Ready(to)
}

// hintReplay is one replay of a target's hints, in sequence order, one
// request at a time: it deletes each hint the target acknowledged, and
// stops at the first failure, backing off. An unreachable target's
// replay only drops the expired hints.
type hintReplay struct {
	n         *Coordinator
	to        uint64
	span      storage.Span // the hints not read yet
	reachable bool
	batch     []records.HintEntry // read, not replayed yet
}

// next replays the next hint, or ends the replay.
func (r *hintReplay) next() {
	n := r.n
	for {
		if n.Loops.stopped() {
			r.end(nil)
			return
		}
		if len(r.batch) == 0 {
			batch, err := n.Hints.Read(r.span)
			if err != nil || len(batch) == 0 {
				r.end(err)
				return
			}
			r.batch = batch
			r.span.Start = append(slices.Clone(batch[len(batch)-1].Key), 0)
		}
		e := r.batch[0]
		r.batch = r.batch[1:]
		h, err := records.DecodeHint(e.Value)
		if err != nil {
			n.store.Logger.Error("dropping a corrupt hint", "node-id", r.to, "err", err)
			if err := n.Hints.Delete(r.to, e, "corrupt"); err != nil {
				r.end(err)
				return
			}
			continue
		}
		// A hint is as old as the older of its creation and its record's
		// version: an old version re-written later (a compare-and-swap
		// finishing another's write) must not outlive the window either,
		// for the tombstone purge relies on it (antientropy.go).
		if time.Duration(n.Hints.Now()-min(h.Created, h.Rec.Version.Timestamp.WallTime)) > n.Hints.MaxAge {
			if err := n.Hints.Delete(r.to, e, "expired"); err != nil {
				r.end(err)
				return
			}
			continue
		}
		rd, inCatalog := n.rangeOf(h.RangeID)
		switch {
		case !inCatalog:
			// The keyspace was dropped: nobody wants the record.
			if err := n.Hints.Delete(r.to, e, "dropped"); err != nil {
				r.end(err)
				return
			}
			continue
		case !rd.Holds(r.to):
			// The target's replica left the range (it was moved away, its
			// node dead for good or decommissioned): the record goes to the
			// range's replicas now, the one that took its place among them.
			r.redirect(rd, e, h.Key, h.Rec)
			return
		case !r.reachable:
			// Kept for the target's return, or its replica's move; the rest
			// is younger (nothing else expired), and a dead node's replicas
			// all move, so its hints become redirectable from the first.
			r.end(nil)
			return
		}
		n.net.Call(r.to, ReplicaRequest{Kind: ReqWrite, RangeID: h.RangeID, Key: h.Key, Rec: h.Rec}, func(a ReplicaAnswer) {
			if a.Err != nil {
				n.Hints.BackOff(r.to)
				r.end(a.Err)
				return
			}
			if err := n.Hints.Delete(r.to, e, ""); err != nil {
				r.end(err)
				return
			}
			n.Hints.ResetBackoff(r.to)
			r.next()
		})
		return
	}
}

// redirect writes the record of hint entry e, key and rec, to every
// replica of range rd, and deletes the hint once all of them acknowledged
// it (it counts as delivered); a failure ends the replay,
// which tries again next time. Writing a record a replica holds already
// changes nothing (last writer wins).
func (r *hintReplay) redirect(rd *catalog.RangeDescriptor, e records.HintEntry, key []byte, rec wrn.Record) {
	n := r.n
	var mu sync.Mutex
	left := len(rd.Replicas)
	var failed error
	for _, rep := range rd.Replicas {
		n.net.Call(rep.NodeID, ReplicaRequest{Kind: ReqWrite, RangeID: rd.ID, Key: key, Rec: rec}, func(a ReplicaAnswer) {
			mu.Lock()
			if a.Err != nil && failed == nil {
				failed = fmt.Errorf("node %d: %w", rep.NodeID, a.Err)
			}
			left--
			last, err := left == 0, failed
			mu.Unlock()
			if !last {
				return
			}
			if err == nil {
				err = n.Hints.Delete(r.to, e, "")
			}
			if err != nil {
				r.end(err)
				return
			}
			r.next()
		})
	}
}

// rangeOf returns range id of the catalog, if it has it.
func (c *Coordinator) rangeOf(id uint64) (*catalog.RangeDescriptor, bool) {
	cat := c.store.Catalog()
	for _, ranges := range cat.Ranges {
		for _, r := range ranges {
			if r.ID == id {
				return r, true
			}
		}
	}
	return nil, false
}

func (r *hintReplay) end(err error) {
	if err != nil {
		r.n.store.Logger.Debug("hint replay stopped", "node-id", r.to, "err", err)
	}
	r.n.Hints.Unclaim(r.to)
}

// hintWrite stores a hint for replica to of a write that it failed,
// reporting whether it did (a failure is logged: the write goes on
// without it).
func (c *Coordinator) hintWrite(to, rangeID uint64, key []byte, rec wrn.Record) bool {
	if to == c.store.NodeID() {
		return false // this node's own replica failed: a hint here would fail alike
	}
	if err := c.Hints.Add(to, rangeID, key, rec); err != nil {
		c.store.Logger.Warn("hint not stored", "node-id", to, "range", rangeID, "err", err)
		return false
	}
	return true
}
