package kv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Hinted handoff (DESIGN.md §5). When a replica of an eventual write
// fails or does not answer within the replica timeout, the coordinator
// stores the record durably as a hint for that replica (storage.HintKey,
// target = the replica's node ID in decimal) and a background loop replays
// a target's hints, oldest first, once gossip sees it alive, deleting each
// one the target acknowledged. A hint counts toward W only in keyspaces
// with sloppy_quorum (wrn.WriteTracker.Hinted).
//
// Hints are bounded in count, bytes and age: a hint over the count or
// byte bound is not stored, and one older than the age bound is deleted
// unreplayed; both are counted as dropped, and anti-entropy repairs what
// they would have. A hint whose target no longer holds the range (it was
// moved) fails until it expires.

// Defaults for hinted handoff, used when NodeConfig leaves them zero.
const (
	// DefaultMaxHints bounds the hints a node holds. Too low drops hints
	// during a long outage of a busy replica (anti-entropy then repairs,
	// slower); too high lets one dead replica fill the disk and the
	// startup scan that counts them.
	DefaultMaxHints = 100_000
	// DefaultMaxHintBytes bounds the hints' total size (keys and values)
	// in bytes, with the same trade-off as DefaultMaxHints.
	DefaultMaxHintBytes = 256 << 20
	// DefaultMaxHintAge is how long a hint is kept for a replica that does
	// not come back (Cassandra's max_hint_window). Too low leaves a
	// replica back from a long outage to anti-entropy alone; too high
	// keeps hints for a node that is gone for good.
	DefaultMaxHintAge = 3 * time.Hour
	// DefaultHintReplayInterval is how often the replay loop looks for
	// targets that came back. Too low spins on an idle node; too high
	// leaves a returned replica stale for longer.
	DefaultHintReplayInterval = time.Second
	// maxHintBackoff bounds the wait before retrying a target whose
	// replay failed. A replay is one RPC, so retries are cheap; and a
	// node that just came back fails the first ones until its catalog has
	// caught up, so a long backoff would leave it stale for no reason.
	maxHintBackoff = 5 * time.Second
	// hintReplayBatch is how many hints one replay step reads into memory.
	hintReplayBatch = 128
)

// errHintsFull says a hint was dropped because the node holds its bound.
var errHintsFull = errors.New("kv: hints full")

// hintFormatV1 is the first byte of an encoded hint.
const hintFormatV1 byte = 1

// hint is a write held for a replica that missed it.
type hint struct {
	created int64 // physical time of the coordinator, in Unix nanoseconds
	rangeID uint64
	key     []byte
	rec     wrn.Record
}

func encodeHint(h hint) []byte {
	e := enc{b: make([]byte, 0, 32+len(h.key)+len(h.rec.Value))}
	e.byte(hintFormatV1)
	e.uint(uint64(h.created))
	e.uint(h.rangeID)
	e.bytes(h.key)
	e.bytes(encodeRecord(h.rec))
	return e.b
}

// decodeHint reads what encodeHint wrote. The result aliases b.
func decodeHint(b []byte) (hint, error) {
	d := dec{b: b}
	if f := d.byte(); d.err == nil && f != hintFormatV1 {
		return hint{}, fmt.Errorf("%w: hint format %d", ErrCorrupt, f)
	}
	h := hint{created: int64(d.uint()), rangeID: d.uint(), key: d.bytes()}
	raw := d.bytes()
	if err := d.done(); err != nil {
		return hint{}, err
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return hint{}, err
	}
	h.rec = rec
	return h, nil
}

func hintTargetName(node uint64) string { return strconv.FormatUint(node, 10) }

// hintTarget is the replay state of one target node.
type hintTarget struct {
	pending int
	backoff time.Duration
	retryAt int64 // Unix nanoseconds; no replay before
}

// hints holds a node's hints: their bounds, the counts kept in memory,
// and the replay loop, started with the first hint (or at startup if
// hints are on disk) and stopped by close.
type hints struct {
	db       *storage.DB
	now      func() int64
	metrics  *Metrics
	maxCount int
	maxBytes int64
	maxAge   time.Duration
	interval time.Duration

	mu struct {
		sync.Mutex
		seq     uint64 // the next hint's sequence number
		count   int
		bytes   int64
		targets map[uint64]*hintTarget
		started bool
		closed  bool
	}
	ctx    context.Context // canceled by close: ends replays in flight
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
}

func newHints(db *storage.DB, cfg NodeConfig, metrics *Metrics) (*hints, error) {
	h := &hints{db: db, now: cfg.PhysicalClock, metrics: metrics, maxCount: cfg.MaxHints, maxBytes: cfg.MaxHintBytes,
		maxAge: cfg.MaxHintAge, interval: cfg.HintReplayInterval, stop: make(chan struct{}), done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.mu.targets = map[uint64]*hintTarget{}
	it, err := db.NewIter(storage.AllHintsSpan())
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		name, seq, err := storage.DecodeHintKey(it.Key())
		if err != nil {
			return nil, err
		}
		to, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: hint target %q", ErrCorrupt, name)
		}
		raw, err := it.Value()
		if err != nil {
			return nil, err
		}
		h.mu.seq = max(h.mu.seq, seq+1)
		h.reserveLocked(to, int64(len(it.Key())+len(raw)))
	}
	return h, it.Error()
}

func (h *hints) target(to uint64) *hintTarget {
	t := h.mu.targets[to]
	if t == nil {
		t = &hintTarget{}
		h.mu.targets[to] = t
	}
	return t
}

func (h *hints) reserveLocked(to uint64, size int64) {
	h.mu.count++
	h.mu.bytes += size
	h.target(to).pending++
	h.metrics.HintsPending.Inc()
}

func (h *hints) release(to uint64, size int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.count--
	h.mu.bytes -= size
	if t := h.mu.targets[to]; t != nil {
		if t.pending--; t.pending <= 0 {
			delete(h.mu.targets, to)
		}
	}
	h.metrics.HintsPending.Dec()
}

// add stores rec, a write of key in range rangeID that node to missed, as
// a hint, durably (the WAL synced: a sloppy write counts it toward W). It
// starts the replay loop if needed (run is the loop).
func (h *hints) add(to, rangeID uint64, key []byte, rec wrn.Record, run func()) error {
	v := encodeHint(hint{created: h.now(), rangeID: rangeID, key: key, rec: rec})
	h.mu.Lock()
	k := storage.HintKey(hintTargetName(to), h.mu.seq)
	size := int64(len(k) + len(v))
	if count, bytes := h.mu.count, h.mu.bytes; count+1 > h.maxCount || bytes+size > h.maxBytes {
		h.mu.Unlock()
		h.metrics.HintsDropped.WithLabelValues("full").Inc()
		return fmt.Errorf("%w: %d hints of %d bytes held (bounds %d, %d bytes)", errHintsFull, count, bytes, h.maxCount, h.maxBytes)
	}
	h.mu.seq++
	h.reserveLocked(to, size)
	h.mu.Unlock()
	b := h.db.NewBatch()
	defer b.Close()
	err := b.Set(k, v)
	if err == nil {
		err = b.Commit(true /* sync: a sloppy write counts the hint as an ack */)
	}
	if err != nil {
		h.release(to, size)
		return err
	}
	h.metrics.HintsQueued.Inc()
	h.start(run)
	return nil
}

// start starts the replay loop unless it runs or the hints are closed.
func (h *hints) start(run func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.started || h.mu.closed {
		return
	}
	h.mu.started = true
	go func() {
		defer close(h.done)
		run()
	}()
}

// close stops the replay loop and waits for it. It is idempotent.
func (h *hints) close() {
	h.mu.Lock()
	first := !h.mu.closed
	h.mu.closed = true
	started := h.mu.started
	h.mu.Unlock()
	if !first {
		if started {
			<-h.done
		}
		return
	}
	h.cancel()
	close(h.stop)
	if started {
		<-h.done
	}
}

// pending returns the targets with hints, in ID order.
func (h *hints) pendingTargets() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.mu.targets))
}

// ready says whether a replay of to's hints may start now (its backoff
// is over).
func (h *hints) ready(to uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	return t != nil && h.now() >= t.retryAt
}

// backOff delays the next replay to to after a failed one: doubling from
// the replay interval up to maxHintBackoff.
func (h *hints) backOff(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	if t == nil {
		return
	}
	t.backoff = min(max(2*t.backoff, h.interval), maxHintBackoff)
	t.retryAt = h.now() + int64(t.backoff)
}

func (h *hints) resetBackoff(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.mu.targets[to]; t != nil {
		t.backoff, t.retryAt = 0, 0
	}
}

// runHints is the replay loop: every replay interval, each target's
// expired hints are dropped, and a target that is alive and past its
// backoff gets its hints.
func (n *Node) runHints() {
	t := time.NewTicker(n.hints.interval)
	defer t.Stop()
	for {
		select {
		case <-n.hints.stop:
			return
		case <-t.C:
		}
		n.replayHints(n.hints.ctx)
	}
}

// replayHints makes one replay pass over every target.
func (n *Node) replayHints(ctx context.Context) {
	for _, to := range n.hints.pendingTargets() {
		if ctx.Err() != nil {
			return
		}
		if err := n.replayTarget(ctx, to); err != nil {
			n.store.logger.Debug("hint replay stopped", "node", to, "err", err)
		}
	}
}

// targetReachable says whether gossip sees node to alive and its backoff
// is over. A node the catalog no longer knows is never reachable: its
// hints expire.
func (n *Node) targetReachable(to uint64) bool {
	nd, ok := n.store.Catalog().Nodes[to]
	return ok && n.alive(nd.Name) && n.hints.ready(to)
}

// replayTarget drops to's expired hints and, if to is reachable, sends
// it the others in sequence order, deleting each one it acknowledged. It
// stops at the first failure and backs off.
func (n *Node) replayTarget(ctx context.Context, to uint64) error {
	span := storage.HintSpan(hintTargetName(to))
	reachable := n.targetReachable(to)
	for {
		batch, err := n.readHints(span)
		if err != nil || len(batch) == 0 {
			return err
		}
		for _, e := range batch {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h, err := decodeHint(e.value)
			if err != nil {
				n.store.logger.Error("dropping a corrupt hint", "node", to, "err", err)
				if err := n.deleteHint(to, e, "corrupt"); err != nil {
					return err
				}
				continue
			}
			if time.Duration(n.hints.now()-h.created) > n.hints.maxAge {
				if err := n.deleteHint(to, e, "expired"); err != nil {
					return err
				}
				continue
			}
			if !reachable {
				return nil // the rest is younger: nothing else expired
			}
			sctx, cancel := context.WithTimeout(ctx, n.replicaTimeout)
			_, err = n.recordPeers.writeRecord(sctx, to, h.rangeID, h.key, h.rec)
			cancel()
			if err != nil {
				n.hints.backOff(to)
				return err
			}
			if err := n.deleteHint(to, e, ""); err != nil {
				return err
			}
		}
		if reachable {
			n.hints.resetBackoff(to)
		}
		span.Start = append(batch[len(batch)-1].key, 0)
	}
}

type hintEntry struct{ key, value []byte }

// readHints reads up to hintReplayBatch hints of span (copies).
func (n *Node) readHints(span storage.Span) ([]hintEntry, error) {
	it, err := n.db.NewIter(span)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []hintEntry
	for ok := it.First(); ok && len(out) < hintReplayBatch; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		out = append(out, hintEntry{key: slices.Clone(it.Key()), value: slices.Clone(v)})
	}
	return out, it.Error()
}

// deleteHint deletes a delivered hint (dropReason "") or a dropped one.
// The delete is not synced: a hint that reappears after a crash is
// replayed again, which last writer wins makes harmless.
func (n *Node) deleteHint(to uint64, e hintEntry, dropReason string) error {
	b := n.db.NewBatch()
	defer b.Close()
	if err := b.Delete(e.key); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return err
	}
	n.hints.release(to, int64(len(e.key)+len(e.value)))
	if dropReason == "" {
		n.store.cfg.Metrics.HintsDelivered.Inc()
	} else {
		n.store.cfg.Metrics.HintsDropped.WithLabelValues(dropReason).Inc()
	}
	return nil
}

// hintWrite stores a hint for replica to of a write that it failed,
// reporting whether it did (a failure is logged: the write goes on
// without it).
func (n *Node) hintWrite(to, rangeID uint64, key []byte, rec wrn.Record) bool {
	if to == n.store.NodeID() {
		return false // this node's own replica failed: a hint here would fail alike
	}
	if err := n.hints.add(to, rangeID, key, rec, n.runHints); err != nil {
		n.store.logger.Warn("hint not stored", "node", to, "range", rangeID, "err", err)
		return false
	}
	return true
}
