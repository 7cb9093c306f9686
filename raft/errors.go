package raft

import "errors"

// Errors of the core and of Storage. Callers test for them with errors.Is.
var (
	// ErrProposalDropped: the proposal was not appended; retry elsewhere or
	// later. Wrapped with the reason (not the leader, over the uncommitted
	// limit, a leader transfer in progress, a configuration change pending).
	ErrProposalDropped = errors.New("raft: proposal dropped")
	// ErrNotLeader: the request needs the leader (ReadIndex, proposals).
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrTransferring: the leader is handing its leadership to another
	// voter and takes no proposals meanwhile (wrapped in
	// ErrProposalDropped).
	ErrTransferring = errors.New("raft: leadership is being transferred")
	// ErrInvalidConfig marks Config.Validate and ConfChange errors.
	ErrInvalidConfig = errors.New("raft: invalid configuration")
	// ErrInvalidMessage: Step refused a message no correct peer sends
	// (check.go); nothing changed.
	ErrInvalidMessage = errors.New("raft: invalid message")

	// ErrCompacted: Storage no longer holds the requested index; it is
	// covered by the snapshot.
	ErrCompacted = errors.New("raft: requested index is compacted")
	// ErrSnapOutOfDate: the snapshot is older than the one Storage has.
	ErrSnapOutOfDate = errors.New("raft: requested index is older than the existing snapshot")
	// ErrUnavailable: the requested entry is beyond the end of the log.
	ErrUnavailable = errors.New("raft: requested entry is unavailable")
	// ErrSnapshotTemporarilyUnavailable: Storage is building a snapshot;
	// the leader retries later.
	ErrSnapshotTemporarilyUnavailable = errors.New("raft: snapshot is temporarily unavailable")
)
