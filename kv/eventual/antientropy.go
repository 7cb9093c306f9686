package eventual

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/wrn"
)

// Anti-entropy (DESIGN.md §5): two replicas of an eventual range compare
// Merkle trees of their records (position = HashKey(key), entry =
// wrn.EntryHash of the key's version) and, for the leaves that differ,
// exchange the records of those leaves; each side keeps the newer record
// of every key (last writer wins). A background loop runs one round per
// interval: one range, compared with each of its other replicas in turn,
// so its cost is bounded whatever the number of ranges: a scan of the
// range here and one on each peer, one tree message of 2^antiEntropyDepth
// hashes per peer, and at most the scan limit of records each way.
//
// Tombstones are purged only once every replica is known to hold them:
// a tombstone older than the purge horizon (now minus the tombstone
// grace) is left out of the trees, as if absent, and a round that found a
// leaf identical on every other replica deletes the leaf's tombstones
// past the horizon. Identical leaves mean that no replica holds a live
// value the tombstone hides (it would be in the tree), so deleting it
// resurrects nothing; a replica that still holds an older live value
// differs, gets the tombstone in the exchange, and the purge waits. The
// grace bounds what could still bring an older value back once every
// replica purged: it is longer than the hint window (a hint older than
// that is dropped, see hints.go) plus the replica timeout and the clock
// offset, so no hint, repair or retried write of a version older than
// the horizon is still on its way.
//
// Not done yet: incremental trees (each round rescans the range). A leaf
// holding more differing records than the scan limit is repaired over
// several rounds only if the first ones in key order converge.

const (
	// DefaultAntiEntropyInterval is the time between two rounds of a
	// node. Too low spends disk reads and network on ranges that agree;
	// too high leaves replicas that missed writes (dropped or expired
	// hints, failed repairs) stale for longer, and tombstones unpurged: a
	// node with k eventual ranges visits each every k intervals.
	DefaultAntiEntropyInterval = 10 * time.Second
	// tombstoneGraceMargin is how much longer than the hint window
	// tombstones are kept at least (NodeConfig.TombstoneGrace). Too low
	// risks resurrecting a deleted value that a late message still
	// carries; too high keeps deleted keys' tombstones on disk longer.
	tombstoneGraceMargin = time.Hour
	// AntiEntropyDepth is the trees' depth: 1024 leaves, 8 KiB of hashes
	// per exchange; a range of a million keys has ~1000 keys per leaf.
	AntiEntropyDepth = 10
)

// purgeHorizon is the wall time (Unix nanoseconds) before which
// tombstones may be purged: now minus the tombstone grace.
func (c *Coordinator) purgeHorizon() int64 {
	return c.Hints.Now() - int64(c.tombstoneGrace)
}

// rangeMerkle builds this replica's tree of range r at depth, leaving out
// the tombstones older than horizon.
func (c *Coordinator) rangeMerkle(r *catalog.RangeDescriptor, depth int, horizon int64) (*wrn.Merkle, error) {
	m, err := wrn.NewMerkle(r.Span.Lo, r.Span.Hi, depth)
	if err != nil {
		return nil, err
	}
	err = c.eachRecord(r.ID, func(key []byte, rec wrn.Record) bool {
		if !rec.Tombstone || rec.Version.Timestamp.WallTime >= horizon {
			m.Toggle(catalog.HashKey(key), wrn.EntryHash(key, rec.Version, rec.Tombstone))
		}
		return true
	})
	return m, err
}

// eachRecord calls f with every record of range rangeID on this replica,
// in key order, until f returns false. The key and value alias the
// iterator: f copies what it keeps.
func (c *Coordinator) eachRecord(rangeID uint64, f func(key []byte, rec wrn.Record) bool) error {
	return command.EachData(c.db, rangeID, nil, nil, func(key, raw []byte) (bool, error) {
		rec, err := records.DecodeRecord(raw)
		if err != nil {
			return false, fmt.Errorf("range %d key %q: %w", rangeID, command.Abbreviate(key), err)
		}
		return f(key, rec), nil
	})
}

// LocalMerkleLeaves returns the leaf hashes of this replica's tree of
// eventual range rangeID, which must be settled here (split.go).
func (c *Coordinator) LocalMerkleLeaves(rangeID uint64, depth int) ([]uint64, error) {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return nil, err
	}
	if err := c.settled(r); err != nil {
		return nil, err
	}
	m, err := c.rangeMerkle(r, depth, c.purgeHorizon())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", catalog.ErrInvalidArgument, err)
	}
	return m.LeafHashes(), nil
}

// LocalLeafRecords returns up to limit records of eventual range rangeID
// whose positions fall in leaves (of a tree of depth), and whether some
// were left out. The range must be settled here (split.go).
func (c *Coordinator) LocalLeafRecords(rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error) {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return nil, false, err
	}
	if err := c.settled(r); err != nil {
		return nil, false, err
	}
	m, err := wrn.NewMerkle(r.Span.Lo, r.Span.Hi, depth)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", catalog.ErrInvalidArgument, err)
	}
	want := make(map[int]bool, len(leaves))
	for _, l := range leaves {
		want[int(l)] = true
	}
	var out []records.KeyRecord
	truncated := false
	err = c.eachRecord(rangeID, func(key []byte, rec wrn.Record) bool {
		if !want[m.Leaf(catalog.HashKey(key))] {
			return true
		}
		if len(out) == limit {
			truncated = true
			return false
		}
		rec.Value = slices.Clone(rec.Value)
		out = append(out, records.KeyRecord{Key: slices.Clone(key), Record: rec})
		return true
	})
	return out, truncated, err
}

// antiEntropyRound is one anti-entropy round of a range on this replica:
// this node's tree, built once, is compared with each peer's in turn
// (one request at a time), and the records of the leaves that differ are
// exchanged, each side keeping the newer record of each key. If every
// other replica answered, the tombstones past the purge horizon in the
// leaves that matched all of them are purged (see above).
type antiEntropyRound struct {
	n       *Coordinator
	r       *catalog.RangeDescriptor
	peers   []uint64 // the peers still to visit
	purge   bool     // purge after the round (every other replica is in peers)
	horizon int64
	mine    *wrn.Merkle
	local   []uint64 // mine's leaf hashes
	matched []bool   // per leaf: every peer visited so far had the same hash
	res     antiEntropyResult
	done    func(antiEntropyResult)
}

// antiEntropyResult is what a round did: leaves that differed, records
// purged, and the first error (a peer that failed is skipped, and the
// round purges nothing).
type antiEntropyResult struct {
	mismatches int
	purged     int
	// pushed counts the records sent to peers that held older versions or
	// none; incomplete marks a round that left records of a differing
	// leaf out (over the scan limit).
	pushed     int
	incomplete bool
	err        error
}

// startAntiEntropyRound runs a round of range r with peers; done is called
// once at its end. A range not settled here (split.go) has no round.
func (c *Coordinator) startAntiEntropyRound(r *catalog.RangeDescriptor, peers []uint64, purge bool, done func(antiEntropyResult)) {
	rd := &antiEntropyRound{n: c, r: r, peers: peers, purge: purge, horizon: c.purgeHorizon(), done: done}
	if err := c.settled(r); err != nil {
		done(antiEntropyResult{err: err})
		return
	}
	mine, err := c.rangeMerkle(r, AntiEntropyDepth, rd.horizon)
	if err != nil {
		done(antiEntropyResult{err: err})
		return
	}
	rd.mine, rd.local = mine, mine.LeafHashes()
	rd.matched = make([]bool, len(rd.local))
	for i := range rd.matched {
		rd.matched[i] = true
	}
	rd.next()
}

// next visits the next peer, or ends the round.
func (rd *antiEntropyRound) next() {
	n := rd.n
	if len(rd.peers) == 0 || n.Loops.stopped() {
		rd.end()
		return
	}
	peer := rd.peers[0]
	rd.peers = rd.peers[1:]
	n.net.Call(peer, ReplicaRequest{Kind: reqLeaves, RangeID: rd.r.ID, depth: AntiEntropyDepth}, func(a ReplicaAnswer) {
		if a.Err == nil && len(a.Hashes) != len(rd.local) {
			a.Err = fmt.Errorf("%w: node %d sent %d merkle leaves, want %d", codec.ErrCorrupt, peer, len(a.Hashes), len(rd.local))
		}
		if a.Err != nil {
			rd.Fail(peer, a.Err)
			return
		}
		var diff []uint32
		for i := range rd.local {
			if rd.local[i] != a.Hashes[i] {
				diff = append(diff, uint32(i))
				rd.matched[i] = false
			}
		}
		if len(diff) == 0 {
			rd.next()
			return
		}
		rd.res.mismatches += len(diff)
		n.store.Config.Metrics.AntiEntropyMismatches.Add(float64(len(diff)))
		req := ReplicaRequest{Kind: ReqLeafRecords, RangeID: rd.r.ID, depth: AntiEntropyDepth, Leaves: diff, limit: n.limits.MaxScanKeys}
		n.net.Call(peer, req, func(a ReplicaAnswer) {
			if a.Err != nil {
				rd.Fail(peer, a.Err)
				return
			}
			rd.res.incomplete = rd.res.incomplete || a.truncated
			if err := rd.exchange(peer, diff, a.Recs); err != nil {
				rd.Fail(peer, err)
			}
		})
	})
}

// exchange keeps the newer of each of the peer's records of the leaves
// diff, sends the peer the records of ours that are newer than its, and
// goes on to the next peer once it answered them all.
func (rd *antiEntropyRound) exchange(peer uint64, diff []uint32, remote []records.KeyRecord) error {
	n := rd.n
	ours, truncated, err := n.LocalLeafRecords(rd.r.ID, AntiEntropyDepth, diff, n.limits.MaxScanKeys)
	if err != nil {
		return err
	}
	rd.res.incomplete = rd.res.incomplete || truncated
	theirs := make(map[string]wrn.Record, len(remote))
	pulled := 0
	for _, kr := range remote {
		theirs[string(kr.Key)] = kr.Record
		applied, _, err := n.WriteLocalRecord(rd.r.ID, kr.Key, kr.Record, false)
		if err != nil {
			return err
		}
		if applied {
			pulled++
		}
	}
	n.store.Config.Metrics.AntiEntropyRepairs.Add(float64(pulled))
	if pulled > 0 {
		// The next peers are compared with this replica as it is now, or
		// they would differ in the same leaves and send the same records
		// again. A leaf matched so far changed only by writes of other
		// keys, which leave the purge safe (see purgeTombstones).
		mine, err := n.rangeMerkle(rd.r, AntiEntropyDepth, rd.horizon)
		if err != nil {
			return err
		}
		rd.mine, rd.local = mine, mine.LeafHashes()
	}
	var push []records.KeyRecord
	for _, kr := range ours {
		if theirs[string(kr.Key)].Version.Less(kr.Record.Version) {
			push = append(push, kr) // the peer holds an older version, or none
		}
	}
	if len(push) == 0 {
		rd.next()
		return nil
	}
	rd.res.pushed += len(push)
	// The answers come on different goroutines in kvd.
	var mu sync.Mutex
	left := len(push)
	for _, kr := range push {
		n.net.Call(peer, ReplicaRequest{Kind: ReqWrite, RangeID: rd.r.ID, Key: kr.Key, Rec: kr.Record}, func(a ReplicaAnswer) {
			mu.Lock()
			if a.Err != nil && rd.res.err == nil {
				rd.res.err = fmt.Errorf("node %d: %w", peer, a.Err)
			}
			if a.Err == nil {
				n.store.Config.Metrics.AntiEntropyRepairs.Inc()
			}
			left--
			last := left == 0
			mu.Unlock()
			if last {
				rd.next()
			}
		})
	}
	return nil
}

func (rd *antiEntropyRound) Fail(peer uint64, err error) {
	if rd.res.err == nil {
		rd.res.err = fmt.Errorf("node %d: %w", peer, err)
	}
	rd.purge = false // a replica was not compared
	rd.next()
}

func (rd *antiEntropyRound) end() {
	if rd.purge && len(rd.peers) == 0 {
		purged, err := rd.n.purgeTombstones(rd.r, rd.mine, rd.matched, rd.horizon)
		rd.res.purged = purged
		if err != nil && rd.res.err == nil {
			rd.res.err = err
		}
	}
	rd.done(rd.res)
}

// AntiEntropyExchange runs a round of range r with peer alone (no
// purge), waiting for it; it returns how many leaves differed.
func (c *Coordinator) AntiEntropyExchange(ctx context.Context, r *catalog.RangeDescriptor, peer uint64) (int, error) {
	res, err := await(ctx, func(done func(antiEntropyResult)) { c.startAntiEntropyRound(r, []uint64{peer}, false, done) },
		func() string { return fmt.Sprintf("anti-entropy of range %d with node %d", r.ID, peer) })
	if err != nil {
		return 0, err
	}
	return res.mismatches, res.err
}

// purgeTombstones deletes this replica's tombstones of range r older than
// horizon in the leaves of mine that matched every other replica. Each
// peer was compared with this replica's tree as it was then: a leaf that
// matched every peer held, on each, no live value of a key whose old
// tombstone is here (the value would have been in its tree and not in
// ours). records.purge deletes a tombstone only if it is still the one
// seen, so a write that came since is kept.
func (c *Coordinator) purgeTombstones(r *catalog.RangeDescriptor, mine *wrn.Merkle, matched []bool, horizon int64) (int, error) {
	var victims []records.KeyRecord
	err := c.eachRecord(r.ID, func(key []byte, rec wrn.Record) bool {
		if rec.Tombstone && rec.Version.Timestamp.WallTime < horizon && matched[mine.Leaf(catalog.HashKey(key))] {
			victims = append(victims, records.KeyRecord{Key: slices.Clone(key), Record: rec})
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, kr := range victims {
		ok, err := c.Records.Purge(r.ID, kr.Key, kr.Record.Version, c.evHooks.PurgeKeepsAccepted)
		if err != nil {
			return purged, err
		}
		if ok {
			purged++
		}
	}
	if purged > 0 {
		c.store.Config.Metrics.TombstonesPurged.Add(float64(purged))
	}
	return purged, nil
}

// AntiEntropyStep is one step of the anti-entropy loop: unless a round
// is under way, it starts one on the next of this node's eventual ranges
// (round-robin).
func (c *Coordinator) AntiEntropyStep() {
	ae := &c.antiEntropy
	ae.mu.Lock()
	if ae.mu.busy {
		ae.mu.Unlock()
		return
	}
	ranges := c.localEventualRanges()
	if len(ranges) == 0 {
		ae.mu.Unlock()
		return
	}
	if r := c.nextFill(ranges); r != nil {
		// A new replica here fills before anything else: until it does,
		// reads do not count it (fill.go).
		ae.mu.busy = true
		ae.mu.Unlock()
		c.fillStep(r, func() {
			ae.mu.Lock()
			ae.mu.busy = false
			ae.mu.Unlock()
		})
		return
	}
	r := ranges[ae.mu.next%len(ranges)]
	ae.mu.next++
	ae.mu.busy = true
	ae.mu.Unlock()
	// The other replicas that gossip sees alive; tombstones are purged
	// only in a round that reached all of them, and never while a replica
	// is leaving: it holds records the others may not have yet, a live
	// value a purged tombstone would no longer hide among them; nor while
	// one is filling, for the same reason.
	var peers []uint64
	cat := c.store.Catalog()
	self := c.store.NodeID()
	for _, rep := range r.Replicas {
		if nd, ok := cat.Nodes[rep.NodeID]; ok && rep.NodeID != self && c.alive(nd) {
			peers = append(peers, rep.NodeID)
		}
	}
	others := len(r.Replicas) - 1
	leaving := r.IsLeaving(self)
	if leaving {
		others++ // self is not one of them
	}
	all := len(peers) == others
	c.startAntiEntropyRound(r, peers, all && len(r.Leaving) == 0 && !r.AnyFilling(), func(res antiEntropyResult) {
		if res.err != nil {
			c.store.Logger.Debug("anti-entropy round failed", "range", r.ID, "err", res.err)
		}
		ae.mu.Lock()
		ae.mu.busy = false
		if leaving {
			// Handed off: every replica of the range answered, and none
			// lacked a record of this one (LetGo).
			ae.mu.handedOff[r.ID] = all && res.err == nil && res.pushed == 0 && !res.incomplete
		}
		ae.mu.Unlock()
	})
}

// LetGo reports whether range rangeID has let node's leaving replica go,
// as far as this node knows: for an eventual range, whether node is this
// one and its last anti-entropy round found every replica of the range
// holding all its records (so deleting them loses nothing acknowledged:
// coordinators write to the range's replicas, not to the leaving one);
// for a Raft range, whether this node's replica applied a configuration
// without node (store.Store.LetGo).
func (c *Coordinator) LetGo(rangeID, node uint64) bool {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return c.store.LetGo(rangeID, node)
	}
	ae := &c.antiEntropy
	ae.mu.Lock()
	defer ae.mu.Unlock()
	return node == c.store.NodeID() && r.IsLeaving(node) && ae.mu.handedOff[rangeID]
}

// localEventualRanges lists the eventual ranges with a replica here,
// leaving or not, in keyspace and range order.
func (c *Coordinator) localEventualRanges() []*catalog.RangeDescriptor {
	cat := c.store.Catalog()
	self := c.store.NodeID()
	var out []*catalog.RangeDescriptor
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		if cat.Keyspaces[name].Mode != catalog.ModeEventual {
			continue
		}
		for _, r := range cat.Ranges[name] {
			if r.Holds(self) {
				out = append(out, r)
			}
		}
	}
	return out
}

// antiEntropyState is the state of the anti-entropy loop.
type antiEntropyState struct {
	mu struct {
		sync.Mutex
		busy bool // a round is under way
		next int  // the round-robin position
		// handedOff are the ranges whose replica here is leaving, by
		// whether its last round handed its records off (LetGo).
		handedOff map[uint64]bool
	}
}

// StartAntiEntropy starts the node's anti-entropy loop: one round every
// interval (0 means DefaultAntiEntropyInterval), visiting its eventual
// ranges in turn. Close stops it.
func (c *Coordinator) StartAntiEntropy(interval time.Duration) {
	if interval <= 0 {
		interval = DefaultAntiEntropyInterval
	}
	c.Loops.Every(interval, c.AntiEntropyStep)
}
