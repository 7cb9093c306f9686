package wrn

import "github.com/quorumkv/quorumkv/quorum"

// ReadTracker follows one read of a key: it is done once the replicas
// that answered form a read set (R of them). The newest record among the
// answers wins; replicas that answered with something older are stale and
// get the winner written back (read repair).
type ReadTracker struct {
	t       tally
	answers map[uint64]Record
}

// NewRead starts tracking a read.
func (q Quorums) NewRead() *ReadTracker {
	return &ReadTracker{t: newTally(q, quorum.Phase1), answers: map[uint64]Record{}}
}

// Reply records node's record of the key (the zero Record if it has none).
func (r *ReadTracker) Reply(node uint64, rec Record) {
	if _, ok := r.answers[node]; ok {
		return // a duplicate: the first answer stands
	}
	r.t.record(node, true, "")
	if r.t.votes[node] {
		r.answers[node] = rec
	}
}

// Fail records that node could not answer.
func (r *ReadTracker) Fail(node uint64, why string) { r.t.record(node, false, why) }

// State says whether the read is done, failed or pending.
func (r *ReadTracker) State() State { return r.t.state() }

// Err explains why the read cannot be done (or is not yet).
func (r *ReadTracker) Err() error { return r.t.err("read") }

// Result is the newest record among the answers so far (the zero Record
// if no replica knows the key). A tombstone wins like a value: the key was
// deleted.
func (r *ReadTracker) Result() Record {
	var best Record
	for _, id := range r.t.q.replicas {
		if rec, ok := r.answers[id]; ok {
			best = Merge(best, rec)
		}
	}
	return best
}

// Stale returns the replicas that answered with an older record than
// Result, in replica order: the targets of read repair.
func (r *ReadTracker) Stale() []uint64 {
	best := r.Result()
	var out []uint64
	for _, id := range r.t.q.replicas {
		if rec, ok := r.answers[id]; ok && rec.Version.Less(best.Version) {
			out = append(out, id)
		}
	}
	return out
}

// Answered returns how many replicas answered.
func (r *ReadTracker) Answered() int { return len(r.answers) }
