package replsim

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/quorum"
)

// observer watches the whole cluster from outside, the way no node can,
// and keeps the first violation it sees. Its checks are cheap enough to
// run after every step of the simulation:
//
//   - at most one leader per Term (Raft) or ballot (Paxos);
//   - one value per slot per Term or ballot among persisted records (Raft's
//     Log Matching rests on it; in Paxos a ballot proposes one value per
//     slot);
//   - with ChosenByQuorum, at most one value chosen per slot, counted from
//     durable acceptances (Paxos's safety property itself);
//   - committed entries never change and applied prefixes agree: every
//     node applies the same value at each index, and the running hash of
//     the state machine agrees at each index, across snapshots too;
//   - no acknowledged write lost: an acknowledged write is the value
//     applied at the index its reply named;
//   - with a LeaseCore, no node holds a lease while another leads at a
//     higher term or ballot (Cluster.checkLeases).
type observer struct {
	err error
	now func() time.Duration

	// led lists each term or ballot's leader when the observer first saw
	// it lead, in that order.
	led []Leadership

	leaders map[termKey]uint64
	written map[recKey]string
	// acceptors of each (slot, term, owner), for ChosenByQuorum.
	acceptors map[recKey]map[uint64]bool
	chosen    map[uint64]string
	quorum    quorum.System // phase 2 of the fixed configuration; nil: not checked

	applied map[uint64]string // index -> value applied there
	hashes  map[uint64]uint64 // index -> state hash after applying it
	maxAck  uint64            // highest index of an acknowledged write
}

// Leadership is a node seen leading a term or ballot.
type Leadership struct {
	At          time.Duration // when the observer first saw it lead
	ID          uint64
	Term, Owner uint64 // the Term (Owner 0) or ballot (Round, NodeID)
}

type termKey struct{ term, owner uint64 }

func (k termKey) less(o termKey) bool {
	return k.term < o.term || (k.term == o.term && k.owner < o.owner)
}

type recKey struct{ index, term, owner uint64 }

func newObserver(q quorum.System, now func() time.Duration) *observer {
	return &observer{now: now,
		leaders: map[termKey]uint64{}, written: map[recKey]string{},
		acceptors: map[recKey]map[uint64]bool{}, chosen: map[uint64]string{}, quorum: q,
		applied: map[uint64]string{}, hashes: map[uint64]uint64{},
	}
}

func (o *observer) fail(format string, args ...any) {
	if o.err == nil {
		o.err = fmt.Errorf(format, args...)
	}
}

func (o *observer) leader(id, term, owner uint64) {
	k := termKey{term, owner}
	if l, ok := o.leaders[k]; !ok {
		o.leaders[k] = id
		o.led = append(o.led, Leadership{At: o.now(), ID: id, Term: term, Owner: owner})
	} else if l != id {
		o.fail("two leaders of term/ballot %d.%d: nodes %d and %d", term, owner, l, id)
	}
}

// persisted takes the records a node made durable.
func (o *observer) persisted(id uint64, recs []Record) {
	for _, r := range recs {
		k := recKey{r.Index, r.Term, r.Owner}
		if v, ok := o.written[k]; !ok {
			o.written[k] = r.Value
		} else if v != r.Value {
			o.fail("slot %d holds two values written at term/ballot %d.%d: %q and %q (node %d)",
				r.Index, r.Term, r.Owner, v, r.Value, id)
		}
		if o.quorum == nil {
			continue
		}
		set := o.acceptors[k]
		if set == nil {
			set = map[uint64]bool{}
			o.acceptors[k] = set
		}
		set[id] = true
		if o.quorum.IsQuorum(quorum.Phase2, func(id uint64) bool { return set[id] }) {
			if v, ok := o.chosen[r.Index]; !ok {
				o.chosen[r.Index] = r.Value
			} else if v != r.Value {
				o.fail("two values chosen in slot %d: %q and %q (the second at %d.%d)", r.Index, v, r.Value, r.Term, r.Owner)
			}
			o.checkApplied(id, r.Index, r.Value)
		}
	}
}

func (o *observer) checkApplied(id, index uint64, value string) {
	if v, ok := o.applied[index]; ok && v != value {
		o.fail("node %d: slot %d holds %q, but %q was committed there", id, index, value, v)
	}
	if v, ok := o.chosen[index]; ok && v != value {
		o.fail("node %d: slot %d holds %q, but %q was chosen there", id, index, value, v)
	}
}

// apply records that node id applied value at index, reaching state hash.
func (o *observer) apply(id, index uint64, value string, hash uint64) {
	o.checkApplied(id, index, value)
	o.applied[index] = value
	o.snapshot(id, index, hash)
}

// snapshot records that node id reached state hash at index (by applying
// or by loading a snapshot).
func (o *observer) snapshot(id, index, hash uint64) {
	if h, ok := o.hashes[index]; ok && h != hash {
		o.fail("node %d: state after slot %d differs from another node's (hash %x, want %x)", id, index, hash, h)
	}
	o.hashes[index] = hash
}

// acked checks a write acknowledged to a client at index.
func (o *observer) acked(index uint64, value string) {
	if v, ok := o.applied[index]; !ok || v != value {
		o.fail("acknowledged write %q at slot %d, but slot %d holds %q", value, index, index, v)
	}
	o.maxAck = max(o.maxAck, index)
}
