package wrn

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock reading: the highest physical time
// seen (nanoseconds since the Unix epoch) and a counter that orders events
// within one physical instant.
type Timestamp struct {
	WallTime int64
	Logical  uint32
}

// Compare orders timestamps: by wall time, then by the logical counter.
func (t Timestamp) Compare(o Timestamp) int {
	switch {
	case t.WallTime < o.WallTime:
		return -1
	case t.WallTime > o.WallTime:
		return 1
	case t.Logical < o.Logical:
		return -1
	case t.Logical > o.Logical:
		return 1
	}
	return 0
}

// Less reports whether t orders before o.
func (t Timestamp) Less(o Timestamp) bool { return t.Compare(o) < 0 }

// IsZero reports whether t is the zero timestamp (before every reading).
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", time.Unix(0, t.WallTime).UTC().Format("2006-01-02T15:04:05.000000000Z"), t.Logical)
}

// ErrClockOffset marks a remote timestamp too far ahead of local physical
// time: a peer whose clock is broken, which the clock refuses to follow
// (following it would drag every later version into its future).
var ErrClockOffset = errors.New("wrn: remote clock too far ahead")

// ErrLogicalOverflow marks a logical counter that would wrap: more than
// 2^32 events within one physical nanosecond reading, which means the
// physical clock is stuck.
var ErrLogicalOverflow = errors.New("wrn: logical clock overflow")

// Clock is a hybrid logical clock. It is safe for concurrent use.
//
// Its readings are monotonic (each is greater than every earlier one), and
// stay within MaxOffset of physical time as long as every clock that
// updates it is within MaxOffset of true time: Update refuses timestamps
// further ahead than that.
type Clock struct {
	physical  func() int64
	maxOffset time.Duration

	mu struct {
		sync.Mutex
		last Timestamp
	}
}

// NewClock returns a clock reading physical time (nanoseconds since the
// Unix epoch) from physical, refusing remote timestamps more than
// maxOffset ahead of it. maxOffset must be positive: 500ms is a safe value
// for NTP-synchronised machines; CockroachDB uses the same order.
func NewClock(physical func() int64, maxOffset time.Duration) *Clock {
	if maxOffset <= 0 {
		panic(fmt.Sprintf("wrn: NewClock with max offset %v", maxOffset))
	}
	return &Clock{physical: physical, maxOffset: maxOffset}
}

// MaxOffset returns the largest clock offset the clock tolerates.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Now returns a reading greater than every earlier one: physical time if
// it has moved past the last reading, else the last reading's wall time
// with the counter advanced.
func (c *Clock) Now() (Timestamp, error) {
	pt := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.mu.last.WallTime {
		c.mu.last = Timestamp{WallTime: pt}
		return c.mu.last, nil
	}
	if c.mu.last.Logical == ^uint32(0) {
		return Timestamp{}, fmt.Errorf("%w at %v", ErrLogicalOverflow, c.mu.last)
	}
	c.mu.last.Logical++
	return c.mu.last, nil
}

// Update folds in a timestamp received from another node (a version read
// or written), so that later local readings order after it, and returns
// the new reading. It refuses a timestamp more than MaxOffset ahead of
// physical time, leaving the clock unchanged.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	pt := c.physical()
	if remote.WallTime > pt+int64(c.maxOffset) {
		return Timestamp{}, fmt.Errorf("%w: %v is %v ahead of local time, more than the %v allowed",
			ErrClockOffset, remote, time.Duration(remote.WallTime-pt), c.maxOffset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.mu.last
	next := Timestamp{WallTime: max(pt, last.WallTime, remote.WallTime)}
	switch {
	case next.WallTime == last.WallTime && next.WallTime == remote.WallTime:
		next.Logical = max(last.Logical, remote.Logical)
	case next.WallTime == last.WallTime:
		next.Logical = last.Logical
	case next.WallTime == remote.WallTime:
		next.Logical = remote.Logical
	default:
		c.mu.last = next // physical time is ahead of both: logical 0
		return next, nil
	}
	if next.Logical == ^uint32(0) {
		return Timestamp{}, fmt.Errorf("%w at %v", ErrLogicalOverflow, next)
	}
	next.Logical++
	c.mu.last = next
	return next, nil
}
