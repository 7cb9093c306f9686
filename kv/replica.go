package kv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// replica is this node's member of one range's Raft group. Only the
// store's goroutine touches it.
type replica struct {
	desc *RangeDescriptor
	log  *raftLog
	rn   *raft.RawNode

	applied uint64
	leader  uint64
	term    uint64
	state   raft.StateType

	// waiters are the clients of proposals made here, by command id.
	waiters map[uint64]chan<- result
	// reads are ReadIndex requests made here, by request id, until the
	// leader confirms them; then they wait in confirmed until applied
	// reaches their index.
	reads     map[uint64]chan<- error
	confirmed []confirmedRead
}

type confirmedRead struct {
	index uint64
	done  chan<- error
}

// newReplica opens the range's Raft log (bootstrapping a new one with the
// descriptor's replicas as founding voters) and starts its core.
func newReplica(s *Store, desc *RangeDescriptor) (*replica, error) {
	log, err := loadRaftLog(s.db, desc.ID)
	if err != nil {
		return nil, err
	}
	applied, err := loadApplied(s.db, desc.ID)
	if err != nil {
		return nil, err
	}
	// A range's founding replicas bootstrap it with the same configuration.
	// Meta is founded only by the node that founds the cluster (in
	// bootstrap); on other nodes it starts empty and learns everything
	// from meta's leader once that adds it.
	if log.lastIndex == 0 && log.hs.IsEmpty() && desc.ID != MetaRangeID {
		if err := bootstrapRange(s.db, log, desc); err != nil {
			return nil, err
		}
		applied = 1
	}
	r := &replica{desc: desc, log: log, applied: applied, waiters: map[uint64]chan<- result{}, reads: map[uint64]chan<- error{}}
	log.snapshot = func() (raft.Snapshot, error) { return s.snapshot(r) }
	cfg := s.cfg.Raft
	cfg.ID = s.nodeID
	cfg.Storage = log
	cfg.Applied = applied
	cfg.Logger = s.raftLogger.With("range", desc.ID)
	cfg.Rand = rand.New(rand.NewPCG(s.rng.Uint64(), desc.ID))
	if r.rn, err = raft.NewRawNode(cfg); err != nil {
		return nil, fmt.Errorf("kv: range %d: %w", desc.ID, err)
	}
	return r, nil
}

// confStateOf is the founding configuration of a range.
func confStateOf(desc *RangeDescriptor) raft.ConfState {
	cs := raft.ConfState{Geometry: desc.Geometry}
	for _, rep := range desc.Replicas {
		cs.Voters = append(cs.Voters, raft.Member{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
	}
	return cs
}

func bootstrapRange(db *storage.DB, log *raftLog, desc *RangeDescriptor) error {
	hs, ents, err := raft.BootstrapState(confStateOf(desc))
	if err != nil {
		return fmt.Errorf("kv: bootstrap range %d: %w", desc.ID, err)
	}
	b := db.NewBatch()
	defer b.Close()
	if err := log.append(b, ents); err != nil {
		return err
	}
	if err := log.setHardState(b, hs); err != nil {
		return err
	}
	// Entry 1 holds only the founding configuration: nothing to apply, and
	// counting it applied lets the core start with its configuration (and
	// a lone voter campaign at once).
	if err := b.Set(storage.AppliedStateKey(desc.ID), appliedState(1)); err != nil {
		return err
	}
	return b.Commit(true)
}

func loadApplied(db *storage.DB, rangeID uint64) (uint64, error) {
	b, err := db.Get(storage.AppliedStateKey(rangeID))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := dec{b: b}
	if d.byte() != codecV1 {
		d.fail("applied state version")
	}
	idx := d.uint()
	return idx, d.done()
}

func appliedState(index uint64) []byte {
	e := enc{b: []byte{codecV1}}
	e.uint(index)
	return e.b
}

// delivery is a result to hand a waiting client once the batch that
// applied it is committed.
type delivery struct {
	to  chan<- result
	res result
}

// apply adds the effects of committed entries to b and returns the
// results for waiting clients. Entries are applied in order; a command
// sees the effects of the ones before it in the same batch through
// pending, since b is not readable until committed.
func (r *replica) apply(s *Store, b *storage.Batch, ents []raft.Entry) ([]delivery, error) {
	var out []delivery
	pending := map[string]*value{}
	for _, e := range ents {
		if e.Index <= r.applied {
			continue // applied before a restart; the log replays it
		}
		if e.Type == raft.EntryNormal && len(e.Data) > 0 {
			cmd, err := decodeCommand(e.Data)
			if err != nil {
				return nil, fmt.Errorf("kv: range %d entry %d: %w", r.desc.ID, e.Index, err)
			}
			res, err := r.applyCommand(s, b, e.Index, &cmd, pending)
			if err != nil {
				return nil, err
			}
			if to, ok := r.waiters[cmd.id]; ok && cmd.id != 0 {
				delete(r.waiters, cmd.id)
				out = append(out, delivery{to, res})
			}
		}
		// Configuration entries take effect in the core at Advance; the
		// applied index covers them like any other entry.
		r.applied = e.Index
	}
	return out, b.Set(storage.AppliedStateKey(r.desc.ID), appliedState(r.applied))
}

// applyCommand applies one command. Errors returned are the node's (a
// disk failure, a corrupt entry); the client's errors are in the result.
func (r *replica) applyCommand(s *Store, b *storage.Batch, index uint64, cmd *command, pending map[string]*value) (result, error) {
	if cmd.op == opCatalog {
		if r.desc.ID != MetaRangeID {
			return result{}, fmt.Errorf("%w: catalog command in range %d", ErrCorrupt, r.desc.ID)
		}
		return s.applyCatalog(b, index, cmd, pending)
	}
	key := storage.DataKey(r.desc.ID, cmd.key)
	cur, ok := pending[string(key)]
	if !ok {
		raw, err := s.db.Get(key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return result{}, err
		default:
			v, err := decodeValue(raw)
			if err != nil {
				return result{}, fmt.Errorf("kv: range %d key %q: %w", r.desc.ID, cmd.key, err)
			}
			cur = &v
		}
	}
	next, res := cmd.apply(r.desc.ID, index, cur)
	if next == cur {
		return res, nil
	}
	pending[string(key)] = next
	if next == nil {
		return res, b.Delete(key)
	}
	return res, b.Set(key, next.encode())
}

// serveReads releases confirmed reads whose index is applied.
func (r *replica) serveReads() {
	sort.Slice(r.confirmed, func(i, j int) bool { return r.confirmed[i].index < r.confirmed[j].index })
	n := 0
	for n < len(r.confirmed) && r.confirmed[n].index <= r.applied {
		r.confirmed[n].done <- nil
		n++
	}
	r.confirmed = r.confirmed[n:]
}

// failAll answers every waiting client: the replica is going away. A
// proposal in the log may still be applied (by this node after a restart,
// or by the others), so its client learns that the outcome is unknown;
// reads only learn that they were not served.
func (r *replica) failAll(err error) {
	for id, to := range r.waiters {
		to <- result{err: fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)}
		delete(r.waiters, id)
	}
	for id, done := range r.reads {
		done <- err
		delete(r.reads, id)
	}
	for _, c := range r.confirmed {
		c.done <- err
	}
	r.confirmed = nil
}
