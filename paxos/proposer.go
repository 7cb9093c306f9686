package paxos

import (
	"fmt"

	"github.com/quorumkv/quorumkv/quorum"
)

// UpdateFunc decides the value to propose from the register's current
// value: the value with the highest ballot among the Promises of a phase-1
// quorum (exists is false if none of them has accepted anything). It
// returns the next value and true to write it, or false to leave the
// register as it is: a compare-and-set whose condition fails.
//
// This is what makes Basic Paxos a compare-and-set register (Rystsov's
// CASPaxos, Cassandra's lightweight transactions): every proposal reads the
// current value in phase 1 and writes a value derived from it in phase 2.
// Single-decree Paxos is the special case SetOnce.
type UpdateFunc func(current []byte, exists bool) (next []byte, ok bool)

// SetOnce proposes v unless a value already exists: classic single-decree
// Paxos, where the first value chosen stays chosen.
func SetOnce(v []byte) UpdateFunc {
	return func(cur []byte, exists bool) ([]byte, bool) {
		if exists {
			return cur, false
		}
		return v, true
	}
}

// CompareAndSet writes next if the current value equals expect (a missing
// value equals nil expect only when wantMissing is set).
func CompareAndSet(expect []byte, wantMissing bool, next []byte) UpdateFunc {
	return func(cur []byte, exists bool) ([]byte, bool) {
		if exists == !wantMissing && (!exists || string(cur) == string(expect)) {
			return next, true
		}
		return cur, false
	}
}

// Outcome is how a proposal ended.
type Outcome struct {
	// Preempted means a higher ballot got in the way: the proposal may or
	// may not take effect later (a later proposer may find and re-propose
	// its value). Propose again after a randomized backoff.
	Preempted bool
	// Applied means the update returned true and its value was chosen.
	Applied bool
	// Exists and Value are the register's value as of this ballot: the new
	// value if Applied, else the current one (chosen again if it had only
	// been accepted, so that it is now certain).
	Exists bool
	Value  []byte
	Ballot Ballot
}

type proposerPhase uint8

const (
	proposerIdle proposerPhase = iota
	proposerPreparing
	proposerAccepting
	proposerDone
)

// Proposer drives one Basic Paxos proposal at a time over the acceptors of
// a quorum system. It keeps no durable state: ballots it has used are
// above-or-equal to what acceptors promised, and a restarted proposer
// learns the current ballots from refusals.
type Proposer struct {
	id     uint64
	sys    quorum.System
	canary canaries

	phase  proposerPhase
	ballot Ballot
	seen   Ballot // highest ballot heard of, to skip past
	update UpdateFunc
	votes  map[uint64]bool
	// highest accepted ballot and its value among the granted Promises.
	highest Ballot
	current []byte
	value   []byte // the value sent in phase 2
	applied bool
	outcome Outcome
}

// NewProposer returns a proposer with ID id over the acceptors of sys.
func NewProposer(id uint64, sys quorum.System) *Proposer {
	return &Proposer{id: id, sys: sys}
}

// Ballot returns the ballot of the current or last proposal.
func (p *Proposer) Ballot() Ballot { return p.ballot }

// Outcome returns the result of the last proposal once it is decided.
func (p *Proposer) Outcome() (Outcome, bool) {
	return p.outcome, p.phase == proposerDone
}

// Propose starts phase 1 with a ballot above every ballot this proposer
// has heard of, abandoning any proposal in progress. It returns the
// Prepares to send, one per acceptor, including this node's own.
func (p *Proposer) Propose(update UpdateFunc) []BasicMessage {
	p.ballot = nextBallot(p.id, p.seen, p.ballot)
	p.seen = p.ballot
	p.phase, p.update = proposerPreparing, update
	p.votes = map[uint64]bool{}
	p.highest, p.current, p.value, p.applied = Ballot{}, nil, nil, false
	p.outcome = Outcome{}
	return p.broadcast(BasicMessage{Type: BasicPrepare})
}

// Step takes a Promise or an Accepted and returns the messages to send
// next. Answers about another ballot are stale and ignored.
func (p *Proposer) Step(m BasicMessage) []BasicMessage {
	if m.Reject {
		p.seen = maxBallot(p.seen, m.Promised)
	}
	if m.Ballot != p.ballot {
		return nil
	}
	switch {
	case m.Type == BasicPromise && p.phase == proposerPreparing:
		return p.promise(m)
	case m.Type == BasicAccepted && p.phase == proposerAccepting:
		p.votes[m.From] = !m.Reject
		switch quorum.Vote(p.sys, quorum.Phase2, p.votes) {
		case quorum.VoteWon:
			p.finish(Outcome{Applied: p.applied, Exists: true, Value: p.value, Ballot: p.ballot})
		case quorum.VoteLost:
			p.finish(Outcome{Preempted: true, Ballot: p.ballot})
		}
	}
	return nil
}

func (p *Proposer) promise(m BasicMessage) []BasicMessage {
	p.votes[m.From] = !m.Reject
	if !m.Reject && p.highest.Less(m.Accepted) && !p.canary.ignoreAccepted {
		p.highest, p.current = m.Accepted, m.Value
	}
	switch quorum.Vote(p.sys, quorum.Phase1, p.votes) {
	case quorum.VoteLost:
		p.finish(Outcome{Preempted: true, Ballot: p.ballot})
		return nil
	case quorum.VotePending:
		return nil
	}
	// Phase 1 is won: no ballot below ours can be chosen from now on, and
	// the highest accepted value we heard of is the only one that may have
	// been chosen already. Derive the next value from it.
	exists := !p.highest.IsZero()
	next, ok := p.update(p.current, exists)
	switch {
	case ok:
		p.value, p.applied = next, true
	case exists:
		// The condition failed, but the current value may have been
		// accepted by fewer than a phase-2 quorum. Choose it again, or a
		// later reader might not see the value this proposal reports.
		p.value = p.current
	default:
		p.finish(Outcome{Ballot: p.ballot})
		return nil
	}
	p.phase, p.votes = proposerAccepting, map[uint64]bool{}
	return p.broadcast(BasicMessage{Type: BasicAccept, Value: p.value})
}

func (p *Proposer) finish(o Outcome) {
	p.phase, p.outcome = proposerDone, o
}

func (p *Proposer) broadcast(m BasicMessage) []BasicMessage {
	voters := p.sys.Voters()
	out := make([]BasicMessage, 0, len(voters))
	for _, id := range voters {
		m.From, m.To, m.Ballot = p.id, id, p.ballot
		out = append(out, m)
	}
	return out
}

func (p *Proposer) String() string {
	return fmt.Sprintf("proposer %d ballot %v", p.id, p.ballot)
}
