package raft

// Canaries are the planted bugs of the Raft core, for test suites outside
// this package's own tests (the simulator suite in raft/). Each must be
// caught by some invariant or linearizability check.
type Canaries struct {
	// SendBeforePersist hands out messages one Ready before the entries
	// and HardState they depend on.
	SendBeforePersist bool
	// ReadIndexWithoutQuorum answers ReadIndex without a phase-2 quorum.
	ReadIndexWithoutQuorum bool
	// CommitEarlierTerm commits earlier Terms' entries by counting replicas.
	CommitEarlierTerm bool
	// ForgetVoteOnRestart drops the persisted vote when a node starts.
	ForgetVoteOnRestart bool
	// NoCommitFromVotes ignores the commit index in answers to votes.
	NoCommitFromVotes bool
	// CountUnsynced: AdvanceWritten counts a leader's own copy of the
	// entries toward commit at once, as Advance does, before they are
	// durable.
	CountUnsynced bool
}

// SetCanaries plants the bugs k in every RawNode built from c.
func SetCanaries(c *Config, k Canaries) {
	c.canaries = canaries{
		sendBeforePersist:      k.SendBeforePersist,
		readIndexWithoutQuorum: k.ReadIndexWithoutQuorum,
		commitEarlierTerm:      k.CommitEarlierTerm,
		forgetVoteOnRestart:    k.ForgetVoteOnRestart,
		noCommitFromVotes:      k.NoCommitFromVotes,
		countUnsynced:          k.CountUnsynced,
	}
}

// SimLeader reports, without allocating, whether rn leads and in which
// Term: the simulator suite's one-leader-per-Term check runs it after
// every step.
func (rn *RawNode) SimLeader() (term uint64, ok bool) {
	return rn.raft.Term, rn.raft.state == StateLeader
}

// SimLead returns the leader rn believes in (None if none).
func (rn *RawNode) SimLead() uint64 { return rn.raft.lead }
