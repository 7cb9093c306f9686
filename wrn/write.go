package wrn

import "github.com/quorumkv/quorumkv/quorum"

// WriteTracker follows one write sent to all of a key's replicas: it is
// done once the replicas that stored it durably form a write set (W of
// them), and failed once the replicas that did not can no longer leave
// one.
type WriteTracker struct {
	t      tally
	sloppy bool
	// stored are the replicas that acknowledged themselves (not by hint).
	stored map[uint64]bool
}

// NewWrite starts tracking a write. With sloppy set, a hint stored for a
// replica that did not answer counts toward the write set: the write
// survives more failures, but a read set may then miss it (it breaks the
// W+R>N promise until the hint is delivered), which is why keyspaces opt in.
func (q Quorums) NewWrite(sloppy bool) *WriteTracker {
	return &WriteTracker{t: newTally(q, quorum.Phase2), sloppy: sloppy, stored: map[uint64]bool{}}
}

// Ack records that node stored the write durably.
func (w *WriteTracker) Ack(node uint64) {
	w.stored[node] = true
	w.t.record(node, true, "")
}

// Fail records that node did not store the write (an error, a timeout).
func (w *WriteTracker) Fail(node uint64, why string) { w.t.record(node, false, why) }

// Hinted records that the coordinator stored a hint for node, to replay
// when it is back. It counts as an acknowledgement only for sloppy writes.
func (w *WriteTracker) Hinted(node uint64) {
	if w.sloppy {
		w.t.record(node, true, "")
	}
}

// State says whether the write is done, failed or pending.
func (w *WriteTracker) State() State { return w.t.state() }

// Err explains why the write cannot be done (or is not yet): which quorum,
// how many acknowledged, which replicas failed and why.
func (w *WriteTracker) Err() error { return w.t.err("write") }

// Unacknowledged returns the replicas that have not stored the write
// themselves (hinted ones included), in replica order: the ones a hint
// must reach.
func (w *WriteTracker) Unacknowledged() []uint64 {
	var out []uint64
	for _, id := range w.t.q.replicas {
		if !w.stored[id] {
			out = append(out, id)
		}
	}
	return out
}
