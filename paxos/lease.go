package paxos

import (
	"slices"

	"github.com/quorumkv/quorumkv/quorum"
)

// Read leases (Config.ReadLease).
//
// Without a lease a leader confirms each batch of reads with a round of
// heartbeats that a phase-2 quorum of every governing configuration
// acknowledges at its ballot (read.go). With one it skips the round: it
// serves a read at once if such a quorum acknowledged a round it sent at
// its tick s, and its tick is still below s + leaseTicks, where
// leaseTicks = ElectionTicks - 2 (as Raft's). Its own acceptor counts as
// acknowledging every round it sends.
//
// Why no rival can have chosen anything the read would miss. A rival
// ballot needs a phase-1 quorum, which meets the quorum that acknowledged
// round s; the acceptor in both promised the rival after it acknowledged
// s (before, it would have refused the heartbeat of the lower ballot). An
// acceptor keeps this promise to the leader it acknowledges:
//
//  1. Having admitted an Accept, heartbeat or snapshot of leader L at its
//     tick t, it grants no Prepare of another proposer before its tick
//     t + ElectionTicks (deferToLeader), whatever role it takes: as a
//     follower it counts electionElapsed from the admission; it becomes
//     a candidate only once electionElapsed reaches its timeout, drawn
//     from [ElectionTicks, 2*ElectionTicks), or when Campaign is called,
//     which waits for the window to end, or on a transfer (3); a leader
//     grants no Prepare at all. A Prepare at the ballot it has already
//     promised (a duplicate) is answered but changes nothing: it does not
//     forget the leader it defers to.
//  2. After a restart it no longer knows whom it acknowledged. If it had
//     promised any ballot before, it grants no Prepare until it has
//     counted ElectionTicks since it started (Raft's `r.ticks <
//     r.electionTimeout`). One that never promised anything never
//     acknowledged anything either: admitting a message raises the
//     promise, which is persisted before the acknowledgement is sent.
//  3. A transfer's Prepare (MsgTimeoutNow) passes the deferral only if it
//     names, in Hint, the very ballot the acceptor has promised: the
//     leader that asked for it, which ended its own lease when it asked
//     (below). A transfer asked by a deposed leader is deferred like any
//     Prepare: its target's ballot may be above a newer leader's, whose
//     lease it must not break.
//
// So the rival's phase 1 completes after that acceptor's tick t +
// ElectionTicks, at least ElectionTicks - 1 of its ticks after the
// leader's tick s (t comes no earlier than the round, and the acceptor's
// tick t began up to one tick before). The leader serves reads only
// before its tick s + ElectionTicks - 2: one tick earlier still, which
// covers its ticks running slower than the acceptor's by up to one tick
// per election timeout (10% with the default of 10). The rival's slots
// then come after every read served from the lease, and the read index
// (the last slot filled, as in read.go) covers every write acknowledged
// before the read, the ones taken over in phase 1 included.
//
// What it trusts: clock rates within that margin, and a host that ticks
// every node by a monotonic clock and never lets a leader's ticks fall
// behind it (kv/store/clock.go). What ends a lease early:
//
//   - a new ballot: a lease belongs to the leader state of one ballot, and
//     a new leader has none until a round it sent is acknowledged;
//   - a transfer (TransferLeader) ends it for the rest of the ballot: the
//     target's Prepares pass the deferral, and one may reach an acceptor
//     late, after it acknowledged any later round;
//   - ForgetLease: the host stopped ticking the leader (quiescence), so
//     its ticks no longer follow time; only rounds sent afterwards count.
type lease struct {
	// seq is the last heartbeat round sent in this ballot.
	seq uint64
	// sentAt holds, for each leader tick of the last election timeout in
	// which rounds were sent, the first round sent in it, ascending: at
	// most ElectionTicks+1 entries however many rounds go out.
	sentAt []roundSent
	// acked is the highest round each acceptor acknowledged.
	acked map[uint64]uint64
	// ackedAt is the leader tick each acceptor's highest acknowledgement
	// arrived at, for the canary leaseFromAck only.
	ackedAt map[uint64]int
	// ended: a transfer began in this ballot; no lease until it ends.
	ended bool
}

type roundSent struct {
	seq  uint64
	tick int
}

// leaseTicks is how long a lease lasts from the round that renewed it.
func (c Config) leaseTicks() int { return c.ElectionTicks - 2 }

// newRound starts heartbeat round seq+1 at leader tick now and forgets
// the rounds sent more than electionTicks ago (no lease comes of them).
func (ls *lease) newRound(now, electionTicks int) uint64 {
	ls.seq++
	if n := len(ls.sentAt); n == 0 || ls.sentAt[n-1].tick != now {
		ls.sentAt = append(ls.sentAt, roundSent{seq: ls.seq, tick: now})
	}
	old := 0
	for old < len(ls.sentAt)-1 && ls.sentAt[old].tick+electionTicks < now {
		old++
	}
	ls.sentAt = ls.sentAt[old:]
	return ls.seq
}

// sentTick returns the tick round seq was sent at, if still known: that
// of the last entry at or below seq (the rounds after an entry's, up to
// the next entry's, went out in the same tick).
func (ls *lease) sentTick(seq uint64) (int, bool) {
	i, found := slices.BinarySearchFunc(ls.sentAt, seq, func(r roundSent, s uint64) int {
		switch {
		case r.seq < s:
			return -1
		case r.seq > s:
			return 1
		}
		return 0
	})
	if !found {
		i-- // the entry before the insertion point
	}
	if i < 0 || seq == 0 {
		return 0, false
	}
	return ls.sentAt[i].tick, true
}

// ack records that acceptor from acknowledged round seq at leader tick
// now.
func (ls *lease) ack(from, seq uint64, now int) {
	if seq <= ls.acked[from] {
		return
	}
	ls.acked[from] = seq
	if ls.ackedAt != nil {
		ls.ackedAt[from] = now
	}
}

// forget stops the rounds sent so far from vouching for a lease.
func (ls *lease) forget() { ls.sentAt = nil }

// leaseValid reports whether this leader may serve a read now without a
// round: a phase-2 quorum of every governing configuration acknowledged a
// round it sent less than leaseTicks ago, in this ballot, and no transfer
// began since it took office.
func (r *RawNode) leaseValid() bool {
	l := r.lead
	if !r.cfg.ReadLease || l.lease.ended {
		return false
	}
	if r.cfg.canary.leaseFromAck {
		// canary: each acknowledgement counts from when it arrived.
		return r.governing().IsQuorum(quorum.Phase2, func(id uint64) bool {
			at, ok := l.lease.ackedAt[id]
			return id == r.id || (ok && l.now-at < r.cfg.leaseTicks())
		})
	}
	seq := r.governing().QuorumIndex(quorum.Phase2, func(id uint64) uint64 {
		if id == r.id {
			return l.lease.seq
		}
		return l.lease.acked[id]
	})
	sent, ok := l.lease.sentTick(seq)
	return ok && l.now-sent < r.cfg.leaseTicks()
}

// bound reports whether this acceptor has promised not to grant a Prepare
// of proposer from (rules 1 and 2 above): it heard a live leader other
// than from within ElectionTicks or, with leases on, it restarted less
// than ElectionTicks ago with a promise made before. The first is a
// liveness rule without leases (a node that was cut off does not depose a
// working leader) and a safety rule with them.
func (r *RawNode) bound(from uint64) bool {
	if r.cfg.ReadLease && r.cfg.canary.ignoreLeaseWindow {
		return false // canary: the acceptor promises nothing
	}
	if r.cfg.ReadLease && r.startGuard && r.startTicks < r.cfg.ElectionTicks {
		return true
	}
	return r.leader != 0 && r.leader != from && r.electionElapsed < r.cfg.ElectionTicks
}
