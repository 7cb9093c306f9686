package eventual

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/records"

	"github.com/quorumkv/quorumkv/kv/metrics"

	"github.com/quorumkv/quorumkv/kv/internal/codec"

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
	e := codec.Enc{Buf: make([]byte, 0, 32+len(h.key)+len(h.rec.Value))}
	e.Byte(hintFormatV1)
	e.Uint(uint64(h.created))
	e.Uint(h.rangeID)
	e.Bytes(h.key)
	e.Bytes(records.EncodeRecord(h.rec))
	return e.Buf
}

// decodeHint reads what encodeHint wrote. The result aliases b.
func decodeHint(b []byte) (hint, error) {
	d := codec.Dec{Buf: b}
	if f := d.Byte(); d.Err == nil && f != hintFormatV1 {
		return hint{}, fmt.Errorf("%w: hint format %d", codec.ErrCorrupt, f)
	}
	h := hint{created: int64(d.Uint()), rangeID: d.Uint(), key: d.Bytes()}
	raw := d.Bytes()
	if err := d.Done(); err != nil {
		return hint{}, err
	}
	rec, err := records.DecodeRecord(raw)
	if err != nil {
		return hint{}, err
	}
	h.rec = rec
	return h, nil
}

func hintTargetName(node uint64) string { return strconv.FormatUint(node, 10) }

// hintTarget is the replay state of one target node.
type hintTarget struct {
	pending   int
	backoff   time.Duration
	retryAt   int64 // Unix nanoseconds; no replay before
	replaying bool  // a replay to it is under way
}

// hints holds a node's hints: their bounds and the counts kept in
// memory. The node's replay loop (replayHints) sends them.
type hints struct {
	db       *storage.DB
	now      func() int64
	metrics  *metrics.Metrics
	maxCount int
	maxBytes int64
	maxAge   time.Duration
	Interval time.Duration

	mu struct {
		sync.Mutex
		seq     uint64 // the next hint's sequence number
		count   int
		bytes   int64
		targets map[uint64]*hintTarget
	}
}

// hintsConfig is what hints takes from NodeConfig.
type hintsConfig struct {
	PhysicalClock                  func() int64
	MaxHints                       int
	MaxHintBytes                   int64
	MaxHintAge, HintReplayInterval time.Duration
}

func newHints(db *storage.DB, cfg hintsConfig, metrics *metrics.Metrics) (*hints, error) {
	h := &hints{db: db, now: cfg.PhysicalClock, metrics: metrics, maxCount: cfg.MaxHints, maxBytes: cfg.MaxHintBytes,
		maxAge: cfg.MaxHintAge, Interval: cfg.HintReplayInterval}
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
			return nil, fmt.Errorf("%w: hint target %q", codec.ErrCorrupt, name)
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
		if t.pending--; t.pending <= 0 && !t.replaying {
			delete(h.mu.targets, to)
		}
	}
	h.metrics.HintsPending.Dec()
}

// claim marks a replay to to under way, unless one is already or to has
// no hints; it reports whether it did.
func (h *hints) claim(to uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	if t == nil || t.replaying {
		return false
	}
	t.replaying = true
	return true
}

// unclaim ends a replay to to.
func (h *hints) unclaim(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.mu.targets[to]; t != nil {
		if t.replaying = false; t.pending <= 0 {
			delete(h.mu.targets, to)
		}
	}
}

// add stores rec, a write of key in range rangeID that node to missed, as
// a hint, durably (the WAL synced: a sloppy write counts it toward W).
func (h *hints) add(to, rangeID uint64, key []byte, rec wrn.Record) error {
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
	return nil
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
	t.backoff = min(max(2*t.backoff, h.Interval), maxHintBackoff)
	t.retryAt = h.now() + int64(t.backoff)
}

func (h *hints) resetBackoff(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.mu.targets[to]; t != nil {
		t.backoff, t.retryAt = 0, 0
	}
}

// replayHints is one step of the replay loop, which runs every replay
// interval: each target not replayed to already gets a replay, which
// drops its expired hints and, if the target is alive and past its
// backoff, sends it the others (hintReplay).
func (c *Coordinator) ReplayHints() {
	for _, to := range c.Hints.pendingTargets() {
		if c.Hints.claim(to) {
			r := &hintReplay{n: c, to: to, span: storage.HintSpan(hintTargetName(to)), reachable: c.targetReachable(to)}
			r.next()
		}
	}
}

// targetReachable says whether gossip sees node to alive and its backoff
// is over. A node the catalog no longer knows is never reachable: its
// hints expire.
func (c *Coordinator) targetReachable(to uint64) bool {
	nd, ok := c.store.Catalog().Nodes[to]
	return ok && c.alive(nd) && c.Hints.ready(to)
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
	batch     []hintEntry // read, not replayed yet
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
			batch, err := n.readHints(r.span)
			if err != nil || len(batch) == 0 {
				r.end(err)
				return
			}
			r.batch = batch
			r.span.Start = append(slices.Clone(batch[len(batch)-1].key), 0)
		}
		e := r.batch[0]
		r.batch = r.batch[1:]
		h, err := decodeHint(e.value)
		if err != nil {
			n.store.Logger.Error("dropping a corrupt hint", "node", r.to, "err", err)
			if err := n.deleteHint(r.to, e, "corrupt"); err != nil {
				r.end(err)
				return
			}
			continue
		}
		// A hint is as old as the older of its creation and its record's
		// version: an old version re-written later (a compare-and-swap
		// finishing another's write) must not outlive the window either,
		// for the tombstone purge relies on it (antientropy.go).
		if time.Duration(n.Hints.now()-min(h.created, h.rec.Version.Timestamp.WallTime)) > n.Hints.maxAge {
			if err := n.deleteHint(r.to, e, "expired"); err != nil {
				r.end(err)
				return
			}
			continue
		}
		if !r.reachable {
			r.end(nil) // the rest is younger: nothing else expired
			return
		}
		n.net.Call(r.to, ReplicaRequest{Kind: ReqWrite, RangeID: h.rangeID, Key: h.key, Rec: h.rec}, func(a ReplicaAnswer) {
			if a.Err != nil {
				n.Hints.backOff(r.to)
				r.end(a.Err)
				return
			}
			if err := n.deleteHint(r.to, e, ""); err != nil {
				r.end(err)
				return
			}
			n.Hints.resetBackoff(r.to)
			r.next()
		})
		return
	}
}

func (r *hintReplay) end(err error) {
	if err != nil {
		r.n.store.Logger.Debug("hint replay stopped", "node", r.to, "err", err)
	}
	r.n.Hints.unclaim(r.to)
}

type hintEntry struct{ key, value []byte }

// readHints reads up to hintReplayBatch hints of span (copies).
func (c *Coordinator) readHints(span storage.Span) ([]hintEntry, error) {
	it, err := c.db.NewIter(span)
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
func (c *Coordinator) deleteHint(to uint64, e hintEntry, dropReason string) error {
	b := c.db.NewBatch()
	defer b.Close()
	if err := b.Delete(e.key); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return err
	}
	c.Hints.release(to, int64(len(e.key)+len(e.value)))
	if dropReason == "" {
		c.store.Cfg.Metrics.HintsDelivered.Inc()
	} else {
		c.store.Cfg.Metrics.HintsDropped.WithLabelValues(dropReason).Inc()
	}
	return nil
}

// hintWrite stores a hint for replica to of a write that it failed,
// reporting whether it did (a failure is logged: the write goes on
// without it).
func (c *Coordinator) hintWrite(to, rangeID uint64, key []byte, rec wrn.Record) bool {
	if to == c.store.NodeID() {
		return false // this node's own replica failed: a hint here would fail alike
	}
	if err := c.Hints.add(to, rangeID, key, rec); err != nil {
		c.store.Logger.Warn("hint not stored", "node", to, "range", rangeID, "err", err)
		return false
	}
	return true
}
