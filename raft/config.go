package raft

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
)

// ReadOnlyOption chooses how ReadIndex requests are confirmed.
type ReadOnlyOption uint8

const (
	// ReadOnlySafe confirms each ReadIndex with a round of heartbeats
	// acknowledged by a phase-2 quorum: the leader learns it is still the
	// leader at the cost of one round trip. No clock assumption.
	ReadOnlySafe ReadOnlyOption = iota
	// ReadOnlyLeaseBased serves ReadIndex from the leader's lease, without
	// a round trip. It assumes bounded clock drift: a leader that heard
	// from a phase-2 quorum within the last ElectionTicks of its own ticks
	// assumes that no voter of that quorum has yet counted ElectionTicks of
	// its own without it, so none has voted for anyone else, and since every
	// phase-1 quorum meets that phase-2 quorum, no other leader exists. If
	// one node's ticks run slower than another's by more than the margin
	// between the lease and the election timeout, a stale read is possible.
	// It requires check-quorum (which keeps followers from voting within
	// the lease and makes the leader step down when the lease runs out).
	ReadOnlyLeaseBased
)

// Config configures one RawNode. Zero numeric fields take the defaults
// below (see withDefaults); Validate checks the rules between fields.
type Config struct {
	// ID is this node's ID; must not be 0 (None).
	ID uint64
	// Storage is the node's stable log, read on start and afterwards.
	Storage Storage
	// Applied is the last index the application has applied (its state
	// machine is durable up to it). On restart, committed entries after
	// Applied are handed out again. 0 for a new node.
	Applied uint64
	// Rand is the source of the randomized election timeout. Required:
	// seeded by the caller so that a simulation replays exactly.
	Rand *rand.Rand
	// Logger receives state changes. nil discards them.
	Logger *slog.Logger

	// ElectionTicks is the election timeout in ticks: a follower that hears
	// from no leader for a random timeout in [ElectionTicks, 2*ElectionTicks)
	// campaigns, and a leader with check-quorum steps down after
	// ElectionTicks without hearing from a phase-2 quorum. Too low: leaders
	// flap when the network or a disk stall exceeds it. Too high: a failed
	// leader is replaced late.
	ElectionTicks int
	// HeartbeatTicks is the heartbeat interval in ticks; it must be less
	// than ElectionTicks (several heartbeats fit in one election timeout, so
	// one lost heartbeat does not start an election).
	HeartbeatTicks int

	// DisablePreVote turns off the pre-vote phase (Raft thesis §9.6). With
	// pre-vote, a node that cannot win (partitioned, or with a stale log)
	// does not raise Terms and depose a healthy leader when it rejoins.
	DisablePreVote bool
	// DisableCheckQuorum turns off check-quorum: with it, a leader steps
	// down when it has not heard from a phase-2 quorum for ElectionTicks,
	// and followers ignore votes while they hear from a leader. Lease reads
	// need it.
	DisableCheckQuorum bool
	// ReadOnly chooses how ReadIndex is confirmed; see ReadOnlyOption.
	ReadOnly ReadOnlyOption

	// MaxSizePerMsg is the most entry bytes (Entry.Size) in one MsgApp
	// (one entry is always sent, however large). It is also the batch of
	// proposals a follower receives at once. Too low: more messages and
	// round trips per entry; too high: long messages delay heartbeats
	// behind them and a lost message costs more to resend.
	MaxSizePerMsg uint64
	// MaxInflightMsgs is the most MsgApp sent to one follower and not yet
	// acknowledged (the pipeline depth). By Little's law the throughput to
	// a follower is at most MaxInflightMsgs*MaxSizePerMsg per round trip.
	// Too low: a long round trip starves the follower; too high: a
	// follower that falls behind gets a long burst to drop and resend.
	MaxInflightMsgs int
	// MaxInflightBytes bounds the entry bytes in flight to one follower,
	// whatever their number of messages: the memory the transport may have
	// to hold per follower. 0 means MaxInflightMsgs*MaxSizePerMsg.
	MaxInflightBytes uint64
	// MaxUncommittedEntriesSize bounds the payload bytes (Entry.PayloadSize)
	// a leader holds appended but not committed; proposals beyond it get
	// ErrProposalDropped. Too low: throughput is capped when commit is
	// slow; too high: a leader without a quorum keeps accepting work it
	// cannot commit, and memory grows.
	MaxUncommittedEntriesSize uint64
	// MaxCommittedSizePerReady bounds the bytes of committed entries handed
	// out in one Ready: the memory the application holds to apply them.
	MaxCommittedSizePerReady uint64

	canaries canaries
}

// canaries are planted bugs. They exist so that the simulator and the
// tests can prove they catch each one; they are unexported, and set only
// from tests (export_test.go). Never set one outside a test.
type canaries struct {
	// sendBeforePersist hands out a Ready's Messages one Ready before its
	// Entries and HardState: a driver that persists and then sends sends
	// acknowledgements and votes for state that a crash can still lose.
	sendBeforePersist bool
	// readIndexWithoutQuorum answers ReadIndex with the commit index at
	// once, without a phase-2 quorum confirming the leadership: a deposed
	// leader serves stale reads.
	readIndexWithoutQuorum bool
	// commitEarlierTerm commits any index a phase-2 quorum holds, even an
	// entry of an earlier Term (the Raft paper's Figure 8 bug).
	commitEarlierTerm bool
	// forgetVoteOnRestart drops HardState.Vote when loading from Storage:
	// a restarted node can vote twice in one Term.
	forgetVoteOnRestart bool
	// noCommitFromVotes ignores the commit index in answers to votes
	// (learnCommit): a joint change whose removed leader crashes right
	// after committing C_new wedges the group for good.
	noCommitFromVotes bool
	// countUnsynced: AdvanceWritten counts a leader's own copy of the
	// entries toward commit before they are durable: a leader that
	// crashes before its sync may have counted, toward an acknowledged
	// commit, a copy it no longer has.
	countUnsynced bool
}

// Defaults, in one place, with the reason for each.
const (
	// DefaultElectionTicks: with the usual 100 ms tick, 1 s to notice a
	// failed leader: well above disk and GC stalls, fast enough for users.
	DefaultElectionTicks = 10
	// DefaultHeartbeatTicks: 10 heartbeats per election timeout, so that
	// many must be lost in a row before a follower campaigns.
	DefaultHeartbeatTicks = 1
	// DefaultMaxSizePerMsg: 32 KiB keeps a MsgApp well under a TCP window
	// and a heartbeat never waits long behind one.
	DefaultMaxSizePerMsg = 32 << 10
	// DefaultMaxInflightMsgs: 256 messages of 32 KiB are 8 MiB per round
	// trip per follower: 800 MiB/s at a 10 ms cross-zone round trip.
	DefaultMaxInflightMsgs = 256
	// DefaultMaxUncommittedEntriesSize: 64 MiB of uncommitted proposals is
	// far more than a healthy leader ever holds, and bounds the memory of
	// one that lost its quorum.
	DefaultMaxUncommittedEntriesSize = 64 << 20
	// DefaultMaxCommittedSizePerReady: apply in batches of at most 64 MiB.
	DefaultMaxCommittedSizePerReady = 64 << 20
)

// withDefaults returns c with every zero limit set to its default.
func (c Config) withDefaults() Config {
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setU64 := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&c.ElectionTicks, DefaultElectionTicks)
	setInt(&c.HeartbeatTicks, DefaultHeartbeatTicks)
	setU64(&c.MaxSizePerMsg, DefaultMaxSizePerMsg)
	setInt(&c.MaxInflightMsgs, DefaultMaxInflightMsgs)
	setU64(&c.MaxInflightBytes, uint64(c.MaxInflightMsgs)*c.MaxSizePerMsg)
	setU64(&c.MaxUncommittedEntriesSize, DefaultMaxUncommittedEntriesSize)
	setU64(&c.MaxCommittedSizePerReady, DefaultMaxCommittedSizePerReady)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == None:
		return bad("ID must not be 0")
	case c.Storage == nil:
		return bad("Storage is required")
	case c.Rand == nil:
		return bad("Rand is required (a seeded *rand.Rand)")
	case c.ElectionTicks < 0 || c.HeartbeatTicks < 0 || c.MaxInflightMsgs < 0:
		return bad("tick counts and MaxInflightMsgs must not be negative")
	case c.HeartbeatTicks >= c.ElectionTicks:
		return bad("HeartbeatTicks (%d) must be less than ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	case c.MaxInflightBytes < c.MaxSizePerMsg:
		return bad("MaxInflightBytes (%d) must be at least MaxSizePerMsg (%d): a full message could never be sent",
			c.MaxInflightBytes, c.MaxSizePerMsg)
	case c.ReadOnly == ReadOnlyLeaseBased && c.DisableCheckQuorum:
		return bad("lease-based reads need check-quorum")
	case c.ReadOnly > ReadOnlyLeaseBased:
		return bad("unknown ReadOnly option %d", c.ReadOnly)
	}
	return nil
}
