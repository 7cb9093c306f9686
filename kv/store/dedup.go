package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/invariants"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
)

// Request dedup: exactly-once writes in raft and paxos keyspaces (the Raft
// dissertation's §6.3, with an idempotency key per request in place of a
// session and its sequence numbers).
//
// A client that does not learn the outcome of a write (its connection
// broke, the leader stepped down, a deadline passed) sends it again with
// the same idempotency key. Both attempts may end up in the log, in either
// order: the state machine applies the first one it meets and keeps its
// answer under the key, in the range's replicated state; any later command
// with that key applies nothing and answers the kept answer. So a write is
// applied at most once, whatever the client, the forwarding node or the
// leader change retries, and the retry hears what the first attempt did.
//
// Answers are kept for a window (StoreConfig.DedupWindow) measured by the
// proposers' clocks: the node that proposes a command stamps it with its
// time and a horizon, its time less the window, and a range forgets the
// answers older than the highest horizon it has applied. Everything that
// decides an answer is in the log (the stamps), so every replica decides
// alike whatever its own clock and configuration; the horizon only moves
// forward, so an answer that one replica still holds physically but
// another has deleted is forgotten on both. A retry later than the window
// (or a proposer's clock that far ahead) may apply a write twice: the
// window is minutes, a client retries within seconds.

// Defaults of the dedup window.
const (
	// DefaultDedupWindow is how long a range keeps the answers of writes
	// with an idempotency key. Too short lets a late retry apply a write
	// twice; too long keeps more answers on disk: about 100 bytes each,
	// so 1,000 keyed writes a second keep some 30 MB per node.
	DefaultDedupWindow = 5 * time.Minute
	// dedupHorizonStep rounds horizons down to whole seconds, so that a
	// busy range writes its horizon about once a second rather than with
	// every command.
	dedupHorizonStep = int64(time.Second)
	// dedupGCBatch bounds the expired answers one apply of a range
	// deletes; the next apply goes on.
	dedupGCBatch = 256
)

// dedupFormatV1 is the first byte of an encoded dedup entry.
const dedupFormatV1 byte = 1

// dedupEntry is the answer kept for a write with an idempotency key.
type dedupEntry struct {
	// at is the proposer's time of the command that was applied.
	at  int64
	res command.Result
}

// Kinds of kept errors.
const (
	dedupOK byte = iota
	dedupConditionFailed
)

func (e dedupEntry) Encode() []byte {
	w := codec.Enc{Buf: make([]byte, 0, 32)}
	w.Byte(dedupFormatV1)
	w.Uint(uint64(e.at))
	w.Uint(e.res.Version)
	w.Bool(e.res.Existed)
	switch {
	case e.res.Err == nil:
		w.Byte(dedupOK)
	default:
		// Only a failed condition is an answer the state machine gives
		// (see command.apply); it is kept with its text, which names what
		// the key held.
		w.Byte(dedupConditionFailed)
		w.String(e.res.Err.Error())
	}
	return w.Buf
}

func decodeDedupEntry(b []byte) (dedupEntry, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != dedupFormatV1 {
		d.Fail("dedup entry version")
	}
	e := dedupEntry{at: int64(d.Uint())}
	e.res.Version = d.Uint()
	e.res.Existed = d.Bool()
	switch d.Byte() {
	case dedupOK:
	case dedupConditionFailed:
		e.res.Err = keptError{command.ErrConditionFailed, d.String()}
	default:
		d.Fail("dedup answer kind")
	}
	return e, d.Done()
}

// keptError is an error answered again from a dedup entry: the same text
// as the first time, and the same sentinel.
type keptError struct {
	kind error
	text string
}

func (e keptError) Error() string { return e.text }
func (e keptError) Unwrap() error { return e.kind }

// stampDedup sets the proposer's time and horizon of cmd.
func (s *Store) stampDedup(cmd *command.Command) {
	now := s.Config.Clock()
	cmd.At = now
	if h := now - int64(s.Config.DedupWindow); h > 0 {
		cmd.Horizon = h - h%dedupHorizonStep
	}
}

// dedupState is a replica's request dedup state that it keeps in memory.
type dedupState struct {
	// horizon is the highest horizon applied: answers kept from before it
	// are forgotten.
	horizon int64
	// collected is the horizon up to which expired answers were deleted;
	// below horizon, the next apply deletes more.
	collected int64
	// filter holds the fingerprints of the answers kept within horizon
	// (dedupfilter.go); nil until an apply needs it, which builds it from
	// the disk. A dedupState replaced (snapshot install, merge) starts
	// without one.
	filter *dedupFilter
}

func loadDedupHorizon(db storage.Reader, rangeID uint64) (int64, error) {
	b, err := db.Get(storage.DedupHorizonKey(rangeID))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := codec.Dec{Buf: b}
	h := int64(d.Uint())
	return h, d.Done()
}

func encodeDedupHorizon(h int64) []byte {
	e := codec.Enc{}
	e.Uint(uint64(h))
	return e.Buf
}

// applyBatch is what one apply of a replica has written to its batch and
// not committed yet (the batch cannot be read): values of data keys (nil:
// deleted) and dedup entries by idempotency key.
type applyBatch struct {
	data  map[string]*command.Value
	dedup map[string]dedupEntry
}

func newApplyBatch() *applyBatch {
	return &applyBatch{data: map[string]*command.Value{}, dedup: map[string]dedupEntry{}}
}

// advanceHorizon applies a command's horizon: the range's horizon moves up
// to it, never down.
func (r *replica) advanceHorizon(b *storage.Batch, horizon int64) error {
	if horizon <= r.dedup.horizon {
		return nil
	}
	r.dedup.horizon = horizon
	if r.dedup.filter != nil {
		r.dedup.filter.expire(horizon)
	}
	return b.Set(storage.DedupHorizonKey(r.desc.ID), encodeDedupHorizon(horizon))
}

// keptAnswer returns the answer kept for idempotency key idem, if the range
// has one within its horizon.
func (r *replica) keptAnswer(s *Store, ab *applyBatch, idem []byte) (command.Result, bool, error) {
	if s.Config.Canary.NoDedup {
		return command.Result{}, false, nil
	}
	e, ok := ab.dedup[string(idem)]
	if !ok {
		if r.dedup.filter == nil {
			f, err := loadDedupFilter(s.DB, r.desc.ID, r.dedup.horizon, s.Config.DedupWindow, ab)
			if err != nil {
				return command.Result{}, false, err
			}
			r.dedup.filter = f
		}
		if !r.dedup.filter.mayHold(idem) {
			if invariants.Enabled {
				r.checkNoKeptAnswer(s, idem)
			}
			return command.Result{}, false, nil
		}
		raw, err := s.DB.Get(storage.DedupKey(r.desc.ID, idem))
		if errors.Is(err, storage.ErrNotFound) {
			return command.Result{}, false, nil
		}
		if err != nil {
			return command.Result{}, false, err
		}
		if e, err = decodeDedupEntry(raw); err != nil {
			return command.Result{}, false, fmt.Errorf("kv: range %d dedup entry %q: %w", r.desc.ID, command.Abbreviate(idem), err)
		}
	}
	if e.at < r.dedup.horizon {
		return command.Result{}, false, nil // forgotten
	}
	return e.res, true, nil
}

// checkNoKeptAnswer panics if the disk keeps an answer within the
// horizon for idem, which the filter said it does not (an invariant check:
// see dedupfilter.go for what the filter promises).
func (r *replica) checkNoKeptAnswer(s *Store, idem []byte) {
	raw, err := s.DB.Get(storage.DedupKey(r.desc.ID, idem))
	if err != nil {
		return // not found, or the read failed (the apply's reads will say)
	}
	if e, err := decodeDedupEntry(raw); err == nil && e.at >= r.dedup.horizon {
		panic(fmt.Sprintf("kv: range %d: the dedup filter misses the answer kept for %q at %d (horizon %d)",
			r.desc.ID, command.Abbreviate(idem), e.at, r.dedup.horizon))
	}
}

// keepAnswer keeps res as the answer to the command with idempotency key
// idem, proposed at at.
func (r *replica) keepAnswer(b *storage.Batch, ab *applyBatch, idem []byte, at int64, res command.Result) error {
	e := dedupEntry{at: at, res: res}
	ab.dedup[string(idem)] = e
	if r.dedup.filter != nil {
		r.dedup.filter.add(idem, at)
	}
	if err := b.Set(storage.DedupKey(r.desc.ID, idem), e.Encode()); err != nil {
		return err
	}
	return b.Set(storage.DedupExpiryKey(r.desc.ID, uint64(max(at, 0)), idem), nil)
}

// collectAnswers deletes up to dedupGCBatch answers older than the
// horizon, oldest first, once the horizon has moved since the last time.
// Which ones it deletes may differ between replicas (an answer kept in this
// very batch is not visible here): it does not matter, since no replica
// uses an answer older than the horizon.
func (r *replica) collectAnswers(s *Store, b *storage.Batch, ab *applyBatch) error {
	if r.dedup.collected >= r.dedup.horizon {
		return nil
	}
	it, err := s.DB.NewIter(storage.DedupExpirySpan(r.desc.ID, uint64(r.dedup.horizon)))
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok && n < dedupGCBatch; ok = it.Next() {
		at, idem, err := storage.DecodeDedupExpiryKey(it.Key())
		if err != nil {
			return err
		}
		if err := b.Delete(it.Key()); err != nil {
			return err
		}
		n++
		if _, rewritten := ab.dedup[string(idem)]; rewritten {
			continue // kept again in this batch, under a newer time
		}
		key := storage.DedupKey(r.desc.ID, idem)
		raw, err := s.DB.Get(key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		e, err := decodeDedupEntry(raw)
		if err != nil {
			return fmt.Errorf("kv: range %d dedup entry %q: %w", r.desc.ID, command.Abbreviate(idem), err)
		}
		if uint64(max(e.at, 0)) == at {
			if err := b.Delete(key); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if n < dedupGCBatch {
		r.dedup.collected = r.dedup.horizon
	}
	return nil
}
