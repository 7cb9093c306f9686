package store

import (
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// Ticks follow time.
//
// The cores count time in ticks, and a leader's read lease is a count of
// its ticks (raft.ReadOnlyLeaseBased, paxos.Config.ReadLease): it serves
// reads without a round while fewer than ElectionTicks-2 of its ticks have
// passed since a round a phase-2 quorum acknowledged, trusting that each
// follower (acceptor) of that quorum refuses votes (Prepares) for
// ElectionTicks of its own ticks. That holds only
// if a leader's ticks never fall behind time: a time.Ticker drops the
// ticks it fires while the loop is busy (a long fsync, a GC pause, a
// process stopped with SIGSTOP), and a leader that missed ticks would count
// its lease long after its followers had stopped honouring it.
//
// So the loop does not count ticker events: before it handles any event,
// keepTime ticks every awake core as many times as TickInterval fits into
// the time since the loop started, less the ticks already given. A core's
// ticks are then never more than one TickInterval behind time when it
// looks at its lease, and never ahead of it, so a follower never counts an
// election timeout early.
//
// The timeline the lease relies on, with I = TickInterval and E =
// ElectionTicks (kv's defaults: 100 ms and 10). keepTime, run at time t
// before an event, leaves every core at tick floor((t - start) / I):
//
// (Each node counts from its own start.)
//
//  1. The leader sends heartbeat round s at time t0, at its tick k, so
//     k*I <= t0 - start.
//  2. A follower handles it at t1 >= t0, at its tick j > (t1-start)/I - 1,
//     and resets its election clock: it refuses votes until its tick is
//     j+E, which keepTime gives it no earlier than start + (j+E)*I, that
//     is after t1 + (E-1)*I >= t0 + (E-1)*I.
//  3. The leader serves reads from round s while its tick is below
//     k+E-2, so only for events that began before start + (k+E-2)*I <=
//     t0 + (E-2)*I: one tick before the follower may vote, less the time
//     the loop spends on one event before it looks at the lease.
//
// A clock that runs faster on the leader than on a follower eats that
// margin; Go's monotonic clock on one machine drifts by parts per million.
// A quiesced leader is not ticked, so quiescing ends its lease
// (consensus.Core.ForgetLease).

// maxCatchUpTicks bounds the ticks keepTime gives every core at once
// after the loop fell behind: twice the longest election timeout, Raft's
// or Multi-Paxos's, after which every lease has ended and every follower
// may campaign, so more ticks change nothing but the work.
func (s *Store) maxCatchUpTicks() int64 {
	return 2*int64(max(s.electionTicks(), s.Config.Paxos.WithDefaults().ElectionTicks)) + 1
}

// keepTime ticks the store as many times as are due by now (see above).
// Loop only.
func (s *Store) keepTime() {
	due := int64(s.clock.elapsed() / s.Config.TickInterval)
	n := due - s.clock.ticks
	if n <= 0 {
		return
	}
	s.clock.ticks = due
	s.tick(int(min(n, s.maxCatchUpTicks())))
}

// clockState is keepTime's bookkeeping, owned by the loop.
type clockState struct {
	// start is when the loop started; ticks are the ticks given since.
	start time.Time
	ticks int64
	// since, if set, replaces time.Since(start) (tests).
	since func() time.Duration
}

func (c *clockState) elapsed() time.Duration {
	if c.since != nil {
		return c.since()
	}
	return time.Since(c.start)
}

// readLease reports whether the range serves reads from its leader's
// lease: a raft or paxos range of a keyspace that has them (not meta,
// whose reads are rare and whose correctness everything else depends
// on).
func (s *Store) readLease(desc *catalog.RangeDescriptor) bool {
	if desc.ID == catalog.MetaRangeID || s.cat == nil {
		return false
	}
	ks, ok := s.cat.Keyspaces[desc.Keyspace]
	return ok && ks.ReadLease()
}
