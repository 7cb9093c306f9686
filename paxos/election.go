package paxos

import (
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/quorum"
)

// candidate is the state of phase 1: the votes so far and, per slot, the
// entry with the highest ballot that any granting acceptor reported.
type candidate struct {
	from  uint64 // first slot prepared: commit+1 when phase 1 began
	votes map[uint64]bool
	best  map[uint64]Entry
	sent  map[uint64]bool // who got the Prepare
	// systems caches the quorum systems of the configurations found in
	// promises, by encoding (reconfig.go, case 2).
	systems map[string]quorum.System
	// everySystem is every configuration reported, superseded or not,
	// for the canary everyPromisedConfig.
	everySystem []quorum.System
	// transfer: the leader at ballot transfer asked this node to take
	// over (MsgTimeoutNow); zero if none. Its Prepares say so
	// (Message.Transfer) and name that ballot (Message.Hint).
	transfer Ballot
}

// campaign starts phase 1 with a ballot above every ballot heard of;
// transfer is the ballot of the leader that asked for it (MsgTimeoutNow),
// zero if none did.
func (r *RawNode) campaign(transfer Ballot) {
	if r.role == Leader {
		panic(fmt.Sprintf("paxos: node %d: invalid transition [leader -> candidate]", r.id))
	}
	r.role, r.leader = Candidate, 0
	r.ballot = nextBallot(r.id, r.promised, r.maxSeen)
	r.promised = r.ballot // our own acceptor's promise, persisted with the Prepares
	r.resetElectionTimeout()
	r.cand = &candidate{
		from:     r.log.commit + 1,
		votes:    map[uint64]bool{r.id: true},
		best:     map[uint64]Entry{},
		sent:     map[uint64]bool{r.id: true},
		systems:  map[string]quorum.System{},
		transfer: transfer,
	}
	r.takePromise(r.log.accepted(r.cand.from))
	r.sendPrepares()
	r.checkElection()
}

// prepareSystems is the set of configurations whose phase-1 quorums the
// candidate needs (reconfig.go explains why).
//
// Of the configurations the promises report, it takes only those of the
// highest-ballot entry of their slot: a value chosen in a slot at ballot b
// is the value of every acceptance there at a ballot >= b, so an entry
// that a higher ballot superseded was never chosen (takePromise). Taking
// every reported configuration was safe but could block elections for
// good: one never chosen, whose voters never answer, kept every candidate
// from winning (TestSupersededConfigDoesNotBlockElection).
func (r *RawNode) prepareSystems() []quorum.System {
	known := systemsOf(r.configs.from(r.cand.from))
	if r.cfg.canary.knownConfigsOnly {
		return known
	}
	seen := map[string]bool{}
	for _, s := range sortedSlots(r.cand.best) {
		e := r.cand.best[s]
		if e.Type != EntryConfig || seen[string(e.Data)] {
			continue
		}
		seen[string(e.Data)] = true
		if sys, ok := r.cand.systems[string(e.Data)]; ok {
			known = append(known, sys)
		}
	}
	if r.cfg.canary.everyPromisedConfig {
		for _, sys := range r.cand.everySystem {
			known = append(known, sys)
		}
	}
	return known
}

// sendPrepares sends the Prepare to every voter of prepareSystems that has
// not had it yet.
func (r *RawNode) sendPrepares() {
	for _, sys := range r.prepareSystems() {
		for _, id := range sys.Voters() {
			if !r.cand.sent[id] {
				r.cand.sent[id] = true
				m := Message{Type: MsgPrepare, To: id, Ballot: r.ballot, Slot: r.cand.from}
				if !r.cand.transfer.IsZero() {
					m.Transfer, m.Hint = true, r.cand.transfer
				}
				r.send(m)
			}
		}
	}
}

func (r *RawNode) handlePromise(m Message) {
	if m.Reject {
		r.cand.votes[m.From] = false
		r.checkElection()
		return
	}
	r.cand.votes[m.From] = true
	if m.Snapshot != nil && m.Snapshot.Slot > r.log.commit {
		// The acceptor compacted slots we are preparing: they are chosen,
		// and the snapshot is their outcome.
		r.installSnapshot(*m.Snapshot)
	}
	r.takePromise(m.Entries)
	r.sendPrepares()
	r.checkElection()
}

// takePromise keeps, per slot, the entry with the highest ballot. Paxos's
// core rule: if a value was chosen in a slot at ballot b, every acceptor
// that accepted anything there at a ballot >= b accepted that same value,
// and our phase-1 quorum includes one of the acceptors that chose it; so
// the highest-ballot entry is the chosen value, if there is one.
func (r *RawNode) takePromise(entries []Entry) {
	if r.cfg.canary.ignoreAccepted {
		return // canary: the new leader proposes over whatever was accepted
	}
	for _, e := range entries {
		if e.Slot < r.cand.from {
			continue
		}
		if cur, ok := r.cand.best[e.Slot]; !ok || cur.Ballot.Less(e.Ballot) {
			r.cand.best[e.Slot] = e
		}
		if _, ok := r.cand.systems[string(e.Data)]; e.Type == EntryConfig && !ok {
			if m, err := UnmarshalMembership(e.Data); err == nil {
				if sys, err := m.System(); err == nil {
					r.cand.systems[string(e.Data)] = sys
					if r.cfg.canary.everyPromisedConfig {
						r.cand.everySystem = append(r.cand.everySystem, sys)
					}
				}
			}
		}
	}
}

func (r *RawNode) checkElection() {
	switch quorum.Vote(joint(r.prepareSystems()), quorum.Phase1, r.cand.votes) {
	case quorum.VoteWon:
		r.becomeLeader()
	case quorum.VoteLost:
		r.becomeFollower(0)
	}
}

// sortedSlots returns the keys of m in ascending order.
func sortedSlots(m map[uint64]Entry) []uint64 {
	out := make([]uint64, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
