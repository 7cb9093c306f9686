package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

// Faults of one range.
//
// A replica's work in a round is partly the node's and partly its range's
// own. Persisting the round (one Pebble batch with every replica's entries
// and hard state, one WAL sync) is the node's: when the disk refuses it,
// nothing written since can be trusted, and the store stops (Store.fail).
// The rest belongs to one range: opening its replica, installing a
// snapshot its leader sent, applying its committed entries, compacting its
// log, building a snapshot of its data. A failure there is a consensus.RangeFault:
// it stops that replica alone (Store.failRange) and the node and its other
// ranges go on. The replica is then neither ticked, stepped nor advanced,
// its waiting clients are answered, requests for it are refused with its
// error (RangeFailedError), and its status says why until the node
// restarts, which tries it again, or the range leaves this node.
//
// Two exceptions. Meta's faults are the node's: meta is the catalog that
// routes every request and starts every replica. And a Raft leader that
// cannot build the snapshot a follower needs does not stop: the range goes
// on with the quorum it has, the follower stays behind, and the leader
// tries again later (snapshotFault).

// RangeFailedError: this node's replica of the range stopped after a
// fault of its own range; nothing was proposed or read. It is an
// ErrNoReplicaHere, so an ErrUnavailable: the API tries the range's other
// replicas, which may be running.
type RangeFailedError struct {
	RangeID uint64
	// Reason is the range's fault.
	Reason string
}

func (e *RangeFailedError) Error() string {
	return fmt.Sprintf("range %d stopped on this node: %s", e.RangeID, e.Reason)
}

func (e *RangeFailedError) Is(target error) bool {
	return target == ErrNoReplicaHere || target == ErrUnavailable
}

// failedReplica is what the store keeps of a replica a fault stopped.
type failedReplica struct {
	desc   *catalog.RangeDescriptor
	Fault  *consensus.RangeFault
	status RangeStatus
}

func (f *failedReplica) refusal() error {
	return &RangeFailedError{RangeID: f.desc.ID, Reason: f.Fault.Error()}
}

// isolate stops replica r alone if err is a fault of its range (see
// above), and then returns nil; any other error, and any error of meta,
// is the node's and is returned as is. Loop only.
func (s *Store) isolate(r *replica, err error) error {
	var f *consensus.RangeFault
	if !errors.As(err, &f) || r.desc.ID == catalog.MetaRangeID || s.Canary.FaultStopsStore {
		return err
	}
	s.failRange(r, f)
	return nil
}

// failRange stops replica r after fault f: it leaves s.replicas, so that
// nothing ticks, steps or advances it again (a round that collected its
// Ready drops it: see Store.running), and its clients are answered. A
// proposal of it may still commit (it is in the log here and maybe on the
// other replicas), so its client learns that the outcome is unknown;
// reads learn that the range is unavailable here. Loop only.
func (s *Store) failRange(r *replica, f *consensus.RangeFault) {
	id := r.desc.ID
	st := s.replicaStatus(r)
	st.Leader, st.State, st.Error = 0, StateFailed, f.Error()
	s.wake(r) // drops it from the quiesce bookkeeping
	s.cancelSplit(r, "the replica failed")
	delete(s.Replicas, id)
	s.ordered = nil
	fr := &failedReplica{desc: r.desc, Fault: f, status: st}
	s.Failed[id] = fr
	r.failAll(fr.refusal())
	s.faulted(f.Kind)
	s.Logger.Error("range stopped on this node after a fault of its own; the node and its other ranges go on",
		"range", id, "keyspace", r.desc.Keyspace, "fault", f.Kind, "err", f.Err)
}

// startFailed records a replica that could not be opened (faultOpen): the
// range starts failed here and says why. Loop only.
func (s *Store) startFailed(desc *catalog.RangeDescriptor, err error) {
	if inner := (*consensus.RangeFault)(nil); errors.As(err, &inner) {
		err = inner.Err // a fault met while opening is an open fault
	}
	f := &consensus.RangeFault{Kind: consensus.FaultOpen, Err: err}
	applied, _ := consensus.LoadApplied(s.DB, desc.ID) // for the status only
	s.Failed[desc.ID] = &failedReplica{desc: desc, Fault: f, status: RangeStatus{
		RangeID: desc.ID, Applied: applied, State: StateFailed, Error: f.Error()}}
	s.faulted(f.Kind)
	s.Logger.Error("range could not be opened and stays stopped on this node; the node and its other ranges go on",
		"range", desc.ID, "keyspace", desc.Keyspace, "err", err)
}

// openFault reports whether an error opening a replica is its range's
// own: a fault, or a corrupt record of the range.
func openFault(err error) bool {
	var f *consensus.RangeFault
	return errors.As(err, &f) || errors.Is(err, codec.ErrCorrupt)
}

// dropFailed forgets the failed replicas of ranges no longer assigned
// here, with their data. Loop only.
func (s *Store) dropFailed() error {
	for _, id := range slices.Sorted(maps.Keys(s.Failed)) {
		if desc, ok := s.cat.Ranges[id]; ok && desc.HasReplica(s.nodeID) {
			continue
		}
		delete(s.Failed, id)
		if err := s.destroyReplica(id); err != nil {
			return err
		}
		s.Logger.Info("removed stopped replica", "range", id)
	}
	s.Config.Metrics.RangesFailed.Set(float64(len(s.Failed)))
	return nil
}

func (s *Store) faulted(kind consensus.FaultKind) {
	s.Config.Metrics.RangeFaults.WithLabelValues(string(kind)).Inc()
	s.Config.Metrics.RangesFailed.Set(float64(len(s.Failed)))
}

// running reports whether r is still one of the store's replicas: a round
// that collected its Ready drops it once it is destroyed or failed.
func (s *Store) running(r *replica) bool { return s.Replicas[r.desc.ID] == r }

// StateFailed is the State of a failed replica in RangeStatus.
const StateFailed = "failed"

// FaultCanaries are planted bugs for the tests of this file's promises
// (kv/rangefault_test.go): each must be caught.
type FaultCanaries struct {
	// FaultStopsStore treats every range fault as the node's, as the
	// store did before: one range's fault stops every range.
	FaultStopsStore bool
	// SharedApplyBatch applies each replica's entries straight into the
	// round's batch: a replica that fails half-way leaves the effects of
	// the entries before the failing one in it, without its applied index.
	SharedApplyBatch bool
}
