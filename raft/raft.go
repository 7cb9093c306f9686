package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/quorumkv/quorumkv/quorum"
)

// campaignType says why a node campaigns.
type campaignType uint8

const (
	campaignPreElection campaignType = iota // pre-vote first
	campaignElection                        // straight to a real election
	campaignTransfer                        // asked by the leader (MsgTimeoutNow)
)

type stepFunc func(r *raft, m Message)

// raft is the protocol state of one node. It is not safe for concurrent
// use; RawNode wraps it.
type raft struct {
	id uint64

	// Term and Vote are persisted (HardState) before any message that
	// depends on them is sent.
	Term uint64
	Vote uint64

	log   *raftLog
	state StateType
	lead  uint64
	conf  config
	// prs is the leader's Progress per member; nil on other nodes.
	prs   progressMap
	votes map[uint64]bool

	msgs       []Message
	readStates []ReadState
	readOnly   readOnly

	checkQuorum bool
	preVote     bool

	electionTimeout           int
	heartbeatTimeout          int
	randomizedElectionTimeout int
	electionElapsed           int
	heartbeatElapsed          int
	// ticks counts every Tick since start: the lease clock, and the guard
	// that keeps a restarted node from voting inside a lease it forgot.
	ticks int

	maxMsgSize         uint64
	maxInflightMsgs    int
	maxInflightBytes   uint64
	maxUncommittedSize uint64
	uncommittedSize    uint64

	// pendingConfIndex is the index of the last configuration entry the
	// leader appended; another may be proposed once it is applied.
	pendingConfIndex uint64
	// leadTransferee is the target of a leader transfer in progress.
	leadTransferee uint64
	// bcastPending: new entries or a new commit index wait to be sent to
	// every follower. Sending is deferred to the next Ready, so that all
	// proposals and acknowledgements handled in between share one MsgApp
	// per follower (batching).
	bcastPending bool

	rand     *rand.Rand
	logger   *slog.Logger
	step     stepFunc
	tick     func()
	canaries canaries
}

func newRaft(c Config) (*raft, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	log, err := newLog(c.Storage, c.Logger, c.MaxCommittedSizePerReady)
	if err != nil {
		return nil, err
	}
	hs, cs, err := c.Storage.InitialState()
	if err != nil {
		return nil, err
	}
	r := &raft{
		id:                 c.ID,
		log:                log,
		checkQuorum:        !c.DisableCheckQuorum,
		preVote:            !c.DisablePreVote,
		electionTimeout:    c.ElectionTicks,
		heartbeatTimeout:   c.HeartbeatTicks,
		maxMsgSize:         c.MaxSizePerMsg,
		maxInflightMsgs:    c.MaxInflightMsgs,
		maxInflightBytes:   c.MaxInflightBytes,
		maxUncommittedSize: c.MaxUncommittedEntriesSize,
		readOnly:           readOnly{option: c.ReadOnly},
		rand:               c.Rand,
		logger:             c.Logger,
		canaries:           c.canaries,
	}
	if r.canaries.forgetVoteOnRestart {
		hs.Vote = None
	}
	if err := r.loadState(hs); err != nil {
		return nil, err
	}
	applied := max(c.Applied, log.firstIndex()-1)
	if applied > log.committed {
		return nil, fmt.Errorf("%w: Applied %d is beyond the persisted commit index %d", ErrInvalidConfig, applied, log.committed)
	}
	log.appliedTo(applied)
	conf, err := r.recoverConfig(cs, applied)
	if err != nil {
		return nil, err
	}
	r.conf = conf
	r.becomeFollower(r.Term, None)
	r.logf("newRaft %d [config: %s, term: %d, commit: %d, applied: %d, lastindex: %d, lastterm: %d]",
		r.id, r.conf, r.Term, r.log.committed, r.log.applied, r.log.lastIndex(), r.log.lastTerm())
	return r, nil
}

// loadState restores the persisted HardState.
func (r *raft) loadState(hs HardState) error {
	if hs.Commit > r.log.lastIndex() {
		return fmt.Errorf("%w: HardState commit %d is beyond the last index %d", ErrInvalidConfig, hs.Commit, r.log.lastIndex())
	}
	r.log.commitTo(hs.Commit) // a commit below the snapshot's index is a no-op
	r.Term, r.Vote = hs.Term, hs.Vote
	return nil
}

// recoverConfig returns the configuration applied at applied: the
// snapshot's, replaced by each configuration entry up to applied. Entries
// carry whole configurations, so the last one wins.
func (r *raft) recoverConfig(cs ConfState, applied uint64) (config, error) {
	first := r.log.firstIndex()
	if applied >= first {
		ents, err := r.log.slice(first, applied+1, noLimit)
		if err != nil {
			return config{}, err
		}
		for _, e := range ents {
			if e.Type != EntryConfChange {
				continue
			}
			if cs, err = decodeConfState(e.Data); err != nil {
				return config{}, err
			}
		}
	}
	return newConfig(cs)
}

func (r *raft) logf(format string, args ...any) {
	r.logger.Info(fmt.Sprintf(format, args...))
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.Term, Vote: r.Vote, Commit: r.log.committed}
}

func (r *raft) softState() SoftState { return SoftState{Lead: r.lead, State: r.state} }

// send queues m for the next Ready. Vote messages carry their Term
// explicitly (a pre-vote is for a Term not yet taken); every other message
// carries the current Term.
func (r *raft) send(m Message) {
	m.From = r.id
	switch m.Type {
	case MsgVote, MsgVoteResp, MsgPreVote, MsgPreVoteResp:
		if m.Term == 0 {
			panic(fmt.Sprintf("raft: %s must carry a Term", m.Type))
		}
	default:
		if m.Term != 0 {
			panic(fmt.Sprintf("raft: %s must not carry a Term (it gets the current one)", m.Type))
		}
		m.Term = r.Term
	}
	r.msgs = append(r.msgs, m)
}

// --- role changes --------------------------------------------------------

// reset starts a new role in Term term.
func (r *raft) reset(term uint64) {
	if r.Term != term {
		r.Term = term
		r.Vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.resetRandomizedElectionTimeout()
	r.leadTransferee = None
	r.votes = map[uint64]bool{}
	r.prs = nil
	r.bcastPending = false
	r.uncommittedSize = 0
	r.readOnly = readOnly{option: r.readOnly.option}
}

// resetRandomizedElectionTimeout draws the election timeout from
// [electionTimeout, 2*electionTimeout): the spread makes split votes rare,
// since one node usually times out well before the others.
func (r *raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.IntN(r.electionTimeout)
}

func (r *raft) becomeFollower(term, lead uint64) {
	r.step = stepFollower
	r.reset(term)
	r.tick = r.tickElection
	r.lead = lead
	r.state = StateFollower
	r.logf("%d became follower at term %d", r.id, r.Term)
}

func (r *raft) invalidTransition(to StateType) {
	panic(fmt.Sprintf("raft: invalid transition [%s -> %s]", r.state, to))
}

// candidateTerm is the Term this node would campaign for: the next one,
// or in a configuration whose election quorums can be disjoint the next
// one it owns (see terms.go).
func (r *raft) candidateTerm() uint64 {
	if r.conf.uniqueTerms {
		return nextOwnedTerm(r.id, r.Term)
	}
	return r.Term + 1
}

func (r *raft) becomeCandidate() {
	if r.state == StateLeader {
		r.invalidTransition(StateCandidate)
	}
	r.step = stepCandidate
	r.reset(r.candidateTerm())
	r.tick = r.tickElection
	r.Vote = r.id
	r.state = StateCandidate
	r.logf("%d became candidate at term %d", r.id, r.Term)
}

func (r *raft) becomePreCandidate() {
	if r.state == StateLeader {
		r.invalidTransition(StatePreCandidate)
	}
	// A pre-candidate changes neither Term nor Vote: that is the point.
	r.step = stepCandidate
	r.votes = map[uint64]bool{}
	r.tick = r.tickElection
	r.lead = None
	r.state = StatePreCandidate
	r.logf("%d became pre-candidate at term %d", r.id, r.Term)
}

func (r *raft) becomeLeader() {
	if r.state == StateFollower || r.state == StatePreCandidate {
		r.invalidTransition(StateLeader)
	}
	if r.conf.uniqueTerms && !ownsTerm(r.id, r.Term) {
		panic(fmt.Sprintf("raft: %d would lead term %d, which it does not own", r.id, r.Term))
	}
	r.step = stepLeader
	r.reset(r.Term)
	r.tick = r.tickHeartbeat
	r.lead = r.id
	r.state = StateLeader
	r.prs = progressMap{}
	for _, id := range r.conf.members() {
		r.addProgress(id)
	}
	// The leader's own Match is what it has persisted; it grows as
	// Advance reports more (onPersisted), never before.
	self := r.prs[r.id]
	self.Match = r.log.unstable.offset - 1
	self.becomeReplicate()
	self.RecentActive = true
	// Block configuration changes until the leader has applied its whole
	// log: an earlier leader's change may still be uncommitted in it.
	r.pendingConfIndex = r.log.lastIndex()
	// The empty entry (Raft §5.4.2; the article's "empty entry"): a leader
	// may only commit an entry of its own Term by counting replicas. The
	// entries it inherited from earlier Terms commit with this one, and
	// until it commits, the leader does not know the commit index and must
	// not serve reads.
	r.appendEntry(Entry{Data: nil})
	r.logf("%d became leader at term %d", r.id, r.Term)
}

func (r *raft) addProgress(id uint64) {
	pr := &Progress{
		Next:      r.log.lastIndex() + 1,
		IsLearner: !r.conf.isVoter(id),
		inflights: newInflights(r.maxInflightMsgs, r.maxInflightBytes),
	}
	r.prs[id] = pr
}

// --- ticks ---------------------------------------------------------------

func (r *raft) tickElection() {
	r.ticks++
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.hup(campaignPreElection)
	}
}

func (r *raft) tickHeartbeat() {
	r.ticks++
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		if r.checkQuorum && !r.checkQuorumActive() {
			return
		}
		r.checkStalled()
		if r.leadTransferee != None {
			r.logf("%d [term %d] abort leader transfer to %d: it did not finish within an election timeout", r.id, r.Term, r.leadTransferee)
			r.leadTransferee = None
		}
		if !r.conf.isVoter(r.id) {
			r.handOver()
		}
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// checkQuorumActive steps down a leader that heard from no phase-2 quorum
// in the last election timeout: it cannot commit, and the followers it
// lost may already have elected someone else. It reports whether the
// node is still the leader.
func (r *raft) checkQuorumActive() bool {
	active := r.conf.sys.IsQuorum(quorum.Phase2, func(id uint64) bool {
		pr := r.prs[id]
		return id == r.id || (pr != nil && pr.RecentActive)
	})
	for id, pr := range r.prs {
		pr.RecentActive = id == r.id
	}
	if !active {
		r.logf("%d stepped down to follower since quorum is not active", r.id)
		r.becomeFollower(r.Term, None)
	}
	return active
}

// checkStalled returns to probing any follower that is replicating with
// entries in flight but acknowledged nothing for a whole election timeout:
// its MsgApps were probably lost (a transport that reports failures calls
// ReportUnreachable sooner). Without this, a follower whose messages were
// dropped would wait for the next proposal to notice the gap.
func (r *raft) checkStalled() {
	for _, id := range r.prs.sortedIDs() {
		pr := r.prs[id]
		if id != r.id && pr.State == StateReplicate && pr.Match < r.log.lastIndex() && pr.Match == pr.matchAtCheck {
			pr.becomeProbe()
			r.logf("%d follower %d acknowledged nothing for an election timeout; probing [%s]", r.id, id, pr)
			r.sendAppend(id, true /* sendIfEmpty */)
		}
		pr.matchAtCheck = pr.Match
	}
}

// promotable reports whether this node may campaign: it is a voter of
// its applied configuration and is not about to install a snapshot.
func (r *raft) promotable() bool {
	return r.conf.isVoter(r.id) && r.log.unstable.snapshot == nil
}

// --- elections -----------------------------------------------------------

func (r *raft) hup(t campaignType) {
	if r.state == StateLeader {
		r.logf("%d ignoring campaign: already leader", r.id)
		return
	}
	if !r.promotable() {
		r.logf("%d is unpromotable and can not campaign", r.id)
		return
	}
	if r.hasUnappliedConfChanges() {
		// The configuration this node would campaign in is about to
		// change; campaigning in the old one could elect a leader the new
		// one does not accept.
		r.logf("%d cannot campaign at term %d since there are still pending configuration changes to apply", r.id, r.Term)
		return
	}
	r.logf("%d is starting a new election at term %d", r.id, r.Term)
	r.campaign(t)
}

func (r *raft) hasUnappliedConfChanges() bool {
	if r.log.applied >= r.log.committed {
		return false
	}
	lo := max(r.log.applied+1, r.log.firstIndex())
	ents, err := r.log.slice(lo, r.log.committed+1, noLimit)
	if err != nil {
		panic(fmt.Sprintf("raft: reading unapplied entries: %v", err))
	}
	for _, e := range ents {
		if e.Type == EntryConfChange {
			return true
		}
	}
	return false
}

func (r *raft) campaign(t campaignType) {
	var term uint64
	var voteMsg MessageType
	if t == campaignPreElection && r.preVote {
		r.becomePreCandidate()
		voteMsg, term = MsgPreVote, r.candidateTerm()
	} else {
		r.becomeCandidate()
		voteMsg, term = MsgVote, r.Term
	}
	if r.poll(r.id, voteRespType(voteMsg), true) == quorum.VoteWon {
		// A configuration in which this node alone is a phase-1 quorum.
		r.wonVote(voteMsg)
		return
	}
	for _, id := range r.conf.voters {
		if id == r.id {
			continue
		}
		r.logf("%d [logterm: %d, index: %d] sent %s request to %d at term %d",
			r.id, r.log.lastTerm(), r.log.lastIndex(), voteMsg, id, term)
		r.send(Message{Type: voteMsg, To: id, Term: term, Index: r.log.lastIndex(),
			LogTerm: r.log.lastTerm(), Transfer: t == campaignTransfer})
	}
}

func (r *raft) wonVote(voteMsg MessageType) {
	if voteMsg == MsgPreVote {
		r.campaign(campaignElection)
		return
	}
	r.becomeLeader()
	r.bcastAppend()
}

// poll records a vote and tallies it against the phase-1 quorums.
func (r *raft) poll(id uint64, t MessageType, granted bool) quorum.VoteResult {
	if granted {
		r.logf("%d received %s from %d at term %d", r.id, t, id, r.Term)
	} else {
		r.logf("%d received %s rejection from %d at term %d", r.id, t, id, r.Term)
	}
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return quorum.Vote(r.conf.sys, quorum.Phase1, r.votes)
}

// inLease reports whether this node must ignore vote requests because it
// recently heard from a leader (check-quorum): a leader that keeps a
// phase-2 quorum is not deposed by a node that merely lost touch with it.
func (r *raft) inLease() bool {
	if !r.checkQuorum {
		return false
	}
	if r.lead != None && r.electionElapsed < r.electionTimeout {
		return true
	}
	// After a restart a node has forgotten whom it heard from; with lease
	// reads a leader may still count on it for one election timeout.
	return r.readOnly.option == ReadOnlyLeaseBased && r.ticks < r.electionTimeout
}

// Step advances the state machine with a message from another node.
func (r *raft) Step(m Message) error {
	if err := r.checkMessage(m); err != nil {
		return err
	}
	if m.Type == MsgVoteResp || m.Type == MsgPreVoteResp {
		r.learnCommit(m) // whatever the answer's Term: see learnCommit
	}
	switch {
	case m.Term > r.Term:
		if (m.Type == MsgVote || m.Type == MsgPreVote) && !m.Transfer && r.inLease() {
			r.logf("%d [logterm: %d, index: %d, vote: %d] ignored %s from %d [logterm: %d, index: %d] at term %d: lease is not expired (remaining ticks: %d)",
				r.id, r.log.lastTerm(), r.log.lastIndex(), r.Vote, m.Type, m.From, m.LogTerm, m.Index, r.Term,
				r.electionTimeout-r.electionElapsed)
			return nil
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote for a higher Term changes nothing here.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote is for the Term we would campaign for;
			// we take it when the pre-vote is won.
		default:
			r.logf("%d [term: %d] received a %s message with higher term from %d [term: %d]",
				r.id, r.Term, m.Type, m.From, m.Term)
			if m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap {
				r.becomeFollower(m.Term, m.From)
			} else {
				r.becomeFollower(m.Term, None)
			}
		}
	case m.Term < r.Term:
		switch {
		case (r.checkQuorum || r.preVote) && (m.Type == MsgHeartbeat || m.Type == MsgApp):
			// A stale leader, perhaps back from a partition. Our Term in
			// a response makes it step down; without it, a node that
			// pre-vote or check-quorum keeps from raising its own Term
			// could wait forever for the old leader to notice.
			r.send(Message{To: m.From, Type: MsgAppResp})
		case m.Type == MsgPreVote:
			r.logf("%d [logterm: %d, index: %d, vote: %d] rejected %s from %d [logterm: %d, index: %d] at term %d",
				r.id, r.log.lastTerm(), r.log.lastIndex(), r.Vote, m.Type, m.From, m.LogTerm, m.Index, r.Term)
			r.send(r.withCommit(Message{To: m.From, Term: r.Term, Type: MsgPreVoteResp, Reject: true}))
		default:
			r.logf("%d [term: %d] ignored a %s message with lower term from %d [term: %d]",
				r.id, r.Term, m.Type, m.From, m.Term)
		}
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		r.handleVote(m)
	default:
		r.step(r, m)
	}
	return nil
}

// handleVote answers a (pre-)vote request of a Term >= ours.
func (r *raft) handleVote(m Message) {
	canVote := r.Vote == m.From ||
		// No vote yet in this Term and no leader known in it.
		(r.Vote == None && r.lead == None) ||
		// A pre-vote for a future Term binds nothing.
		(m.Type == MsgPreVote && m.Term > r.Term)
	resp := voteRespType(m.Type)
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		r.logf("%d [logterm: %d, index: %d, vote: %d] cast %s for %d [logterm: %d, index: %d] at term %d",
			r.id, r.log.lastTerm(), r.log.lastIndex(), r.Vote, m.Type, m.From, m.LogTerm, m.Index, r.Term)
		// The grant carries the Term asked for, so that a pre-candidate
		// can tell it from stale answers.
		r.send(r.withCommit(Message{To: m.From, Term: m.Term, Type: resp}))
		if m.Type == MsgVote {
			r.electionElapsed = 0
			r.Vote = m.From
		}
		return
	}
	r.logf("%d [logterm: %d, index: %d, vote: %d] rejected %s from %d [logterm: %d, index: %d] at term %d",
		r.id, r.log.lastTerm(), r.log.lastIndex(), r.Vote, m.Type, m.From, m.LogTerm, m.Index, r.Term)
	r.send(r.withCommit(Message{To: m.From, Term: r.Term, Type: resp, Reject: true}))
}

// withCommit adds this node's commit index, and the Term of the entry
// there, to a vote's answer, for learnCommit.
func (r *raft) withCommit(m Message) Message {
	if t, err := r.log.term(r.log.committed); err == nil {
		m.Commit, m.LogTerm = r.log.committed, t
	}
	return m
}

// learnCommit raises the commit index of a node that does not lead to the
// one a vote's answer reports, when this node's log holds that very entry
// (the same Term at that index: by the log matching property, both logs
// are the same up to it). Committed entries stay committed, so who
// reports it does not matter.
//
// Without it a joint change can wedge the group for good. The leader that
// a change removes commits C_new and crashes, or is cut off, before any
// new voter learns that C_new is committed. The old voters learned it and
// applied C_new: they are no voters any more and never campaign. The new
// voters still apply the joint configuration, so a candidate needs a
// majority of the old voters too, and they refuse it when their logs hold
// entries after C_new that it lacks. With learnCommit, their refusal tells
// the candidate that C_new is committed: it applies C_new and campaigns
// again among the new voters alone (TestRemovedLeaderCrashesAfterCNew).
func (r *raft) learnCommit(m Message) {
	if r.state == StateLeader || m.Commit <= r.log.committed || !r.log.matchTerm(m.Commit, m.LogTerm) {
		return
	}
	if r.canaries.noCommitFromVotes {
		return
	}
	r.logf("%d learned from %d's %s that index %d is committed", r.id, m.From, m.Type, m.Commit)
	r.log.commitTo(m.Commit)
	if (r.state == StateCandidate || r.state == StatePreCandidate) && r.hasUnappliedConfChanges() {
		// The configuration this campaign counts votes in is about to
		// change (see hup): give it up, and campaign in the new one once
		// it is applied.
		r.logf("%d abandons its campaign at term %d: a committed configuration change is not applied yet", r.id, r.Term)
		r.becomeFollower(r.Term, None)
	}
}

func stepFollower(r *raft, m Message) {
	switch m.Type {
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppend(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTimeoutNow:
		r.logf("%d [term %d] received MsgTimeoutNow from %d and starts an election to get leadership", r.id, r.Term, m.From)
		r.hup(campaignTransfer)
	}
}

func stepCandidate(r *raft, m Message) {
	myVoteResp := MsgVoteResp
	if r.state == StatePreCandidate {
		myVoteResp = MsgPreVoteResp
	}
	switch m.Type {
	case MsgApp:
		r.becomeFollower(m.Term, m.From) // a leader of our Term won
		r.handleAppend(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case myVoteResp:
		switch r.poll(m.From, m.Type, !m.Reject) {
		case quorum.VoteWon:
			if r.state == StatePreCandidate {
				r.wonVote(MsgPreVote)
			} else {
				r.wonVote(MsgVote)
			}
		case quorum.VoteLost:
			r.logf("%d lost the %s election at term %d", r.id, m.Type, r.Term)
			r.becomeFollower(r.Term, None)
		}
	case MsgTimeoutNow:
		r.logf("%d [term %d state %s] ignored MsgTimeoutNow from %d", r.id, r.Term, r.state, m.From)
	}
}

// --- follower side of replication ----------------------------------------

func (r *raft) handleAppend(m Message) {
	if m.Index < r.log.committed {
		// Everything up to our commit index is already settled.
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
		return
	}
	if last, ok := r.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries); ok {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: last})
		return
	}
	// Fast back-off: tell the leader the last index we hold whose Term is
	// at most the Term it expected at m.Index. The leader skips every entry
	// of a Term we lack in one round trip instead of one index at a time.
	hintIndex := min(m.Index, r.log.lastIndex())
	hintIndex, hintTerm := r.log.findConflictByTerm(hintIndex, m.LogTerm)
	r.logf("%d [logterm: %d, index: %d] rejected MsgApp [logterm: %d, index: %d] from %d",
		r.id, r.log.zeroTermOnOutOfBounds(r.log.term(m.Index)), m.Index, m.LogTerm, m.Index, m.From)
	r.send(Message{To: m.From, Type: MsgAppResp, Index: m.Index, Reject: true,
		RejectHint: hintIndex, LogTerm: hintTerm})
}

func (r *raft) handleHeartbeat(m Message) {
	// The leader sends min(our Match, its commit), which we hold.
	r.log.commitTo(m.Commit)
	// Our last index lets the leader notice MsgApps that never arrived.
	r.send(Message{To: m.From, Type: MsgHeartbeatResp, ReadSeq: m.ReadSeq, Index: r.log.lastIndex()})
}

func (r *raft) handleSnapshot(m Message) {
	s := *m.Snapshot
	if r.restore(s) {
		r.logf("%d [commit: %d] restored snapshot [index: %d, term: %d]", r.id, r.log.committed, s.Metadata.Index, s.Metadata.Term)
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.lastIndex()})
		return
	}
	r.logf("%d [commit: %d] ignored snapshot [index: %d, term: %d]", r.id, r.log.committed, s.Metadata.Index, s.Metadata.Term)
	r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
}

// restore installs snapshot s unless the log already holds it. The
// snapshot's configuration takes effect at once: the snapshot replaces the
// application state it was applied to.
func (r *raft) restore(s Snapshot) bool {
	if s.Metadata.Index <= r.log.committed {
		return false
	}
	if r.state != StateFollower {
		panic(fmt.Sprintf("raft: %d restoring a snapshot as %s", r.id, r.state))
	}
	conf, err := newConfig(s.Metadata.ConfState)
	if err != nil {
		panic(fmt.Sprintf("raft: snapshot at %d carries an invalid configuration: %v", s.Metadata.Index, err))
	}
	if !conf.isVoter(r.id) && !conf.isLearner(r.id) {
		r.logf("%d attempted to restore snapshot but it is not in the configuration %s", r.id, conf)
		return false
	}
	if r.log.matchTerm(s.Metadata.Index, s.Metadata.Term) {
		// We hold the snapshot's last entry, so the log up to it matches:
		// just commit it, keeping the entries after it.
		r.logf("%d [commit: %d, lastindex: %d, lastterm: %d] fast-forwarded commit to snapshot [index: %d, term: %d]",
			r.id, r.log.committed, r.log.lastIndex(), r.log.lastTerm(), s.Metadata.Index, s.Metadata.Term)
		r.log.commitTo(s.Metadata.Index)
		return false
	}
	r.log.restore(s)
	r.conf = conf
	r.logf("%d switched to configuration %s", r.id, r.conf)
	return true
}

// --- leader side of replication ------------------------------------------

func (r *raft) appendEntry(ents ...Entry) {
	li := r.log.lastIndex()
	for i := range ents {
		ents[i].Term = r.Term
		ents[i].Index = li + 1 + uint64(i)
	}
	r.log.append(ents...)
}

// increaseUncommittedSize charges ents to the uncommitted-log limit, or
// refuses them. A leader with nothing uncommitted accepts any one
// proposal, so that a single entry above the limit is not refused forever.
func (r *raft) increaseUncommittedSize(ents []Entry) bool {
	s := payloadsSize(ents)
	if r.uncommittedSize > 0 && s > 0 && r.uncommittedSize+s > r.maxUncommittedSize {
		return false
	}
	r.uncommittedSize += s
	return true
}

func (r *raft) reduceUncommittedSize(s uint64) {
	r.uncommittedSize -= min(s, r.uncommittedSize)
}

// propose appends ents on the leader and sends them. It copies ents.
func (r *raft) propose(ents []Entry) error {
	if r.state != StateLeader {
		return fmt.Errorf("%w: %w (leader is %d)", ErrProposalDropped, ErrNotLeader, r.lead)
	}
	if r.leadTransferee != None {
		return fmt.Errorf("%w: %w to %d", ErrProposalDropped, ErrTransferring, r.leadTransferee)
	}
	if !r.increaseUncommittedSize(ents) {
		return fmt.Errorf("%w: uncommitted log is over %d bytes", ErrProposalDropped, r.maxUncommittedSize)
	}
	r.appendEntry(append([]Entry(nil), ents...)...)
	r.bcastPending = true
	return nil
}

func (r *raft) proposeConfChange(cc ConfChange) error {
	if r.state != StateLeader {
		return fmt.Errorf("%w: %w (leader is %d)", ErrProposalDropped, ErrNotLeader, r.lead)
	}
	if r.pendingConfIndex > r.log.applied {
		return fmt.Errorf("%w: a configuration change at index %d is not applied yet (applied %d)",
			ErrProposalDropped, r.pendingConfIndex, r.log.applied)
	}
	if r.conf.cs.Joint() {
		return fmt.Errorf("%w: the joint configuration is not left yet", ErrProposalDropped)
	}
	next, err := r.conf.cs.changeTo(cc)
	if err != nil {
		return err
	}
	if _, err := newConfig(next); err != nil {
		return err
	}
	if err := r.propose([]Entry{{Type: EntryConfChange, Data: encodeConfState(next)}}); err != nil {
		return err
	}
	r.pendingConfIndex = r.log.lastIndex()
	return nil
}

// maybeAutoLeave proposes leaving a joint configuration once the leader
// has applied it: the joint phase exists only to hand over safely.
func (r *raft) maybeAutoLeave() {
	if r.state != StateLeader || !r.conf.cs.Joint() || r.pendingConfIndex > r.log.applied || r.leadTransferee != None {
		return
	}
	next := r.conf.cs.leaveJoint()
	r.logf("%d initiating automatic transition out of joint configuration %s", r.id, r.conf)
	// Not charged to the uncommitted limit: the change must go through.
	r.appendEntry(Entry{Type: EntryConfChange, Data: encodeConfState(next)})
	r.pendingConfIndex = r.log.lastIndex()
	r.bcastPending = true
}

// applyConfChange switches to the configuration of committed entry e, as
// the application applies it.
func (r *raft) applyConfChange(e Entry) {
	cs, err := decodeConfState(e.Data)
	if err != nil {
		panic(fmt.Sprintf("raft: applying entry %d: %v", e.Index, err))
	}
	conf, err := newConfig(cs)
	if err != nil {
		panic(fmt.Sprintf("raft: committed configuration at %d is invalid: %v", e.Index, err))
	}
	r.conf = conf
	r.logf("%d switched to configuration %s", r.id, r.conf)
	if r.state != StateLeader {
		return
	}
	members := r.conf.members()
	for _, id := range r.prs.sortedIDs() {
		// A removed leader keeps its own Progress: it still persists
		// entries, though quorums (of voters) no longer count them.
		if _, ok := slicesIndex(members, id); !ok && id != r.id {
			delete(r.prs, id)
		}
	}
	for _, id := range members {
		if pr, ok := r.prs[id]; ok {
			pr.IsLearner = !r.conf.isVoter(id)
			continue
		}
		r.addProgress(id)
		// Count the new member active until the next check-quorum, so that
		// it gets a snapshot and does not look like a lost quorum.
		r.prs[id].RecentActive = true
	}
	if r.leadTransferee != None && !r.conf.isVoter(r.leadTransferee) {
		r.logf("%d abort leader transfer to %d: it is no longer a voter", r.id, r.leadTransferee)
		r.leadTransferee = None
	}
	if !r.conf.isVoter(r.id) && r.leadTransferee == None {
		r.handOver()
	}
	// The quorums changed: the commit index and pending reads may move.
	if r.maybeCommit() {
		r.onCommitAdvanced()
	}
	r.releaseReads()
	r.bcastPending = true
}

// handOver makes a leader that is no longer a voter transfer leadership
// to the voter with the longest log. It does not simply step down, because
// that can leave the group without a leader for good:
//
//  1. The leader applies the committed C_new of a joint change that
//     removed it, while it has entries after C_new that only old voters
//     hold (the new ones missed them).
//  2. The old voters learn that C_new is committed and apply it; the new
//     voters, on lossy links, do not.
//  3. The old voters are no longer voters, so none campaigns. The new
//     voters still apply the joint configuration, so a candidate needs old
//     voters' votes, and they refuse it: its log is behind theirs.
//
// Staying on is safe: quorums count voters only, so the leader no longer
// counts itself, and proposals are refused while the transfer runs.
// transferLeader brings the target up to date, commit index included, so
// it campaigns in C_new. If the transfer times out, tickHeartbeat calls
// this again. (etcd keeps a removed leader on by default for this reason.)
func (r *raft) handOver() {
	var to, match uint64
	for _, id := range r.conf.voters {
		if pr := r.prs[id]; pr != nil && (to == None || pr.Match > match) {
			to, match = id, pr.Match
		}
	}
	if to == None {
		return
	}
	r.logf("%d is no longer a voter and hands leadership over to %d", r.id, to)
	_ = r.transferLeader(to)
}

func slicesIndex(s []uint64, v uint64) (int, bool) {
	for i, x := range s {
		if x == v {
			return i, true
		}
	}
	return -1, false
}

// maybeCommit raises the commit index to what a phase-2 quorum holds.
//
// Only an entry of the leader's own Term is committed by counting
// replicas (Raft §5.4.2, Figure 8). An entry of an earlier Term can be on
// a phase-2 quorum and still be overwritten: a node whose last entry has a
// newer Term can win an election without it. So the leader waits for an
// entry of its Term (the empty entry of becomeLeader at the latest); once a
// phase-2 quorum holds that, every future leader holds it and all before it.
func (r *raft) maybeCommit() bool {
	mci := quorum.CommittedIndex(r.conf.sys, func(id uint64) uint64 {
		if pr := r.prs[id]; pr != nil {
			return pr.Match
		}
		return 0
	})
	if mci <= r.log.committed {
		return false
	}
	if t := r.log.zeroTermOnOutOfBounds(r.log.term(mci)); t != r.Term && !r.canaries.commitEarlierTerm {
		return false
	}
	r.log.commitTo(mci)
	return true
}

// onCommitAdvanced runs on the leader after its commit index grew.
func (r *raft) onCommitAdvanced() {
	if len(r.readOnly.waitingCommit) > 0 && r.committedEntryInCurrentTerm() {
		waiting := r.readOnly.waitingCommit
		r.readOnly.waitingCommit = nil
		for _, ctx := range waiting {
			r.readIndex(ctx)
		}
	}
}

func (r *raft) committedEntryInCurrentTerm() bool {
	return r.log.zeroTermOnOutOfBounds(r.log.term(r.log.committed)) == r.Term
}

// onPersisted is called when entries up to (index, term) reached Storage.
// The leader counts its own copy toward commit only now: it is one of the
// phase-2 quorum, and an entry it could still lose in a crash must not be
// counted.
func (r *raft) onPersisted(index, term uint64) {
	if r.state != StateLeader || !r.log.matchTerm(index, term) {
		return
	}
	if r.prs[r.id].maybeUpdate(index) && r.maybeCommit() {
		r.onCommitAdvanced()
		r.bcastPending = true
	}
}

// flush sends what bcastPending deferred.
func (r *raft) flush() {
	if r.bcastPending && r.state == StateLeader {
		r.bcastAppend()
	}
	r.bcastPending = false
}

func (r *raft) bcastAppend() {
	for _, id := range r.prs.sortedIDs() {
		if id != r.id {
			r.sendAppend(id, true /* sendIfEmpty */)
		}
	}
}

// sendAppend sends follower to as many MsgApp as its Progress allows: one
// while probing, a pipeline up to the in-flight limits while replicating.
// With sendIfEmpty an empty MsgApp carries the commit index when there is
// nothing new.
func (r *raft) sendAppend(to uint64, sendIfEmpty bool) {
	pr := r.prs[to]
	for !pr.isPaused() {
		prevIndex := pr.Next - 1
		prevTerm, errT := r.log.term(prevIndex)
		ents, errE := r.log.entries(pr.Next, r.maxMsgSize)
		if errT != nil || errE != nil {
			// The follower needs entries we compacted.
			r.sendSnapshot(to, pr)
			return
		}
		if len(ents) == 0 && (!sendIfEmpty || (pr.State == StateReplicate && pr.sentCommit >= r.log.committed)) {
			// Nothing new: no entries, and (unless this is a probe) the
			// follower already knows the commit index.
			return
		}
		pr.sentCommit = max(pr.sentCommit, r.log.committed)
		r.send(Message{To: to, Type: MsgApp, Index: prevIndex, LogTerm: prevTerm,
			Entries: ents, Commit: r.log.committed})
		var last uint64
		if len(ents) > 0 {
			last = ents[len(ents)-1].Index
		}
		pr.sentEntries(len(ents), last, entsSize(ents))
		if pr.State != StateReplicate || len(ents) == 0 {
			return
		}
		sendIfEmpty = false
	}
}

func (r *raft) sendSnapshot(to uint64, pr *Progress) {
	if !pr.RecentActive {
		r.logf("%d ignore sending snapshot to %d since it is not recently active", r.id, to)
		return
	}
	snap, err := r.log.snapshot()
	if errors.Is(err, ErrSnapshotTemporarilyUnavailable) {
		r.logf("%d failed to send snapshot to %d because snapshot is temporarily unavailable", r.id, to)
		return
	} else if err != nil {
		panic(fmt.Sprintf("raft: reading the snapshot: %v", err))
	}
	if snap.IsEmpty() {
		panic("raft: need a non-empty snapshot to catch up a follower")
	}
	r.logf("%d [firstindex: %d, commit: %d] sent snapshot[index: %d, term: %d] to %d [%s]",
		r.id, r.log.firstIndex(), r.log.committed, snap.Metadata.Index, snap.Metadata.Term, to, pr)
	pr.becomeSnapshot(snap.Metadata.Index)
	r.send(Message{To: to, Type: MsgSnap, Snapshot: &snap})
}

// bcastHeartbeat starts a heartbeat round; its acknowledgements confirm
// pending reads and renew the lease.
func (r *raft) bcastHeartbeat() {
	seq := r.readOnly.newRound(r.ticks, r.electionTimeout)
	for _, id := range r.prs.sortedIDs() {
		if id == r.id {
			continue
		}
		// Never more than the follower holds: it cannot commit entries it
		// does not have (they may not even be the leader's).
		commit := min(r.prs[id].Match, r.log.committed)
		r.send(Message{To: id, Type: MsgHeartbeat, Commit: commit, ReadSeq: seq})
	}
}

func stepLeader(r *raft, m Message) {
	pr := r.prs[m.From]
	if pr == nil {
		r.logf("%d no progress available for %d", r.id, m.From)
		return
	}
	switch m.Type {
	case MsgAppResp:
		pr.RecentActive = true
		if m.Reject {
			r.handleAppReject(m, pr)
		} else {
			r.handleAppAck(m, pr)
		}
	case MsgHeartbeatResp:
		pr.RecentActive = true
		pr.MsgAppProbesPaused = false
		if m.ReadSeq > pr.ReadSeq {
			pr.ReadSeq = m.ReadSeq
			r.releaseReads()
		}
		if pr.State == StateReplicate && m.Index+1 < pr.Next && m.Index < r.log.lastIndex() {
			// The heartbeat left after our MsgApps, yet the follower's log
			// ends before them: they were lost (or overtaken). Probe again
			// rather than wait for the next proposal to reveal the gap.
			pr.becomeProbe()
			r.logf("%d follower %d is missing entries after %d; probing [%s]", r.id, m.From, m.Index, pr)
		}
		if pr.Match < r.log.lastIndex() || pr.State == StateProbe {
			r.sendAppend(m.From, true /* sendIfEmpty */)
		}
	}
}

func (r *raft) handleAppReject(m Message, pr *Progress) {
	r.logf("%d received MsgAppResp(rejected, hint: (index %d, term %d)) from %d for index %d",
		r.id, m.RejectHint, m.LogTerm, m.From, m.Index)
	next := m.RejectHint
	if m.LogTerm > 0 {
		// Skip our entries of Terms the follower does not have at all.
		next, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
	}
	if pr.maybeDecrTo(m.Index, next) {
		r.logf("%d decreased progress of %d to [%s]", r.id, m.From, pr)
		if pr.State == StateReplicate {
			pr.becomeProbe()
		}
		r.sendAppend(m.From, true /* sendIfEmpty */)
	}
}

func (r *raft) handleAppAck(m Message, pr *Progress) {
	if !pr.maybeUpdate(m.Index) && !(pr.Match == m.Index && pr.State == StateProbe) {
		return // stale
	}
	switch {
	case pr.State == StateProbe:
		pr.becomeReplicate()
	case pr.State == StateSnapshot && pr.Match+1 >= r.log.firstIndex():
		r.logf("%d recovered from needing snapshot, resumed sending replication messages to %d [%s]", r.id, m.From, pr)
		pr.becomeProbe()
		pr.becomeReplicate()
	case pr.State == StateReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if r.maybeCommit() {
		r.onCommitAdvanced()
		r.bcastPending = true
	} else {
		// A follower we had paused may have missed commit news.
		r.sendAppend(m.From, true /* sendIfEmpty */)
	}
	if m.From == r.leadTransferee && pr.Match == r.log.lastIndex() {
		r.logf("%d sent MsgTimeoutNow to %d after received MsgAppResp", r.id, m.From)
		r.send(Message{To: m.From, Type: MsgTimeoutNow})
	}
}

// --- leader operations asked for by the application ----------------------

func (r *raft) transferLeader(to uint64) error {
	if r.state != StateLeader {
		return ErrNotLeader
	}
	if to == r.id {
		r.logf("%d is already leader; ignored transferring leadership to itself", r.id)
		return nil
	}
	if !r.conf.isVoter(to) {
		return fmt.Errorf("%w: cannot transfer leadership to %d, which is not a voter", ErrInvalidConfig, to)
	}
	if r.leadTransferee == to {
		r.logf("%d [term %d] transfer leadership to %d is in progress, ignores request to same node", r.id, r.Term, to)
		return nil
	}
	if r.leadTransferee != None {
		r.logf("%d [term %d] abort previous transferring leadership to %d", r.id, r.Term, r.leadTransferee)
	}
	r.logf("%d [term %d] starts to transfer leadership to %d", r.id, r.Term, to)
	// The transfer must finish within an election timeout (tickHeartbeat
	// aborts it); until then proposals are refused, so that the target
	// can catch up.
	r.electionElapsed = 0
	r.leadTransferee = to
	r.readOnly.noLease = true
	if r.prs[to].Match == r.log.lastIndex() {
		r.logf("%d sends MsgTimeoutNow to %d immediately as %d already has up-to-date log", r.id, to, to)
		r.send(Message{To: to, Type: MsgTimeoutNow})
	} else {
		r.sendAppend(to, true /* sendIfEmpty */)
	}
	return nil
}

func (r *raft) reportUnreachable(id uint64) {
	if pr := r.prs[id]; r.state == StateLeader && pr != nil && pr.State == StateReplicate {
		// The messages in flight are probably lost: find out where the
		// follower is before streaming again.
		pr.becomeProbe()
		r.logf("%d failed to send message to %d because it is unreachable [%s]", r.id, id, pr)
	}
}

func (r *raft) reportSnapshot(id uint64, failed bool) {
	pr := r.prs[id]
	if r.state != StateLeader || pr == nil || pr.State != StateSnapshot {
		return
	}
	if failed {
		// Make the next probe send the snapshot again.
		pr.PendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for the follower's answer (or a heartbeat) before probing.
	pr.MsgAppProbesPaused = true
	r.logf("%d snapshot to %d finished (failed: %t), resumed probing [%s]", r.id, id, failed, pr)
}

// --- reads ---------------------------------------------------------------

// readIndex registers a read with request context ctx.
func (r *raft) readIndex(ctx []byte) error {
	if r.state != StateLeader {
		return fmt.Errorf("%w (leader is %d)", ErrNotLeader, r.lead)
	}
	if r.canaries.readIndexWithoutQuorum {
		r.readStates = append(r.readStates, ReadState{Index: r.log.committed, RequestCtx: ctx})
		return nil
	}
	if !r.committedEntryInCurrentTerm() {
		r.readOnly.waitingCommit = append(r.readOnly.waitingCommit, ctx)
		return nil
	}
	index := r.log.committed
	if r.conf.sys.IsQuorum(quorum.Phase2, func(id uint64) bool { return id == r.id }) || r.leaseValid() {
		r.readStates = append(r.readStates, ReadState{Index: index, RequestCtx: ctx})
		return nil
	}
	r.readOnly.pending = append(r.readOnly.pending, readRequest{ctx: ctx, index: index, seq: r.readOnly.seq + 1})
	r.bcastHeartbeat()
	return nil
}

// leaseValid reports whether lease reads may be served now: the last
// heartbeat round a phase-2 quorum acknowledged was sent less than
// leaseTicks ago. The followers of that quorum each reset their election
// clock after it was sent and refuse votes for ElectionTicks of their own
// ticks (inLease), so no leader can be elected before the lease ends. The
// margin of 2 ticks covers the unknown phase between two nodes' tickers
// (up to one tick) and one tick of drift; larger drift is unsafe.
func (r *raft) leaseValid() bool {
	if r.readOnly.option != ReadOnlyLeaseBased || r.readOnly.noLease {
		// A transfer's votes ignore leases: the lease ends when it starts,
		// for the rest of the Term (readOnly.noLease).
		return false
	}
	seq := r.conf.sys.QuorumIndex(quorum.Phase2, func(id uint64) uint64 {
		if id == r.id {
			return r.readOnly.seq
		}
		if pr := r.prs[id]; pr != nil {
			return pr.ReadSeq
		}
		return 0
	})
	sent, ok := r.readOnly.sentTick(seq)
	return ok && seq > 0 && r.ticks-sent < r.electionTimeout-2
}

// releaseReads hands out the pending reads a phase-2 quorum has confirmed.
func (r *raft) releaseReads() {
	n := 0
	for _, req := range r.readOnly.pending {
		acked := r.conf.sys.IsQuorum(quorum.Phase2, func(id uint64) bool {
			pr := r.prs[id]
			return id == r.id || (pr != nil && pr.ReadSeq >= req.seq)
		})
		if !acked {
			break
		}
		r.readStates = append(r.readStates, ReadState{Index: req.index, RequestCtx: req.ctx})
		n++
	}
	r.readOnly.pending = r.readOnly.pending[n:]
}
