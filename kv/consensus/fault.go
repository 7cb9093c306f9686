package consensus

import "fmt"

// FaultKind is which duty of a range failed; the kinds label the
// quorumkv_range_faults_total metric.
type FaultKind string

const (
	// FaultOpen: the replica could not be opened from its stored state
	// (a corrupt record, or a paxos range whose snapshot cannot be held
	// again).
	FaultOpen FaultKind = "open"
	// FaultInstall: the core took a snapshot whose data this node did
	// not receive (kv/store stages the data before the core sees the
	// message, so this is a broken invariant, kept from stopping the node).
	FaultInstall FaultKind = "install"
	// FaultApply: a committed entry could not be applied (a corrupt
	// entry or stored value).
	FaultApply FaultKind = "apply"
	// FaultCompact: the log could not be compacted (a paxos range's
	// snapshot could not be held, or a Raft entry could not be read).
	FaultCompact FaultKind = "compact"
	// FaultSnapshot: a Raft leader could not build the snapshot a
	// follower needs. The only kind that does not stop the replica.
	FaultSnapshot FaultKind = "snapshot"
)

var FaultKinds = []FaultKind{FaultOpen, FaultInstall, FaultApply, FaultCompact, FaultSnapshot}

// RangeFault is an error of one range's own (see above); every other
// error of a round is the node's.
type RangeFault struct {
	Kind FaultKind
	Err  error
}

func (f *RangeFault) Error() string { return fmt.Sprintf("%s failed: %v", f.Kind, f.Err) }
func (f *RangeFault) Unwrap() error { return f.Err }

// NewRangeFault marks err as a fault of kind of one range; nil stays nil.
func NewRangeFault(kind FaultKind, err error) error {
	if err == nil {
		return nil
	}
	return &RangeFault{Kind: kind, Err: err}
}

// SnapshotFault is a Raft leader's failure to build the snapshot a
// follower needs. The range goes on with the quorum it has; raft is told
// that the snapshot is temporarily unavailable (so it leaves the follower
// in probe and asks again on the follower's next answer) and the store
// opens it again only after a wait that doubles with every failure in a
// row. A failure that passes thus recovers by itself.
type SnapshotFault struct {
	Err      error
	failures int
	// RetryAt is the store tick before which no snapshot is built again;
	// asked is the last tick raft asked for one.
	RetryAt, Asked int64
}

const (
	// snapshotRetryTicks is the wait after a first failed snapshot: 1 s at
	// the default TickInterval. It doubles with each failure in a row up
	// to SnapshotRetryMaxTicks (1 min). Shorter catches a passing failure
	// sooner and reads the range's data more often while it lasts.
	snapshotRetryTicks    = 10
	SnapshotRetryMaxTicks = 600
	// SnapshotFaultStaleTicks: a fault is reported while raft asked for
	// the snapshot within this many ticks. It asks on every answer of the
	// follower, heartbeats included, so a longer silence means that no
	// follower needs it any more (it was removed, or went down).
	SnapshotFaultStaleTicks = 100
)

// Failed records a failed attempt at tick now.
func (f *SnapshotFault) Failed(now int64, err error) {
	f.Err = err
	f.failures++
	wait := int64(SnapshotRetryMaxTicks)
	if f.failures < 10 { // 10 << 9 > 600: no overflow past here
		wait = min(wait, int64(snapshotRetryTicks)<<(f.failures-1))
	}
	f.RetryAt = now + wait
}

// Report is the fault as the range's status shows it, or "" when there is
// none or no follower asked for the snapshot lately.
func (f *SnapshotFault) Report(now int64) string {
	if f.Err == nil || now-f.Asked > SnapshotFaultStaleTicks {
		return ""
	}
	return fmt.Sprintf("the range serves, but a follower needs a snapshot that cannot be built (%d attempts; the next in %d ticks): %v",
		f.failures, max(0, f.RetryAt-now), f.Err)
}
