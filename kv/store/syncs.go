package store

import (
	"github.com/quorumkv/quorumkv/kv/consensus"
)

// Rounds that do not wait for their sync.
//
// A round that must sync (a replica appended entries, or changed its term
// or vote) used to wait in the loop for its WAL sync, a millisecond or
// more under load, before anything else could happen on the node. When
// every replica that needs the sync is a raft range (consensus.AsyncCore)
// and other work waits for the loop, the round instead commits its batch without the sync, sends its eager
// messages, applies and answers its clients, advances its cores with
// AdvanceWritten, and goes on; its other messages (votes,
// acknowledgements: what counts on this node's copy) wait in s.syncs.held
// until a sync covers the round. Then they are sent, in the rounds'
// order, and each core hears Synced: only then does a leader count its
// own copy of the round's entries toward a commit, so a commit still
// needs a phase-2 quorum of durable copies.
//
// Applying before the sync is safe: a committed entry is durable on a
// phase-2 quorum already, and the apply's batch is committed after the
// round's, so a crash that loses the round's log writes (the WAL is one
// sequential file) loses the apply's too.
//
// A store of its own goroutine still waits in the loop when nothing
// else does: no peer message queued and no round held (canSyncLater).
// Handing the sync to another goroutine and back costs two wake-ups,
// which a lone client's every write would pay.
//
// One sync is under way at a time. It covers the rounds held when it
// started; the rounds held since wait for the next. A round that cannot
// wait (a snapshot to install, a paxos range's promise or entries, the
// WaitForSyncs setting) syncs in the loop as before, which makes every
// held round durable too: they are released first.
//
// A store of its own goroutine (OpenStore) syncs on another goroutine; a
// driven one (OpenDriven) only with StoreConfig.StartSync, its caller
// calling FinishSync later (the simulator, at a time of its choosing);
// without it, every round syncs in the loop.

// heldRound is what one round holds back until a sync covers it.
type heldRound struct {
	seq     uint64
	sends   []heldSend
	written []heldWritten
}

type heldSend struct {
	r    *replica
	msgs []consensus.PeerMessage
}

type heldWritten struct {
	r *replica
	w consensus.Written
}

// syncState is the loop's part of asynchronous syncs.
type syncState struct {
	held []*heldRound
	// next numbers held rounds; covered is the last number the sync under
	// way covers, inFlight whether there is one.
	next, covered uint64
	inFlight      bool
	// req asks the syncer goroutine for a sync, done carries its result
	// (OpenStore; capacity 1 each: one sync at a time); exited is closed
	// when the goroutine has returned.
	req    chan struct{}
	done   chan error
	exited chan struct{}
}

// canSyncLater reports whether the round of ready, which must sync, may
// go on without waiting for it.
func (s *Store) canSyncLater(ready []readyReplica) bool {
	if s.Config.WaitForSyncs || s.Config.Canary.AckBeforeSync || (s.driven && s.Config.StartSync == nil) {
		return false
	}
	if !s.driven && len(s.incoming) == 0 && len(s.syncs.held) == 0 {
		// Nothing waits for the loop: waiting here for the sync costs
		// nothing, and saves the syncer's round trip (two goroutine
		// wake-ups) on the way to the answer.
		return false
	}
	for _, x := range ready {
		if x.rd.Snapshot != nil {
			return false
		}
		if _, ok := x.r.Core.(consensus.AsyncCore); x.rd.MustSync && !ok {
			return false
		}
	}
	return true
}

// hold keeps a round's late messages until a sync covers it, and returns
// the round for its cores' AdvanceWritten.
func (s *Store) hold(ready []readyReplica, late func(*consensus.Ready) []consensus.PeerMessage) *heldRound {
	s.syncs.next++
	h := &heldRound{seq: s.syncs.next}
	for _, x := range ready {
		if msgs := late(&x.rd); len(msgs) > 0 {
			h.sends = append(h.sends, heldSend{x.r, msgs})
		}
	}
	s.syncs.held = append(s.syncs.held, h)
	return h
}

// startSync starts a sync of what the held rounds wrote, unless one is
// under way (it starts again when that one returns).
func (s *Store) startSync() {
	if s.syncs.inFlight || len(s.syncs.held) == 0 {
		return
	}
	s.syncs.inFlight = true
	s.syncs.covered = s.syncs.held[len(s.syncs.held)-1].seq
	if s.Config.StartSync != nil {
		s.Config.StartSync()
		return
	}
	s.syncs.req <- struct{}{}
}

// FinishSync syncs the WAL for the sync StoreConfig.StartSync asked for
// and releases the rounds it covers; with none under way it does
// nothing. Loop only (a driven store's caller).
func (s *Store) FinishSync() error {
	if !s.syncs.inFlight {
		return nil
	}
	return s.synced(s.DB.SyncWAL())
}

// synced ends the sync under way: err is its result.
func (s *Store) synced(err error) error {
	if err != nil {
		return err
	}
	s.syncs.inFlight = false
	n := 0
	for n < len(s.syncs.held) && s.syncs.held[n].seq <= s.syncs.covered {
		n++
	}
	s.release(n)
	s.startSync()
	return nil
}

// release sends what the first n held rounds held back and tells their
// cores that their writes are durable, round after round. A replica gone
// since sends nothing. A core told may commit now (a leader's own copy
// counted): the loop gets another round at once.
func (s *Store) release(n int) {
	if n > 0 {
		select {
		case s.again <- struct{}{}:
		default: // a round is due already
		}
	}
	for _, h := range s.syncs.held[:n] {
		for _, x := range h.sends {
			if s.running(x.r) && s.transport != nil {
				for _, m := range x.msgs {
					s.transport.Send(x.r.desc.ID, m)
				}
			}
		}
		for _, x := range h.written {
			if s.running(x.r) {
				x.r.Core.(consensus.AsyncCore).Synced(x.w)
			}
		}
	}
	clear(s.syncs.held[:n])
	s.syncs.held = s.syncs.held[n:]
}

// runSyncer syncs the WAL whenever the loop asks, until the store stops
// (OpenStore).
func (s *Store) runSyncer() {
	defer close(s.syncs.exited)
	for {
		select {
		case <-s.syncs.req:
			err := s.DB.SyncWAL()
			select {
			case s.syncs.done <- err:
			case <-s.stop:
				return
			}
		case <-s.stop:
			return
		}
	}
}
