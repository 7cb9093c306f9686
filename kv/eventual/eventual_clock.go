package eventual

import (
	"fmt"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/wrn"
)

// Clocks of eventual keyspaces. A version is a hybrid logical clock
// reading of its coordinator, and last writer wins orders writes by
// version: that order agrees with real time only as far as the clocks
// agree. The HLC assumes every physical clock within clockMaxOffset of
// the others; a clock beyond it would stamp versions that override writes
// made after them (a clock ahead) or lose to writes made before them (a
// clock behind), and would let two compare-and-swaps of one key both win.
// Three rules keep such a clock from writing:
//
//  1. A replica refuses a record, and an acceptor a compare-and-swap
//     proposal, whose version is more than clockMaxOffset ahead of its own
//     physical clock (checkVersionClock): a definite refusal, with an
//     error naming the offset and the bound, counted in
//     quorumkv_wrn_clock_offset_refusals_total{by="replica"}.
//  2. A coordinator's own replica reads the coordinator's clock, so it
//     cannot see that clock ahead. A coordinator therefore sends a write
//     to its own replica (and a proposal to its own acceptor) only after
//     another replica accepted the version, unless its clock is trusted
//     (clockGuard): another replica accepted one of its versions within
//     clockTrustWindow, and its versions have not run ahead of its
//     monotonic clock by more than clockJumpTolerance since (its clock was
//     not stepped forward, nor its HLC pushed ahead). A coordinator whose
//     clock is ahead thus stores nothing anywhere, no hint either: its
//     write fails with the replicas' errors.
//  3. A coordinator that read a version more than clockMaxOffset ahead of
//     its physical clock (its clock is behind) refuses to coordinate
//     writes while that version is still that far ahead (clockGuard.behind):
//     its versions would order before writes made before them. So does a
//     coordinator whose clock was stepped back that far behind versions
//     it stamped itself (clockGuard.runAhead): its own replica would
//     refuse them. A compare-and-swap refuses too when the clock cannot
//     move past the key's current version: a swap's new version is always
//     greater than the version it replaces.
//
// Rule 3 sees only versions that some replica stored, which rule 1 bounds
// by that replica's clock; a refused version (possibly from a coordinator
// whose clock is ahead) never makes a node think its own clock behind.

const (
	// ClockTrustWindow is how long a coordinator's clock stays trusted
	// after another replica accepted one of its versions (rule 2). Too
	// low delays writes on an idle node behind one round trip to another
	// replica; too high lets a clock that drifted (rather than jumped) by
	// more than clockJumpTolerance write on its own replica for longer.
	ClockTrustWindow = time.Second
	// clockJumpTolerance is how far the physical clock may gain on the
	// monotonic one while trusted: NTP slews by at most 500 ppm, so this
	// only catches steps. Too low distrusts a clock over scheduling noise
	// (a round trip more per write); too high lets a stepped clock stamp
	// versions up to that much more ahead on its own replica.
	clockJumpTolerance = 50 * time.Millisecond
	// ClockFenceMax bounds rule 3: a version seen further ahead than this
	// is taken for a corrupt one (logged), not for proof that this node's
	// clock is behind, so that one bad version cannot stop a node's writes
	// for longer.
	ClockFenceMax = time.Minute
)

// ClockReading is a version's wall time and the monotonic clock read when
// it was stamped.
type ClockReading struct {
	Wall int64 // nanoseconds since the Unix epoch
	Mono time.Duration
}

// clockGuard keeps what a node knows about its own clock (rules 2 and 3).
// It is safe for concurrent use.
type clockGuard struct {
	physical func() int64
	mono     func() time.Duration
	mu       struct {
		sync.Mutex
		// confirmed: another replica accepted the version stamped at
		// reading last, so its clock was then at least last.wall minus
		// the maximum offset.
		confirmed bool
		last      ClockReading
		// ahead is the wall time of the newest version seen more than
		// clockMaxOffset ahead of the physical clock (0: none).
		ahead int64
	}
}

func NewClockGuard(physical func() int64, mono func() time.Duration) *clockGuard {
	if mono == nil {
		start := time.Now()
		mono = func() time.Duration { return time.Since(start) } // monotonic: Go's time.Since reads the monotonic clock
	}
	return &clockGuard{physical: physical, mono: mono}
}

// Reading pairs the wall time of a version stamped now with the
// monotonic clock.
func (g *clockGuard) Reading(wall int64) ClockReading {
	return ClockReading{Wall: wall, Mono: g.mono()}
}

// Trusted says whether a version stamped at reading r may go to this
// node's own replica before another replica accepted it (rule 2): a
// version was confirmed within clockTrustWindow, and r's is no further
// past it than the monotonic time elapsed since, give or take
// clockJumpTolerance. Another replica's clock then reads at least r.wall
// minus the maximum offset and the tolerance.
func (g *clockGuard) Trusted(r ClockReading) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.confirmed {
		return false
	}
	elapsed := r.Mono - g.mu.last.Mono
	gained := time.Duration(r.Wall-g.mu.last.Wall) - elapsed
	return elapsed <= ClockTrustWindow && gained <= clockJumpTolerance
}

// Confirm records that another replica accepted the version stamped at
// reading r.
func (g *clockGuard) Confirm(r ClockReading) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.confirmed || g.mu.last.Mono <= r.Mono {
		g.mu.confirmed, g.mu.last = true, r
	}
}

// SawAhead records a stored version whose wall time is more than
// clockMaxOffset ahead of the physical clock (rule 3). It reports
// whether the version was taken for proof of this clock being behind.
func (g *clockGuard) SawAhead(wall int64) bool {
	if time.Duration(wall-g.physical()) > ClockFenceMax {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.ahead = max(g.mu.ahead, wall)
	return true
}

// Behind returns an error while a version seen is still more than
// clockMaxOffset ahead of the physical clock (rule 3).
func (g *clockGuard) Behind() error {
	g.mu.Lock()
	ahead := g.mu.ahead
	g.mu.Unlock()
	if ahead == 0 {
		return nil
	}
	by := time.Duration(ahead - g.physical())
	if by <= clockMaxOffset {
		return nil
	}
	return fmt.Errorf("%w: %w: this node's clock is behind: it read a version stamped %v ahead of it, more than the %v "+
		"maximum clock offset, so its writes would order before writes made earlier; nothing was written (check its clock sync, NTP)",
		store.ErrUnavailable, wrn.ErrClockOffset, by.Round(time.Millisecond), clockMaxOffset)
}

// RunAhead returns an error if wall, a reading of this node's HLC, is
// more than clockMaxOffset ahead of its physical clock (rule 3): the
// clock was stepped back behind versions it stamped before.
func (g *clockGuard) RunAhead(wall int64) error {
	by := time.Duration(wall - g.physical())
	if by <= clockMaxOffset {
		return nil
	}
	return fmt.Errorf("%w: %w: this node's clock is behind: it was stepped back %v behind the versions it stamped, more than "+
		"the %v maximum clock offset, so its writes would order before writes made earlier; nothing was written (check its clock sync, NTP)",
		store.ErrUnavailable, wrn.ErrClockOffset, by.Round(time.Millisecond), clockMaxOffset)
}

// checkVersionClock is rule 1: it refuses version v of a record or
// proposal if it is more than clockMaxOffset ahead of this node's
// physical clock. what names the thing refused, for the error.
func (c *Coordinator) checkVersionClock(v wrn.Version, what string) error {
	ahead := time.Duration(v.Timestamp.WallTime - c.clockGuard.physical())
	if ahead <= clockMaxOffset {
		return nil
	}
	c.store.Config.Metrics.ClockOffsetRefusals.WithLabelValues("replica").Inc()
	return fmt.Errorf("%w: %w: %s version %s is %v ahead of node %d's clock, more than the %v maximum clock offset: "+
		"the coordinator's clock is ahead, or this node's is behind (check clock sync, NTP)",
		catalog.ErrInvalidArgument, wrn.ErrClockOffset, what, FormatRecordVersion(v), ahead.Round(time.Millisecond), c.store.NodeID(), clockMaxOffset)
}

// coordinatorClockErr is rule 3 at the start of a write coordinated here,
// counted.
func (c *Coordinator) coordinatorClockErr() error {
	err := c.clockGuard.Behind()
	if err != nil {
		c.store.Config.Metrics.ClockOffsetRefusals.WithLabelValues("coordinator").Inc()
	}
	return err
}
