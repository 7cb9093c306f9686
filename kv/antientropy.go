package kv

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/wrn"
)

// Anti-entropy (DESIGN.md §5): two replicas of an eventual range compare
// Merkle trees of their records (position = HashKey(key), entry =
// wrn.EntryHash of the key's version) and, for the leaves that differ,
// exchange the records of those leaves; each side keeps the newer record
// of every key (last writer wins). A background loop does one exchange
// (one range, one peer) per interval, so its cost is bounded whatever the
// number of ranges: a full scan of one range on each side, one tree
// message of 2^antiEntropyDepth hashes, and at most the scan limit of
// records each way.
//
// Not done yet: tombstone purging (it needs every replica known to hold
// a tombstone) and incremental trees (each exchange rescans the range).
// A leaf holding more differing records than the scan limit is repaired
// over several exchanges only if the first ones in key order converge.

const (
	// DefaultAntiEntropyInterval is the time between two exchanges of a
	// node. Too low spends disk reads and network on ranges that agree;
	// too high leaves replicas that missed writes (dropped or expired
	// hints, failed repairs) stale for longer: a node with k eventual
	// ranges of N replicas visits each (range, peer) pair every
	// k*(N-1) intervals.
	DefaultAntiEntropyInterval = 10 * time.Second
	// antiEntropyDepth is the trees' depth: 1024 leaves, 8 KiB of hashes
	// per exchange; a range of a million keys has ~1000 keys per leaf.
	antiEntropyDepth = 10
)

// rangeMerkle builds this replica's tree of range r at depth.
func (n *Node) rangeMerkle(r *RangeDescriptor, depth int) (*wrn.Merkle, error) {
	m, err := wrn.NewMerkle(r.Span.Lo, r.Span.Hi, depth)
	if err != nil {
		return nil, err
	}
	err = n.eachRecord(r.ID, func(key []byte, rec wrn.Record) bool {
		m.Toggle(HashKey(key), wrn.EntryHash(key, rec.Version, rec.Tombstone))
		return true
	})
	return m, err
}

// eachRecord calls f with every record of range rangeID on this replica,
// in key order, until f returns false. The key and value alias the
// iterator: f copies what it keeps.
func (n *Node) eachRecord(rangeID uint64, f func(key []byte, rec wrn.Record) bool) error {
	return eachData(n.db, rangeID, nil, nil, func(key, raw []byte) (bool, error) {
		rec, err := decodeRecord(raw)
		if err != nil {
			return false, fmt.Errorf("range %d key %q: %w", rangeID, abbreviate(key), err)
		}
		return f(key, rec), nil
	})
}

// localMerkleLeaves returns the leaf hashes of this replica's tree of
// eventual range rangeID.
func (n *Node) localMerkleLeaves(rangeID uint64, depth int) ([]uint64, error) {
	r, err := n.localEventualRange(rangeID)
	if err != nil {
		return nil, err
	}
	m, err := n.rangeMerkle(r, depth)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return m.LeafHashes(), nil
}

// localLeafRecords returns up to limit records of eventual range rangeID
// whose positions fall in leaves (of a tree of depth), and whether some
// were left out.
func (n *Node) localLeafRecords(rangeID uint64, depth int, leaves []uint32, limit int) ([]keyRecord, bool, error) {
	r, err := n.localEventualRange(rangeID)
	if err != nil {
		return nil, false, err
	}
	m, err := wrn.NewMerkle(r.Span.Lo, r.Span.Hi, depth)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	want := make(map[int]bool, len(leaves))
	for _, l := range leaves {
		want[int(l)] = true
	}
	var out []keyRecord
	truncated := false
	err = n.eachRecord(rangeID, func(key []byte, rec wrn.Record) bool {
		if !want[m.Leaf(HashKey(key))] {
			return true
		}
		if len(out) == limit {
			truncated = true
			return false
		}
		rec.Value = slices.Clone(rec.Value)
		out = append(out, keyRecord{Key: slices.Clone(key), Record: rec})
		return true
	})
	return out, truncated, err
}

// antiEntropyExchange compares this replica's tree of range r with
// peer's and exchanges the records of the leaves that differ, each side
// keeping the newer record of each key. It returns how many leaves
// differed.
func (n *Node) antiEntropyExchange(ctx context.Context, r *RangeDescriptor, peer uint64) (int, error) {
	mine, err := n.rangeMerkle(r, antiEntropyDepth)
	if err != nil {
		return 0, err
	}
	theirs, err := n.recordPeers.merkleLeaves(ctx, peer, r.ID, antiEntropyDepth)
	if err != nil {
		return 0, err
	}
	local := mine.LeafHashes()
	if len(theirs) != len(local) {
		return 0, fmt.Errorf("%w: node %d sent %d merkle leaves, want %d", ErrCorrupt, peer, len(theirs), len(local))
	}
	var diff []uint32
	for i := range local {
		if local[i] != theirs[i] {
			diff = append(diff, uint32(i))
		}
	}
	if len(diff) == 0 {
		return 0, nil
	}
	n.store.cfg.Metrics.AntiEntropyMismatches.Add(float64(len(diff)))
	limit := n.limits.MaxScanKeys
	remote, _, err := n.recordPeers.leafRecords(ctx, peer, r.ID, antiEntropyDepth, diff, limit)
	if err != nil {
		return len(diff), err
	}
	ours, _, err := n.localLeafRecords(r.ID, antiEntropyDepth, diff, limit)
	if err != nil {
		return len(diff), err
	}
	theirByKey := make(map[string]wrn.Record, len(remote))
	for _, kr := range remote {
		theirByKey[string(kr.Key)] = kr.Record
		if _, _, err := n.writeLocalRecord(r.ID, kr.Key, kr.Record); err != nil {
			return len(diff), err
		}
	}
	for _, kr := range ours {
		if !theirByKey[string(kr.Key)].Version.Less(kr.Record.Version) {
			continue // the peer holds this version or a newer one
		}
		if _, err := n.recordPeers.writeRecord(ctx, peer, r.ID, kr.Key, kr.Record); err != nil {
			return len(diff), err
		}
	}
	return len(diff), nil
}

// antiEntropyPairs lists the (range, peer) pairs this node exchanges
// with: every eventual range with a replica here, every other replica
// that gossip sees alive.
func (n *Node) antiEntropyPairs() []antiEntropyPair {
	cat := n.store.Catalog()
	self := n.store.NodeID()
	var out []antiEntropyPair
	for _, name := range slices.Sorted(maps.Keys(cat.Keyspaces)) {
		if cat.Keyspaces[name].Mode != ModeEventual {
			continue
		}
		for _, r := range cat.Ranges[name] {
			if !r.HasReplica(self) {
				continue
			}
			for _, rep := range r.Replicas {
				if nd, ok := cat.Nodes[rep.NodeID]; ok && rep.NodeID != self && n.alive(nd.Name) {
					out = append(out, antiEntropyPair{r, rep.NodeID})
				}
			}
		}
	}
	return out
}

type antiEntropyPair struct {
	r    *RangeDescriptor
	peer uint64
}

// antiEntropyLoop runs the node's background exchanges (StartAntiEntropy).
type antiEntropyLoop struct {
	mu struct {
		sync.Mutex
		started, closed bool
	}
	ctx    context.Context // canceled by close: ends the exchange in flight
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
}

func (l *antiEntropyLoop) init() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.stop, l.done = make(chan struct{}), make(chan struct{})
}

// StartAntiEntropy starts the node's anti-entropy loop: one exchange
// every interval (0 means DefaultAntiEntropyInterval), visiting the
// (range, peer) pairs in turn. Close stops it. Calling it again, or
// after Close, does nothing.
func (n *Node) StartAntiEntropy(interval time.Duration) {
	if interval <= 0 {
		interval = DefaultAntiEntropyInterval
	}
	l := &n.antiEntropy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.started || l.mu.closed {
		return
	}
	l.mu.started = true
	go func() {
		defer close(l.done)
		n.runAntiEntropy(interval)
	}()
}

func (n *Node) runAntiEntropy(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-n.antiEntropy.stop:
			return
		case <-t.C:
		}
		pairs := n.antiEntropyPairs()
		if len(pairs) == 0 {
			continue
		}
		p := pairs[next%len(pairs)]
		next++
		ctx, cancel := context.WithTimeout(n.antiEntropy.ctx, interval)
		if _, err := n.antiEntropyExchange(ctx, p.r, p.peer); err != nil {
			n.store.logger.Debug("anti-entropy exchange failed", "range", p.r.ID, "node", p.peer, "err", err)
		}
		cancel()
	}
}

// close stops the loop and waits for it. It is idempotent.
func (l *antiEntropyLoop) close() {
	l.mu.Lock()
	first := !l.mu.closed
	l.mu.closed = true
	started := l.mu.started
	l.mu.Unlock()
	if first {
		l.cancel()
		close(l.stop)
	}
	if started {
		<-l.done
	}
}
