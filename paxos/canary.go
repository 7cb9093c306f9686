package paxos

// canaries are bugs planted on purpose, switched on only by tests (see
// export_test.go), to show that the test suite catches them. Each names a
// mistake that real Paxos implementations have made. Production code never
// sets them: the field is unexported and no exported API reaches it.
type canaries struct {
	// forgetPromise: an acceptor restored from persisted state comes back
	// with no promise, as if the hard state had never been written to
	// disk. It then accepts values from proposers it had promised to
	// ignore.
	forgetPromise bool
	// ignoreAccepted: a proposer (or a new Multi-Paxos leader) ignores the
	// values reported in Promises and proposes its own, overwriting a value
	// that may already be chosen.
	ignoreAccepted bool
	// acceptLowerBallot: an acceptor accepts an Accept whose ballot is below
	// its promise, breaking the promise that phase 1 relied on.
	acceptLowerBallot bool
	// knownConfigsOnly: a new leader runs phase 1 with the configurations
	// it knows of and ignores those found in Promises (reconfig.go, case
	// 2), so it can miss a slot chosen by a configuration it never heard of.
	knownConfigsOnly bool
	// everyPromisedConfig: a new leader also needs a phase-1 quorum of
	// every configuration a promise reports, even one that a higher ballot
	// superseded in its slot, which cannot have been chosen: a superseded
	// configuration whose voters never answer blocks every election.
	everyPromisedConfig bool
	// joinerGuess: a node that joins a running group empty takes
	// *joinerGuess, the configuration that adds it (as the catalog lists
	// the new replica set), for the one in force from slot 1, instead of
	// waiting for the leader's snapshot. It then counts itself a voter and
	// may run phase 1 with a quorum of the wrong configuration, which need
	// not meet the acceptors that chose the slots before the change.
	joinerGuess *Membership
	// ignoreLeaseWindow: an acceptor with leases on does not keep the
	// promise a lease counts on (lease.go, rules 1 and 2): it grants a
	// Prepare while it hears a leader, and right after a restart. A
	// candidate then wins while the old leader still serves reads from
	// its lease, which miss the new leader's writes.
	ignoreLeaseWindow bool
	// leaseFromAck: a leader counts its lease from when a round is
	// acknowledged instead of when it was sent, so a round whose answers
	// were slow gives a lease that outlives the acceptors' promise.
	leaseFromAck bool
}
