package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// A request forwarded to a leader that is down, paused, or cut off by a
// partition waits out its attempt's timeout there (kv/server's
// forwardAttemptTimeout, 2 s), while the range's other replicas elect a
// new leader within an election timeout. The fault suite measured it
// (e2e/faults, partition-leader): writes resumed up to 3.2 s after the
// leader was cut off, a follower having forwarded them to it in the
// meantime.
//
// Every store sends a beacon to every peer node on every tick
// (quiesce.go), so a node not heard from for a few ticks is not serving:
// the API does not forward to it (Silent), and waits for a leader it can
// reach instead. This only chooses where a request goes, and when: a
// request not sent changes nothing, and a false "silent" (a loop stalled
// by a slow sync, say) costs one backoff.

// silentTicks is how many ticks a peer node may go unheard before it is
// silent: beacons come every tick, and a loop may be busy for a tick or
// two (a slow sync, a large batch). Too low sends requests around a
// healthy but busy leader (one backoff each); too high leaves them on a
// dead one for that long.
const silentTicks = 5

// heardState publishes the loop's record of when each peer node was last
// heard from (quiesceState.heard) to the API's goroutines.
type heardState struct {
	ticks atomic.Int64 // quiesceState.ticks
	at    sync.Map     // node ID -> *atomic.Int64, the tick it was last heard at
}

// heardFrom records that node id was heard from at tick now. Loop only
// (the loop is the only writer).
func (h *heardState) heardFrom(id uint64, now int64) {
	v, ok := h.at.Load(id)
	if !ok {
		v, _ = h.at.LoadOrStore(id, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(now)
}

// heardThisTick reports whether node id was heard from at the current
// tick already. Loop only.
func (s *Store) heardThisTick(id uint64) bool {
	at, ok := s.Quiesce.heard[id]
	return ok && at == s.Quiesce.ticks
}

// Silent reports whether node id has not been heard from (a beacon or any
// message) for more than silentTicks of this store's ticks; a node never
// heard from is silent once an election timeout has passed since the
// store started. Safe for concurrent use.
func (s *Store) Silent(id uint64) bool {
	now := s.heard.ticks.Load()
	v, ok := s.heard.at.Load(id)
	if !ok {
		return now > int64(s.electionTicks())
	}
	return now-v.(*atomic.Int64).Load() > silentTicks
}

// SilentAfter is how long a node may go unheard before it is silent, at
// this store's tick: for messages.
func (s *Store) SilentAfter() time.Duration { return silentTicks * s.Config.TickInterval }
