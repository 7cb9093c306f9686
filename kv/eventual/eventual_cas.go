package eventual

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/wrn"
)

// Compare-and-swap in eventual keyspaces (issue 6): Basic Paxos per key
// over the key's replicas, as Cassandra's lightweight transactions do; a
// conditional delete is a compare-and-swap to a tombstone.
//
// Every replica of a range keeps, per key that took part in a
// compare-and-swap, a Basic Paxos acceptor state (paxos.AcceptorState)
// under storage.CASStateKey: in the range's consensus state span, which
// eventual ranges do not otherwise use, so that scans and anti-entropy,
// which read the data span, never see it, and removing the replica
// removes it. It is written and synced before the acceptor answers.
//
// The coordinator runs a paxos.Proposer. The register's value is a
// records.CASValue (kv/records/casvalue.go): the key's record (value or tombstone,
// with its HLC version), the position of the latest swap in the key's
// chain of swaps, and the request IDs of the last records.CASHistoryLen swaps.
// The key's current record is the newest (by version) of the highest
// accepted value among the phase-1 answers, the records that those
// acceptors' replicas hold (each Promise carries its replica's record),
// and the record read from R replicas before the proposal. The update
// compares it to the expectation; if it holds, it proposes the new record
// under a fresh HLC version, greater than the current one. Once chosen,
// that record is also written to every replica as a normal record
// (acknowledged after W), so plain reads see it: the swap answers success
// only then.
//
// A request whose ID is found in the register (its swap is chosen, or
// accepted and now chosen again; later swaps may have followed) answers
// that swap's success and version: a later attempt of the same request
// after a preempted one, or a client's retry with the same idempotency
// key (its ID is a hash of the key), as long as fewer than
// records.CASHistoryLen swaps followed. Without that, a swap that was chosen
// after its proposer was preempted would be told "condition failed" by
// its own retry. Every proposal that wins phase 1 runs phase 2, choosing
// the register again when it does not swap: that fences the values of
// earlier attempts at lower ballots, so that one not found now is never
// chosen later.
//
// Answers, and what the client may assume (docs/api.md):
//   - success: the swap is chosen and W replicas stored its record;
//   - ErrConditionFailed: the condition was false at the swap's point in
//     the key's history, and the swap will never take effect;
//   - ErrUnavailable: nothing was or will be written: gossip sees too few
//     replicas alive (checked first), or no acceptor may have taken this
//     request's value in any attempt (its phases failed for want of
//     answers, every Accept was refused, or its clock cannot stamp a
//     version past the key's);
//   - ErrOutcomeUnknown: an acceptor may have taken its value, so the swap
//     may be chosen, now or later; or it is chosen but not yet stored on
//     W replicas (the message says so). A retry with the same idempotency
//     key finds the swap if it was chosen and finishes its write.
//
// Quorums: both phases use a majority of the key's replicas, whatever the
// keyspace's W and R. Paxos is safe only if every phase-1 quorum meets
// every phase-2 quorum; two majorities always meet, while the W/R sizes
// meet only when W+R > N, which per-request overrides may break, and a
// W=N keyspace would make every compare-and-swap wait for every replica.
// A majority tolerates ⌊(N-1)/2⌋ replicas down, like Cassandra's SERIAL
// consistency. The record read that seeds the current record uses the
// keyspace's R, which meets the keyspace's W.
//
// Against plain writes (PITFALL, as in Cassandra): the guarantee that
// exactly one of competing swaps wins, and that swaps are linearizable,
// holds among the compare-and-swaps and conditional deletes of a key. A
// swap sees every plain Put or Delete acknowledged before it started (its
// read meets their W) and orders after it; a plain write concurrent with
// a swap bypasses Paxos: the swap may not see it, and last writer wins
// then orders the two by version, so the plain write either overwrites
// the swap's value or is overwritten by it although the swap compared
// against the value before it. Write such keys only by compare-and-swap
// and conditional delete when that matters.

// maxCASAttempts bounds the proposals of one compare-and-swap preempted by
// concurrent ones; it then answers Unavailable, or outcome unknown if an
// acceptor may have taken its value.
const maxCASAttempts = 30

// casBackoffMax bounds the randomized wait before a preempted
// compare-and-swap proposes again, which doubles from 1 ms per attempt.
// Too low lets dueling coordinators keep preempting each other; too high
// adds that much latency to a contended swap.
const casBackoffMax = 64 * time.Millisecond

// newProposerID returns a ballot owner ID unique to one compare-and-swap
// request: the node ID in the high bits and a counter started at a
// random value in the low ones. Two proposals of one node (concurrent,
// or before and after a restart) then never share a ballot, which
// acceptors would take for retransmissions of one proposal.
func (c *Coordinator) newProposerID() uint64 {
	return c.store.NodeID()<<32 | c.casSeq.Add(1)&0xFFFFFFFF
}

// randInt64N returns a random number in [0, max) from the node's source,
// seeded by NodeConfig.Seed.
func (c *Coordinator) randInt64N(max int64) int64 {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	return c.rng.Int64N(max)
}

// newCASID returns the ID of a request: from its idempotency key, or
// random from the node's source.
func (c *Coordinator) newCASID(idemKey []byte) records.CASID {
	if len(idemKey) > 0 {
		return records.CASIDOf(idemKey)
	}
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	var id records.CASID
	for i := range id {
		id[i] = byte(c.rng.Uint32())
	}
	return id
}

// casSystem is the quorum system of a key's acceptors: a majority of the
// range's replicas (see above).
func casSystem(r *catalog.RangeDescriptor) (quorum.System, error) {
	ids := make([]uint64, len(r.Replicas))
	for i, rep := range r.Replicas {
		ids[i] = rep.NodeID
	}
	return quorum.Majority(ids...)
}

// checkExpect checks expect against cur, key's current record.
func checkExpect(key []byte, expect catalog.Expect, cur wrn.Record) error {
	var want string
	var ok bool
	switch {
	case expect.Absent:
		want, ok = "to be absent", !cur.Exists()
	case expect.Exists:
		want, ok = "to exist", cur.Exists()
	case expect.Version != "":
		want = "to be at version " + expect.Version
		ok = cur.Exists() && FormatRecordVersion(cur.Version) == expect.Version
	default:
		want = fmt.Sprintf("to hold %q", command.Abbreviate(expect.Value))
		ok = cur.Exists() && bytes.Equal(cur.Value, expect.Value)
	}
	switch {
	case ok:
		return nil
	case !cur.Exists():
		return fmt.Errorf("%w: expected key %q %s, but it does not exist", command.ErrConditionFailed, command.Abbreviate(key), want)
	}
	return fmt.Errorf("%w: expected key %q %s, but it holds %q at version %s",
		command.ErrConditionFailed, command.Abbreviate(key), want, command.Abbreviate(cur.Value), FormatRecordVersion(cur.Version))
}

// casEventual is CompareAndSwap in eventual keyspace ks (see above), and
// DeleteWith with a condition when rec is a tombstone: rec (without a
// version) is written if the key is as expected. opts carry the request's
// idempotency key (empty: none) and whether it is a retry.
func (c *Coordinator) CAS(ctx context.Context, ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, expect catalog.Expect,
	rec wrn.Record, opts catalog.WriteOptions) (string, error) {
	op, err := c.NewCASOp(ks, r, key, expect, rec, opts.IdempotencyKey)
	if err != nil {
		return "", err
	}
	op.retry = opts.Retry
	res, err := await(ctx, op.Start, op.GiveUp)
	if err != nil {
		return "", err
	}
	return res.Version, res.Err
}

// casOp is one compare-and-swap in an eventual keyspace: attempts of
// [read the key's record, run a Basic Paxos proposal] until a proposal
// is decided (see above), then the write of the chosen record.
type casOp struct {
	// retry: the client sent this request before and may not have learned
	// its outcome (WriteOptions.Retry).
	retry  bool
	n      *Coordinator
	ks     catalog.KeyspaceDescriptor
	r      *catalog.RangeDescriptor
	qs     wrn.Quorums
	key    []byte
	expect catalog.Expect
	rec    wrn.Record // the new record, without a version: a value, or a tombstone
	id     records.CASID
	done   func(CASResult)
	Mu     struct {
		sync.Mutex
		p       *paxos.Proposer
		attempt int
		// sent: an acceptor took, or may have taken, a value of this
		// request, in some attempt, so the swap may be chosen, now or
		// later: the request never answers Unavailable. minSeq is the lowest position such a
		// value was proposed at (0: none): a later attempt that finds
		// the register past it without this request's entry knows the
		// swap was not chosen, unless the history no longer reaches it.
		sent   bool
		minSeq uint64
		// Of the current attempt: the newest record read or promised,
		// what the proposal decided to propose, the requests not answered
		// yet, the acceptors whose calls failed (refusals to Paxos),
		// whether one refused a ballot, this node's own acceptor's
		// Accept held until another accepted (eventual_clock.go, rule
		// 2), and the clock reading of the proposed version.
		stored      wrn.Record
		Dec         CASDecision
		stamped     ClockReading
		guarded     bool
		outstanding int
		failed      []error
		rejected    bool
		held        *paxos.BasicMessage
		// accepts: Accepts of this request's value not yet answered, or
		// answered with an error that leaves open whether the acceptor
		// took it; they make sent true once the attempt is decided.
		accepts   int
		decided   bool // the current attempt's proposal is decided
		abandoned bool // the request gave up: no further attempt
	}
}

// casDecisionKind is what a proposal chose to propose once it won
// phase 1.
type casDecisionKind uint8

const (
	casUndecided casDecisionKind = iota
	// casApplied: the condition held; the proposal carries the new record.
	casApplied
	// casMine: the register holds this request's swap already (chosen, or
	// accepted); the proposal chooses the register again.
	casMine
	// casFailed: the condition is false; the proposal chooses the
	// register again, or there is nothing to choose.
	CASFailed
	// casLost: a value of this request proposed by an earlier attempt may
	// have been chosen, and the history no longer reaches back to it.
	casLost
	// casError: no proposal could be made (the clock cannot stamp a
	// version past the current one, a corrupt value).
	casError
)

// casDecision is the current attempt's decision.
type CASDecision struct {
	Kind    casDecisionKind
	Rec     wrn.Record  // the record proposed: the new one, or the current one again
	version wrn.Version // casApplied, casMine: the swap's version
	err     error       // casFailed, casError
}

// casResult is a decided compare-and-swap: the new version, or the error.
type CASResult struct {
	Version string
	Err     error
}

func (c *Coordinator) NewCASOp(ks catalog.KeyspaceDescriptor, r *catalog.RangeDescriptor, key []byte, expect catalog.Expect, rec wrn.Record, idemKey []byte) (*casOp, error) {
	sys, err := casSystem(r)
	if err != nil {
		return nil, fmt.Errorf("%w: keyspace %s: %v", catalog.ErrInvalidArgument, ks.Name, err)
	}
	qs, err := c.eventualQuorums(ks, r, catalog.QuorumOverride{})
	if err != nil {
		return nil, err
	}
	// Refused at once, nothing written: the phases need a majority alive,
	// and the chosen record's write W replicas.
	ids := make([]uint64, len(r.Replicas))
	for i, rep := range r.Replicas {
		ids[i] = rep.NodeID
	}
	majority, err := wrn.SizeQuorums(ids, len(ids)/2+1, len(ids)/2+1)
	if err != nil {
		return nil, fmt.Errorf("%w: keyspace %s: %v", catalog.ErrInvalidArgument, ks.Name, err)
	}
	what := "a compare-and-swap"
	if rec.Tombstone {
		what = "a conditional delete"
	}
	if err := c.checkAlive(ks, r, majority.NewWrite(false), what,
		fmt.Sprintf("a majority (%d of %d replicas) for Paxos", len(ids)/2+1, len(ids))); err != nil {
		return nil, err
	}
	if err := c.checkWritable(ks, r, qs, what); err != nil {
		return nil, err
	}
	o := &casOp{n: c, ks: ks, r: r, qs: qs, key: key, expect: expect, rec: rec, id: c.newCASID(idemKey)}
	o.Mu.p = paxos.NewProposer(c.newProposerID(), sys)
	return o, nil
}

func (o *casOp) Start(done func(CASResult)) {
	o.done = done
	o.attempt()
}

// GiveUp stops further attempts of a request whose client gave up, and
// describes where it was.
func (o *casOp) GiveUp() string {
	o.Mu.Lock()
	defer o.Mu.Unlock()
	o.Mu.abandoned = true
	return fmt.Sprintf("keyspace %s compare-and-swap, attempt %d", o.ks.Name, o.Mu.attempt)
}

// attempt reads the key's record, then proposes.
func (o *casOp) attempt() {
	o.Mu.Lock()
	if o.Mu.abandoned {
		o.Mu.Unlock()
		o.finish(CASResult{Err: o.unfinished("abandoned by its client")})
		return
	}
	o.Mu.attempt++
	attempt := o.Mu.attempt
	o.Mu.Unlock()
	o.n.newReadOp(o.ks, o.r, o.qs, o.key).Start(func(res ReadResult) { o.propose(attempt, res) })
}

// unfinished is the error of a request that ends without a decision, for
// the reason why (see unfinishedErr).
func (o *casOp) unfinished(why string) error { return o.unfinishedErr(errors.New(why)) }

func (o *casOp) propose(attempt int, read ReadResult) {
	if read.Err != nil {
		o.finish(CASResult{Err: o.unfinishedErr(read.Err)})
		return
	}
	o.Mu.Lock()
	o.Mu.stored, o.Mu.Dec, o.Mu.guarded = read.Rec, CASDecision{}, false
	o.Mu.failed, o.Mu.rejected, o.Mu.held, o.Mu.accepts, o.Mu.decided = nil, false, nil, 0, false
	msgs := o.Mu.p.Propose(o.update)
	o.Mu.outstanding = len(msgs)
	o.Mu.Unlock()
	o.send(attempt, msgs)
}

// unfinishedErr is the error of a request that ends without a decision,
// on err: outcome unknown if an acceptor may have taken its value, else
// Unavailable.
func (o *casOp) unfinishedErr(err error) error {
	o.Mu.Lock()
	sent := o.Mu.sent
	o.Mu.Unlock()
	if sent {
		return fmt.Errorf("%w: keyspace %s key %q: compare-and-swap stopped after its value was sent to the acceptors "+
			"(it may be chosen; retry with the same idempotency key to learn whether it was): %v", store.ErrOutcomeUnknown, o.ks.Name, command.Abbreviate(o.key), err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: keyspace %s key %q: compare-and-swap: nothing was written: %w", store.ErrUnavailable, o.ks.Name, command.Abbreviate(o.key), err)
}

// update is the proposal's paxos.UpdateFunc; it runs in Step, o.mu held.
// It always proposes the newest record it knows of, so that no accepted
// value older than a tombstone seen is chosen again (casPromiseFormat).
func (o *casOp) update(cur []byte, exists bool) ([]byte, bool) {
	var acc records.CASValue
	if exists {
		v, err := records.DecodeCASValue(cur)
		if err != nil {
			o.Mu.Dec = CASDecision{Kind: casError, err: fmt.Errorf("key %q: accepted compare-and-swap value: %w", command.Abbreviate(o.key), err)}
			return cur, true
		}
		acc = v
	}
	if o.n.evHooks.IgnoreAccepted {
		acc = records.CASValue{} // canary: decide on the records alone
	}
	current := wrn.Merge(acc.Rec, o.Mu.stored)
	// again chooses the register again with the current record, even
	// none: its phase 2 fences every value accepted at a lower ballot,
	// so that one of this request's earlier attempts not found now can
	// never be chosen later, and a failed condition stays failed.
	again := func() ([]byte, bool) {
		return records.EncodeCASValue(records.CASValue{Rec: current, Seq: acc.Seq, Hist: acc.Hist}), true
	}
	if e, ok := acc.Find(o.id); ok && !o.n.evHooks.ForgetSwaps {
		o.Mu.Dec = CASDecision{Kind: casMine, Rec: current, version: e.Version}
		return again()
	}
	if o.Mu.minSeq != 0 && !acc.Covers(o.Mu.minSeq) && !o.n.evHooks.ForgetSwaps {
		o.Mu.Dec = CASDecision{Kind: casLost, Rec: current}
		return again()
	}
	if o.retry && !acc.Covers(1) && !o.n.evHooks.ForgetSwaps {
		// A retry whose swap is not in the history, which no longer
		// reaches back to the key's first swaps: its first attempt may
		// have been chosen and pushed out since. Not "condition failed":
		// that could tell a winner it lost.
		o.Mu.Dec = CASDecision{Kind: casLost, Rec: current}
		return again()
	}
	if o.Mu.abandoned {
		// Its client gave up and may retry: a swap decided now could
		// follow the retry's answer.
		o.Mu.Dec = CASDecision{Kind: casError, Rec: current, err: errors.New("abandoned by its client")}
		return again()
	}
	if err := checkExpect(o.key, o.expect, current); err != nil {
		o.Mu.Dec = CASDecision{Kind: CASFailed, Rec: current, err: err}
		return again()
	}
	// The swap's version is greater than the version it replaces: the
	// clock moves past it first, and if it cannot (the current version is
	// too far ahead of this node's clock), there is no swap.
	var rec wrn.Record
	var at ClockReading
	err := o.n.advanceClockPast(current.Version)
	if err == nil {
		rec, at, err = o.n.stamp(o.rec)
	}
	if err == nil && !current.Version.Less(rec.Version) {
		err = fmt.Errorf("%w: version %s is not past the current one %s", wrn.ErrClockOffset, FormatRecordVersion(rec.Version),
			FormatRecordVersion(current.Version))
	}
	if err != nil {
		o.n.store.Config.Metrics.ClockOffsetRefusals.WithLabelValues("coordinator").Inc()
		o.Mu.Dec = CASDecision{Kind: casError, Rec: current, err: fmt.Errorf("key %q: this node's clock cannot stamp a version past "+
			"the current one %s (its clock is behind by more than the %v maximum clock offset?): %w",
			command.Abbreviate(o.key), FormatRecordVersion(current.Version), clockMaxOffset, err)}
		return again()
	}
	next := acc.Next(rec, o.id)
	o.Mu.Dec = CASDecision{Kind: casApplied, Rec: rec, version: rec.Version}
	o.Mu.stamped, o.Mu.guarded = at, !o.n.clockGuard.Trusted(at)
	if o.Mu.minSeq == 0 || next.Seq < o.Mu.minSeq {
		o.Mu.minSeq = next.Seq
	}
	return records.EncodeCASValue(next), true
}

// send hands the proposal's messages to the key's acceptors.
func (o *casOp) send(attempt int, msgs []paxos.BasicMessage) {
	for _, m := range msgs {
		o.n.net.Call(m.To, ReplicaRequest{Kind: ReqCAS, RangeID: o.r.ID, Key: o.key, Cas: m},
			func(a ReplicaAnswer) { o.answer(attempt, m, a) })
	}
}

// answer steps the proposer with an acceptor's answer to m, of attempt.
// A call that failed counts as a refusal: the quorum decides.
func (o *casOp) answer(attempt int, m paxos.BasicMessage, a ReplicaAnswer) {
	self := o.n.store.NodeID()
	o.Mu.Lock()
	if attempt != o.Mu.attempt || o.Mu.decided {
		o.Mu.Unlock()
		return // an answer to an earlier proposal
	}
	o.Mu.outstanding--
	if m.Type == paxos.BasicPrepare {
		a = o.n.readable(o.r, m.To, a) // a filling acceptor's promise does not count (fill.go)
	}
	reply := a.Cas
	if a.Err == nil && reply.Type == paxos.BasicPromise {
		acc, rec, err := records.DecodePromise(reply.Value)
		if err != nil {
			a.Err = err
		} else {
			reply.Value = acc
			o.Mu.stored = wrn.Merge(o.Mu.stored, rec)
		}
	}
	ours := m.Type == paxos.BasicAccept && o.Mu.Dec.Kind == casApplied
	var release *paxos.BasicMessage
	switch {
	case a.Err != nil:
		o.Mu.failed = append(o.Mu.failed, fmt.Errorf("node %d: %w", m.To, a.Err))
		reply = refusalOf(m)
		if ours && transport.Refused(a.Err) {
			o.Mu.accepts-- // refused: not taken
		}
	case reply.Reject:
		o.Mu.rejected = true
		if ours {
			o.Mu.accepts--
		}
	case ours:
		o.Mu.accepts--
		o.Mu.sent = true // taken: the swap may be chosen
		if m.To != self {
			// Another acceptor took the version: this node's clock is
			// within the bound of its, and its own acceptor may take it
			// too.
			o.n.clockGuard.Confirm(o.Mu.stamped)
			if o.Mu.held != nil {
				release, o.Mu.held = o.Mu.held, nil
				o.Mu.outstanding++
			}
		}
	}
	msgs := o.Mu.p.Step(reply)
	if len(msgs) > 0 && msgs[0].Type == paxos.BasicAccept && o.Mu.Dec.Kind == casApplied {
		o.Mu.accepts += len(msgs)
		if o.Mu.guarded && len(msgs) > 1 {
			for i, am := range msgs {
				if am.To == self {
					o.Mu.held = &am
					msgs = append(msgs[:i:i], msgs[i+1:]...)
					break
				}
			}
		}
	}
	o.Mu.outstanding += len(msgs)
	if o.Mu.held != nil && o.Mu.outstanding == 0 {
		// Every other acceptor answered and none took the version: this
		// node's own acceptor does not get it either.
		held := *o.Mu.held
		o.Mu.held = nil
		o.Mu.accepts--
		o.Mu.failed = append(o.Mu.failed, fmt.Errorf("node %d: not sent: no other acceptor took the version, "+
			"so this node's clock could not be checked", self))
		o.Mu.p.Step(refusalOf(held))
	}
	out, decided := o.Mu.p.Outcome()
	o.Mu.decided = decided
	if decided && o.Mu.held != nil {
		// Decided before this node's own Accept was released: it was
		// never sent, so it cannot have been taken.
		o.Mu.held = nil
		o.Mu.accepts--
	}
	if decided && o.Mu.accepts > 0 {
		o.Mu.sent = true // some were not answered, or failed uncertainly
	}
	o.Mu.Unlock()
	switch {
	case decided:
		o.decide(out)
	default:
		if release != nil {
			msgs = append(msgs, *release)
		}
		o.send(attempt, msgs)
	}
}

// refusalOf is the refusal of m that a failed call to its acceptor counts
// as.
func refusalOf(m paxos.BasicMessage) paxos.BasicMessage {
	reply := paxos.BasicMessage{Type: paxos.BasicPromise, From: m.To, To: m.From, Ballot: m.Ballot, Reject: true}
	if m.Type == paxos.BasicAccept {
		reply.Type = paxos.BasicAccepted
	}
	return reply
}

// decide acts on the outcome of the current attempt's proposal.
func (o *casOp) decide(out paxos.Outcome) {
	o.Mu.Lock()
	attempt, dec, stored := o.Mu.attempt, o.Mu.Dec, o.Mu.stored
	failedOnly := len(o.Mu.failed) > 0 && !o.Mu.rejected
	errs := errors.Join(o.Mu.failed...)
	sent := o.Mu.sent
	o.Mu.Unlock()
	if out.Preempted {
		switch {
		case failedOnly && !sent:
			// The replicas' errors as text: wrapped, their codes (a
			// refusal's InvalidArgument) would be taken for this answer's.
			o.finish(CASResult{Err: fmt.Errorf("%w: keyspace %s range %d key %q: compare-and-swap needs a majority of %d replicas "+
				"to answer each Paxos phase; nothing was written: %v", store.ErrUnavailable, o.ks.Name, o.r.ID, command.Abbreviate(o.key), len(o.r.Replicas), errs)})
		case attempt >= maxCASAttempts:
			o.finish(CASResult{Err: o.unfinished(fmt.Sprintf("preempted %d times by concurrent ones (last: %v)", attempt, errs))})
		default:
			// Randomized backoff, growing, so that dueling proposers stop
			// preempting each other.
			wait := min(time.Millisecond<<min(attempt, 10), casBackoffMax)
			o.n.net.After(time.Duration(o.n.randInt64N(int64(wait))), o.attempt)
		}
		return
	}
	if !out.Exists && !out.Applied {
		// No phase 2: the key has no record anywhere.
		err := dec.err
		if dec.Kind == casError {
			err = o.unfinishedErr(dec.err)
		}
		o.finish(CASResult{Err: err})
		return
	}
	// Phase 2 won: the register holds dec.rec.
	switch dec.Kind {
	case casApplied, casMine:
		if dec.Kind == casApplied && o.n.evHooks.Chosen != nil {
			o.n.evHooks.Chosen(o.key)
		}
		// Chosen: the swap happened. It answers success once W replicas
		// stored its record (or a newer one), so that plain reads see it.
		o.n.newWriteOp(o.ks, o.r, o.qs, o.key, dec.Rec).Start(func(res WriteResult) {
			if res.Err != nil {
				o.finish(CASResult{Err: fmt.Errorf("%w: keyspace %s key %q: the compare-and-swap is chosen (version %s), "+
					"but its record is not yet stored on W replicas: plain reads may not see it yet; a retry with the same "+
					"idempotency key finishes the write: %v", store.ErrOutcomeUnknown, o.ks.Name, command.Abbreviate(o.key),
					FormatRecordVersion(dec.version), res.Err)})
				return
			}
			o.finish(CASResult{Version: FormatRecordVersion(dec.version)})
		})
	case CASFailed:
		// The current record, chosen again: make sure it is the key's
		// record too, in case its proposer did not live to write it. Best
		// effort: the condition failed either way.
		if stored.Version.Less(dec.Rec.Version) {
			o.n.newWriteOp(o.ks, o.r, o.qs, o.key, dec.Rec).Start(func(WriteResult) { o.finish(CASResult{Err: dec.err}) })
			return
		}
		o.finish(CASResult{Err: dec.err})
	case casLost:
		o.finish(CASResult{Err: fmt.Errorf("%w: keyspace %s key %q: an earlier attempt of this compare-and-swap may have been chosen, "+
			"and more than %d swaps of the key may have followed since: %w", store.ErrOutcomeUnknown, o.ks.Name,
			command.Abbreviate(o.key), records.CASHistoryLen, catalog.ErrSwapForgotten)})
	default:
		o.finish(CASResult{Err: o.unfinishedErr(dec.err)})
	}
}

func (o *casOp) finish(res CASResult) { o.done(res) }

// StepLocalCAS steps this replica's acceptor of key in range rangeID (or
// in the range a split gave the key to, split.go) with m (a Prepare or an Accept) and returns its answer, after persisting its
// state when it changed. A Promise's value is encodePromise's: what the
// acceptor accepted, and this replica's record of the key. An Accept whose
// record's version is more than the maximum clock offset ahead of this
// node's clock is refused (eventual_clock.go, rule 1).
func (c *Coordinator) StepLocalCAS(rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	if err := c.limits.CheckKey(key); err != nil {
		return paxos.BasicMessage{}, err
	}
	switch m.Type {
	case paxos.BasicPrepare:
	case paxos.BasicAccept:
		// The proposal is an encoded records.CASValue: the limit is on its
		// record's value (its history is bounded by decodeCASValue).
		v, err := records.DecodeCASValue(m.Value)
		if err != nil {
			return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap proposal: %v", catalog.ErrInvalidArgument, err)
		}
		if err := c.limits.CheckValue(v.Rec.Value); err != nil {
			return paxos.BasicMessage{}, err
		}
		if err := c.checkVersionClock(v.Rec.Version, "compare-and-swap proposal"); err != nil {
			return paxos.BasicMessage{}, err
		}
	default:
		return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap message %v", catalog.ErrInvalidArgument, m.Type)
	}
	c.split.barrier.RLock()
	defer c.split.barrier.RUnlock()
	r, err := c.resolve(rangeID, key)
	if err != nil {
		return paxos.BasicMessage{}, err
	}
	return c.Records.StepAcceptor(c.store.NodeID(), r.ID, key, m)
}
