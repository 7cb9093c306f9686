package records

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/kv/metrics"
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
	Created int64 // physical time of the coordinator, in Unix nanoseconds
	RangeID uint64
	Key     []byte
	Rec     wrn.Record
}

func encodeHint(h hint) []byte {
	e := codec.Enc{Buf: make([]byte, 0, 32+len(h.Key)+len(h.Rec.Value))}
	e.Byte(hintFormatV1)
	e.Uint(uint64(h.Created))
	e.Uint(h.RangeID)
	e.Bytes(h.Key)
	e.Bytes(EncodeRecord(h.Rec))
	return e.Buf
}

// DecodeHint reads what encodeHint wrote. The result aliases b.
func DecodeHint(b []byte) (hint, error) {
	d := codec.Dec{Buf: b}
	if f := d.Byte(); d.Err == nil && f != hintFormatV1 {
		return hint{}, fmt.Errorf("%w: hint format %d", codec.ErrCorrupt, f)
	}
	h := hint{Created: int64(d.Uint()), RangeID: d.Uint(), Key: d.Bytes()}
	raw := d.Bytes()
	if err := d.Done(); err != nil {
		return hint{}, err
	}
	rec, err := DecodeRecord(raw)
	if err != nil {
		return hint{}, err
	}
	h.Rec = rec
	return h, nil
}

func HintTargetName(node uint64) string { return strconv.FormatUint(node, 10) }

// hintTarget is the replay state of one target node.
type hintTarget struct {
	pending   int
	backoff   time.Duration
	retryAt   int64 // Unix nanoseconds; no replay before
	replaying bool  // a replay to it is under way
}

// Hints holds a node's hints: their bounds and the counts kept in
// memory. The node's replay loop (replayHints) sends them.
type Hints struct {
	db       *storage.DB
	Now      func() int64
	metrics  *metrics.Metrics
	maxCount int
	maxBytes int64
	MaxAge   time.Duration
	Interval time.Duration

	mu struct {
		sync.Mutex
		seq     uint64 // the next hint's sequence number
		count   int
		bytes   int64
		targets map[uint64]*hintTarget
	}
}

// HintsConfig is what hints takes from NodeConfig.
type HintsConfig struct {
	PhysicalClock                  func() int64
	MaxHints                       int
	MaxHintBytes                   int64
	MaxHintAge, HintReplayInterval time.Duration
}

func NewHints(db *storage.DB, cfg HintsConfig, metrics *metrics.Metrics) (*Hints, error) {
	h := &Hints{db: db, Now: cfg.PhysicalClock, metrics: metrics, maxCount: cfg.MaxHints, maxBytes: cfg.MaxHintBytes,
		MaxAge: cfg.MaxHintAge, Interval: cfg.HintReplayInterval}
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

func (h *Hints) target(to uint64) *hintTarget {
	t := h.mu.targets[to]
	if t == nil {
		t = &hintTarget{}
		h.mu.targets[to] = t
	}
	return t
}

func (h *Hints) reserveLocked(to uint64, size int64) {
	h.mu.count++
	h.mu.bytes += size
	h.target(to).pending++
	h.metrics.HintsPending.Inc()
}

func (h *Hints) release(to uint64, size int64) {
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

// Claim marks a replay to to under way, unless one is already or to has
// no hints; it reports whether it did.
func (h *Hints) Claim(to uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	if t == nil || t.replaying {
		return false
	}
	t.replaying = true
	return true
}

// Unclaim ends a replay to to.
func (h *Hints) Unclaim(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.mu.targets[to]; t != nil {
		if t.replaying = false; t.pending <= 0 {
			delete(h.mu.targets, to)
		}
	}
}

// Add stores rec, a write of key in range rangeID that node to missed, as
// a hint, durably (the WAL synced: a sloppy write counts it toward W).
func (h *Hints) Add(to, rangeID uint64, key []byte, rec wrn.Record) error {
	v := encodeHint(hint{Created: h.Now(), RangeID: rangeID, Key: key, Rec: rec})
	h.mu.Lock()
	k := storage.HintKey(HintTargetName(to), h.mu.seq)
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
func (h *Hints) PendingTargets() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.mu.targets))
}

// Ready says whether a replay of to's hints may start now (its backoff
// is over).
func (h *Hints) Ready(to uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	return t != nil && h.Now() >= t.retryAt
}

// BackOff delays the next replay to to after a failed one: doubling from
// the replay interval up to maxHintBackoff.
func (h *Hints) BackOff(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.mu.targets[to]
	if t == nil {
		return
	}
	t.backoff = min(max(2*t.backoff, h.Interval), maxHintBackoff)
	t.retryAt = h.Now() + int64(t.backoff)
}

func (h *Hints) ResetBackoff(to uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.mu.targets[to]; t != nil {
		t.backoff, t.retryAt = 0, 0
	}
}

type HintEntry struct{ Key, Value []byte }

// Read reads up to hintReplayBatch hints of span (copies).
func (h *Hints) Read(span storage.Span) ([]HintEntry, error) {
	it, err := h.db.NewIter(span)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []HintEntry
	for ok := it.First(); ok && len(out) < hintReplayBatch; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, err
		}
		out = append(out, HintEntry{Key: slices.Clone(it.Key()), Value: slices.Clone(v)})
	}
	return out, it.Error()
}

// Delete deletes a delivered hint (dropReason "") or a dropped one.
// The delete is not synced: a hint that reappears after a crash is
// replayed again, which last writer wins makes harmless.
func (h *Hints) Delete(to uint64, e HintEntry, dropReason string) error {
	b := h.db.NewBatch()
	defer b.Close()
	if err := b.Delete(e.Key); err != nil {
		return err
	}
	if err := b.Commit(false); err != nil {
		return err
	}
	h.release(to, int64(len(e.Key)+len(e.Value)))
	if dropReason == "" {
		h.metrics.HintsDelivered.Inc()
	} else {
		h.metrics.HintsDropped.WithLabelValues(dropReason).Inc()
	}
	return nil
}
