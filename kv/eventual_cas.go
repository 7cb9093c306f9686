package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Compare-and-swap in eventual keyspaces (issue 6): Basic Paxos per key
// over the key's replicas, as Cassandra's lightweight transactions do.
//
// Every replica of a range keeps, per key that took part in a
// compare-and-swap, a Basic Paxos acceptor state (paxos.AcceptorState)
// under storage.CASStateKey: in the range's consensus state span, which
// eventual ranges do not otherwise use, so that scans and anti-entropy,
// which read the data span, never see it, and removing the replica
// removes it. It is written and synced before the acceptor answers.
//
// The coordinator runs a paxos.Proposer. The register's value is an
// encoded record (encodeRecord: value or tombstone, with its HLC
// version). The update compares the current value, the newer (by version)
// of the highest accepted value among the phase-1 answers and the key's
// record read from R replicas before the proposal, to the expectation;
// if it holds, it proposes the new value under a fresh HLC version. Once
// chosen, that record is also written to every replica as a normal record
// (acknowledged after W), so plain reads see it.
//
// Quorums: both phases use a majority of the key's replicas, whatever the
// keyspace's W and R. Paxos is safe only if every phase-1 quorum meets
// every phase-2 quorum; two majorities always meet, while the W/R sizes
// meet only when W+R > N, which per-request overrides may break, and a
// W=N keyspace would make every compare-and-swap wait for every replica.
// A majority tolerates ⌊(N-1)/2⌋ replicas down, like Cassandra's SERIAL
// consistency. The record read that seeds a key never written by
// compare-and-swap uses the keyspace's R, which meets the keyspace's W.
//
// PITFALL: the guarantee holds only among compare-and-swaps. A plain Put
// or Delete of a key also written by compare-and-swap bypasses Paxos: a
// compare-and-swap running concurrently may miss it, and two compare-and-
// swaps may both succeed around it. Write such keys only by
// compare-and-swap (Cassandra's known pitfall of mixing LWT and plain
// writes).

// maxCASAttempts bounds the proposals of one compare-and-swap preempted by
// concurrent ones before it answers Unavailable.
const maxCASAttempts = 30

// newProposerID returns a ballot owner ID unique to one compare-and-swap
// request: the node ID in the high bits and a counter started at a
// random value in the low ones. Two proposals of one node (concurrent,
// or before and after a restart) then never share a ballot, which
// acceptors would take for retransmissions of one proposal.
func (n *Node) newProposerID() uint64 {
	return n.store.NodeID()<<32 | n.casSeq.Add(1)&0xFFFFFFFF
}

// randInt64N returns a random number in [0, max) from the node's source,
// seeded by NodeConfig.Seed.
func (n *Node) randInt64N(max int64) int64 {
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return n.rng.Int64N(max)
}

// casSystem is the quorum system of a key's acceptors: a majority of the
// range's replicas (see above).
func casSystem(r *RangeDescriptor) (quorum.System, error) {
	ids := make([]uint64, len(r.Replicas))
	for i, rep := range r.Replicas {
		ids[i] = rep.NodeID
	}
	return quorum.Majority(ids...)
}

// checkExpect checks expect against cur, key's current record.
func checkExpect(key []byte, expect Expect, cur wrn.Record) error {
	var want string
	var ok bool
	switch {
	case expect.Absent:
		want, ok = "to be absent", !cur.Exists()
	case expect.Exists:
		want, ok = "to exist", cur.Exists()
	case expect.Version != "":
		want = "to be at version " + expect.Version
		ok = cur.Exists() && formatRecordVersion(cur.Version) == expect.Version
	default:
		want = fmt.Sprintf("to hold %q", abbreviate(expect.Value))
		ok = cur.Exists() && bytes.Equal(cur.Value, expect.Value)
	}
	switch {
	case ok:
		return nil
	case !cur.Exists():
		return fmt.Errorf("%w: expected key %q %s, but it does not exist", ErrConditionFailed, abbreviate(key), want)
	}
	return fmt.Errorf("%w: expected key %q %s, but it holds %q at version %s",
		ErrConditionFailed, abbreviate(key), want, abbreviate(cur.Value), formatRecordVersion(cur.Version))
}

// casEventual is CompareAndSwap in eventual keyspace ks (see above).
func (n *Node) casEventual(ctx context.Context, ks KeyspaceDescriptor, r *RangeDescriptor, key []byte, expect Expect,
	value []byte) (string, error) {
	op, err := n.newCASOp(ks, r, key, expect, value)
	if err != nil {
		return "", err
	}
	res, err := await(ctx, op.start, op.giveUp)
	if err != nil {
		return "", err
	}
	return res.version, res.err
}

// casOp is one compare-and-swap in an eventual keyspace: attempts of
// [read the key's record, run a Basic Paxos proposal] until a proposal
// is decided (see above), then the write of the chosen record.
type casOp struct {
	n      *Node
	ks     KeyspaceDescriptor
	r      *RangeDescriptor
	qs     wrn.Quorums
	key    []byte
	expect Expect
	value  []byte
	done   func(casResult)
	mu     struct {
		sync.Mutex
		p       *paxos.Proposer
		attempt int
		// ours are the values this request proposed: a preempted
		// proposal's value may still be chosen, by a later proposer that
		// found it accepted. A later attempt that finds it is then this
		// request's success, not a failed condition.
		ours map[string]bool
		// Of the current attempt: the key's record read before the
		// proposal (for a key Paxos has no value of yet), the failed
		// condition, whether the proposer chose again a value of ours,
		// the requests not answered yet and the errors of those that
		// failed.
		stored      wrn.Record
		condErr     error
		mine        bool
		outstanding int
		errs        []error
		decided     bool // the current attempt's proposal is decided
		abandoned   bool // the request gave up: no further attempt
	}
}

// casResult is a decided compare-and-swap: the new version, or the error.
type casResult struct {
	version string
	err     error
}

func (n *Node) newCASOp(ks KeyspaceDescriptor, r *RangeDescriptor, key []byte, expect Expect, value []byte) (*casOp, error) {
	sys, err := casSystem(r)
	if err != nil {
		return nil, fmt.Errorf("%w: keyspace %s: %v", ErrInvalidArgument, ks.Name, err)
	}
	qs, err := n.eventualQuorums(ks, r, QuorumOverride{})
	if err != nil {
		return nil, err
	}
	o := &casOp{n: n, ks: ks, r: r, qs: qs, key: key, expect: expect, value: value}
	o.mu.p = paxos.NewProposer(n.newProposerID(), sys)
	o.mu.ours = map[string]bool{}
	return o, nil
}

func (o *casOp) start(done func(casResult)) {
	o.done = done
	o.attempt()
}

// giveUp stops further attempts of a request whose client gave up, and
// describes where it was.
func (o *casOp) giveUp() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mu.abandoned = true
	return fmt.Sprintf("keyspace %s compare-and-swap, attempt %d", o.ks.Name, o.mu.attempt)
}

// attempt reads the key's record, then proposes.
func (o *casOp) attempt() {
	o.mu.Lock()
	if o.mu.abandoned {
		o.mu.Unlock()
		o.finish(casResult{err: fmt.Errorf("%w: keyspace %s key %q: compare-and-swap abandoned by its client",
			ErrUnavailable, o.ks.Name, abbreviate(o.key))})
		return
	}
	o.mu.attempt++
	attempt := o.mu.attempt
	o.mu.Unlock()
	o.n.newReadOp(o.ks, o.r, o.qs, o.key).start(func(res readResult) { o.propose(attempt, res) })
}

func (o *casOp) propose(attempt int, read readResult) {
	if read.err != nil {
		o.finish(casResult{err: read.err})
		return
	}
	o.mu.Lock()
	o.mu.stored, o.mu.condErr, o.mu.mine = read.rec, nil, false
	o.mu.errs, o.mu.decided = nil, false
	msgs := o.mu.p.Propose(o.update)
	o.mu.outstanding = len(msgs)
	o.mu.Unlock()
	o.send(attempt, msgs)
}

// update is the proposal's paxos.UpdateFunc; it runs in Step, o.mu held.
func (o *casOp) update(cur []byte, exists bool) ([]byte, bool) {
	current := o.mu.stored
	if exists && o.mu.ours[string(cur)] {
		o.mu.mine = true
		return cur, false // chosen again by the proposer
	}
	if exists {
		acc, err := decodeRecord(cur)
		if err != nil {
			o.mu.condErr = fmt.Errorf("key %q: accepted compare-and-swap value: %w", abbreviate(o.key), err)
			return cur, false
		}
		current = wrn.Merge(acc, o.mu.stored)
	}
	if o.mu.condErr = checkExpect(o.key, o.expect, current); o.mu.condErr != nil {
		return cur, false
	}
	o.n.observeVersion(current.Version)
	rec, err := o.n.version(wrn.Record{Value: o.value})
	if err != nil {
		o.mu.condErr = err
		return cur, false
	}
	next := encodeRecord(rec)
	o.mu.ours[string(next)] = true
	return next, true
}

// send hands the proposal's messages to the key's acceptors.
func (o *casOp) send(attempt int, msgs []paxos.BasicMessage) {
	for _, m := range msgs {
		to := m.To
		o.n.net.call(to, replicaRequest{kind: reqCAS, rangeID: o.r.ID, key: o.key, cas: m},
			func(a replicaAnswer) { o.answer(attempt, to, a) })
	}
}

// answer steps the proposer with an acceptor's answer of attempt.
func (o *casOp) answer(attempt int, from uint64, a replicaAnswer) {
	o.mu.Lock()
	if attempt != o.mu.attempt || o.mu.decided {
		o.mu.Unlock()
		return // an answer to an earlier proposal
	}
	o.mu.outstanding--
	var msgs []paxos.BasicMessage
	if a.err != nil {
		o.mu.errs = append(o.mu.errs, fmt.Errorf("node %d: %w", from, a.err))
	} else {
		msgs = o.mu.p.Step(a.cas)
	}
	out, decided := o.mu.p.Outcome()
	o.mu.outstanding += len(msgs)
	stuck := !decided && o.mu.outstanding == 0
	o.mu.decided = decided || stuck
	errs := o.mu.errs
	o.mu.Unlock()
	switch {
	case decided:
		o.decide(out)
	case stuck:
		o.finish(casResult{err: fmt.Errorf("%w: keyspace %s range %d key %q: compare-and-swap needs a majority of %d replicas "+
			"to answer each Paxos phase: %w", ErrUnavailable, o.ks.Name, o.r.ID, abbreviate(o.key), len(o.r.Replicas), errors.Join(errs...))})
	default:
		o.send(attempt, msgs)
	}
}

// decide acts on the outcome of the current attempt's proposal.
func (o *casOp) decide(out paxos.Outcome) {
	o.mu.Lock()
	attempt, stored, condErr, mine := o.mu.attempt, o.mu.stored, o.mu.condErr, o.mu.mine
	o.mu.Unlock()
	switch {
	case out.Preempted:
		if attempt >= maxCASAttempts {
			o.finish(casResult{err: fmt.Errorf("%w: keyspace %s key %q: compare-and-swap preempted %d times by concurrent ones",
				ErrUnavailable, o.ks.Name, abbreviate(o.key), attempt)})
			return
		}
		// Randomized backoff, growing, so that dueling proposers stop
		// preempting each other.
		o.n.net.after(time.Duration(o.n.randInt64N(int64(time.Millisecond)*int64(min(attempt, 10)))), o.attempt)
	case !out.Applied && !(out.Exists && mine):
		if condErr == nil {
			condErr = fmt.Errorf("%w: keyspace %s key %q: compare-and-swap not applied", ErrUnavailable, o.ks.Name, abbreviate(o.key))
		}
		if out.Exists {
			// The current value, chosen again: make sure it is the key's
			// record too, in case its proposer did not live to write it.
			// Best effort: the condition failed either way.
			if rec, err := decodeRecord(out.Value); err == nil && stored.Version.Less(rec.Version) {
				o.n.newWriteOp(o.ks, o.r, o.qs, o.key, rec).start(func(writeResult) { o.finish(casResult{err: condErr}) })
				return
			}
		}
		o.finish(casResult{err: condErr})
	default:
		rec, err := decodeRecord(out.Value)
		if err != nil {
			o.finish(casResult{err: err})
			return
		}
		// Chosen: make it the key's record, so plain reads see it. A
		// failure here leaves it chosen (a later compare-and-swap sees
		// it), but plain reads may not yet: Unavailable, as for any write
		// whose outcome the client cannot know.
		o.n.newWriteOp(o.ks, o.r, o.qs, o.key, rec).start(func(res writeResult) {
			if res.err != nil {
				o.finish(casResult{err: fmt.Errorf("compare-and-swap chosen, but not yet written to W replicas: %w", res.err)})
				return
			}
			o.finish(casResult{version: formatRecordVersion(rec.Version)})
		})
	}
}

func (o *casOp) finish(res casResult) { o.done(res) }

// stepLocalCAS steps this replica's acceptor of key in range rangeID with
// m (a Prepare or an Accept) and returns its answer, after persisting its
// state when it changed.
func (n *Node) stepLocalCAS(rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	if err := n.limits.CheckKey(key); err != nil {
		return paxos.BasicMessage{}, err
	}
	switch m.Type {
	case paxos.BasicPrepare:
	case paxos.BasicAccept:
		// The proposal is an encoded record: the limit is on its value.
		rec, err := decodeRecord(m.Value)
		if err != nil {
			return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap proposal: %v", ErrInvalidArgument, err)
		}
		if err := n.limits.CheckValue(rec.Value); err != nil {
			return paxos.BasicMessage{}, err
		}
	default:
		return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap message %v", ErrInvalidArgument, m.Type)
	}
	if _, err := n.localEventualRange(rangeID); err != nil {
		return paxos.BasicMessage{}, err
	}
	return n.records.stepAcceptor(n.store.NodeID(), rangeID, key, m)
}

// stepAcceptor runs key's acceptor (see stepLocalCAS) under the key's
// stripe of casLocks.
func (s *recordStore) stepAcceptor(self, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	mu := s.casStripe(rangeID, key)
	mu.Lock()
	defer mu.Unlock()
	sk := storage.CASStateKey(rangeID, key)
	var st paxos.AcceptorState
	raw, err := s.db.Get(sk)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return paxos.BasicMessage{}, err
	default:
		if err := st.Unmarshal(raw); err != nil {
			return paxos.BasicMessage{}, fmt.Errorf("%w: range %d key %q: %v", ErrCorrupt, rangeID, abbreviate(key), err)
		}
	}
	m.To = self
	rd := paxos.NewAcceptor(self, st).Step(m)
	if rd.Persist {
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.Set(sk, rd.State.Marshal()); err != nil {
			return paxos.BasicMessage{}, err
		}
		if err := b.Commit(true /* sync: a reply is a promise */); err != nil {
			return paxos.BasicMessage{}, err
		}
	}
	if len(rd.Messages) != 1 {
		return paxos.BasicMessage{}, fmt.Errorf("acceptor answered %d messages to %v", len(rd.Messages), m.Type)
	}
	return rd.Messages[0], nil
}

// casLocks serialize the acceptor steps of one key on a replica.
type casLocks [recordLockStripes]sync.Mutex

func (s *recordStore) casStripe(rangeID uint64, key []byte) *sync.Mutex {
	return &s.casLocks[stripeIndex(rangeID, key)]
}

func ballotToProto(b paxos.Ballot) *peerv1.Ballot {
	if b.IsZero() {
		return nil
	}
	return &peerv1.Ballot{Round: b.Round, NodeId: b.NodeID}
}

func ballotFromProto(b *peerv1.Ballot) paxos.Ballot {
	if b == nil {
		return paxos.Ballot{}
	}
	return paxos.Ballot{Round: b.Round, NodeID: b.NodeId}
}

func (c connectRecords) casStep(ctx context.Context, to, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	reply := paxos.BasicMessage{From: to, To: m.From, Ballot: m.Ballot}
	switch m.Type {
	case paxos.BasicPrepare:
		req := &peerv1.CasPrepareRequest{RangeId: rangeID, Key: key, From: m.From, Ballot: ballotToProto(m.Ballot)}
		resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_CasPrepare{CasPrepare: req}},
			(*peerv1.RecordAnswer).GetCasPrepare,
			func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.CasPrepareResponse], error) {
				return cl.CasPrepare(ctx, connect.NewRequest(req))
			})
		if err != nil {
			return paxos.BasicMessage{}, err
		}
		reply.Type, reply.Reject, reply.Promised = paxos.BasicPromise, resp.Reject, ballotFromProto(resp.Promised)
		reply.Accepted, reply.Value = ballotFromProto(resp.Accepted), resp.Value
	case paxos.BasicAccept:
		req := &peerv1.CasAcceptRequest{RangeId: rangeID, Key: key, From: m.From, Ballot: ballotToProto(m.Ballot), Value: m.Value}
		resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_CasAccept{CasAccept: req}},
			(*peerv1.RecordAnswer).GetCasAccept,
			func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.CasAcceptResponse], error) {
				return cl.CasAccept(ctx, connect.NewRequest(req))
			})
		if err != nil {
			return paxos.BasicMessage{}, err
		}
		reply.Type, reply.Reject, reply.Promised = paxos.BasicAccepted, resp.Reject, ballotFromProto(resp.Promised)
	default:
		return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap message %v", ErrInvalidArgument, m.Type)
	}
	return reply, nil
}

func (p *peerServer) CasPrepare(ctx context.Context, req *connect.Request[peerv1.CasPrepareRequest]) (*connect.Response[peerv1.CasPrepareResponse], error) {
	if err := p.node.awaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, toConnect(err)
	}
	m := req.Msg
	rm, err := p.node.stepLocalCAS(m.RangeId, m.Key, paxos.BasicMessage{Type: paxos.BasicPrepare, From: m.From,
		Ballot: ballotFromProto(m.Ballot)})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&peerv1.CasPrepareResponse{Reject: rm.Reject, Promised: ballotToProto(rm.Promised),
		Accepted: ballotToProto(rm.Accepted), Value: rm.Value}), nil
}

func (p *peerServer) CasAccept(ctx context.Context, req *connect.Request[peerv1.CasAcceptRequest]) (*connect.Response[peerv1.CasAcceptResponse], error) {
	if err := p.node.awaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, toConnect(err)
	}
	m := req.Msg
	rm, err := p.node.stepLocalCAS(m.RangeId, m.Key, paxos.BasicMessage{Type: paxos.BasicAccept, From: m.From,
		Ballot: ballotFromProto(m.Ballot), Value: m.Value})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&peerv1.CasAcceptResponse{Reject: rm.Reject, Promised: ballotToProto(rm.Promised)}), nil
}
