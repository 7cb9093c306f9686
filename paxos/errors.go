package paxos

import "errors"

var (
	// ErrNotLeader is returned by Propose and ReadIndex on a node that is not
	// the leader; Status().Leader names the leader it last heard of, if any.
	ErrNotLeader = errors.New("paxos: not the leader")
	// ErrProposalDropped is returned when a proposal does not fit within
	// MaxUncommittedBytes or MaxSizePerMsg; retry later or elsewhere.
	ErrProposalDropped = errors.New("paxos: proposal dropped")
	// ErrConfigChangePending is returned by ProposeConfig while an earlier
	// configuration change has not yet taken effect.
	ErrConfigChangePending = errors.New("paxos: configuration change pending")
	// ErrInvalidConfig marks Config.Validate errors and bad memberships.
	ErrInvalidConfig = errors.New("paxos: invalid config")
	// ErrCorrupt is returned by the Unmarshal functions on bytes they did
	// not write.
	ErrCorrupt = errors.New("paxos: corrupt encoding")
)
