package paxos

import (
	"fmt"
	"math/rand/v2"
)

// Config is one Multi-Paxos node's local settings. Time is counted in
// ticks (calls of RawNode.Tick), sizes in bytes. Zero fields take the
// defaults of WithDefaults; Validate checks the rules across fields.
type Config struct {
	// ID is this node's ID, never 0, and the NodeID of every ballot it uses.
	ID uint64
	// Rand randomizes election timeouts. Required: a seeded source makes a
	// run reproducible; nodes of one process must not share one unless the
	// caller serializes them.
	Rand *rand.Rand
	// Applied is the last slot the application had applied when this node
	// was (re)started; chosen entries above it are delivered again.
	Applied uint64

	// ElectionTicks is how long a follower waits without hearing from a
	// leader before it runs phase 1 itself; each wait is drawn from
	// [ElectionTicks, 2*ElectionTicks). Too low: leaders are deposed by
	// ordinary delays and dueling candidates waste rounds; too high: a dead
	// leader stalls the group that long. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval. Heartbeats carry
	// the commit index to learners, retransmit lost Accepts and confirm
	// reads. Must be below ElectionTicks (a follower must hear several per
	// timeout). Default 1.
	HeartbeatTicks int
	// MaxOpenSlots is the pipelining window: the leader sends an Accept for
	// slot s only once every slot up to s-MaxOpenSlots is chosen. It is
	// also alpha, the delay after which a configuration entry takes effect
	// (see reconfig.go), so it MUST be equal on every node of a group.
	// 1 disables pipelining; too high lets a slow quorum build up a long
	// tail of open slots that a new leader must recover. Default 64.
	MaxOpenSlots int
	// MaxSizePerMsg bounds the entry bytes of one Accept, and of the chosen
	// entries handed out by one Ready; one entry always goes, however big.
	// Low: more messages per slot (1 turns batching off); high:
	// head-of-line blocking behind big messages.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxUncommittedBytes bounds the bytes of proposals a leader holds that
	// are not yet chosen (in open slots or waiting for the window). Over
	// it, Propose returns ErrProposalDropped instead of growing the heap.
	// By Little's law it must cover throughput x commit latency to keep the
	// pipe full. Default 64 MiB.
	MaxUncommittedBytes uint64
	// MaxPendingReads bounds reads waiting for their quorum round; over
	// it ReadIndex returns ErrProposalDropped. Default 4096.
	MaxPendingReads int

	// ReadLease lets a leader serve linearizable reads from its lease
	// (lease.go): without a round trip while fewer than ElectionTicks-2
	// of its ticks have passed since it sent a heartbeat round a phase-2
	// quorum acknowledged. It trusts that every node's ticks follow time
	// at nearly the same rate (one tick per election timeout, 10% with
	// the default), which the caller must make true: tick by a monotonic
	// clock, never fall behind it, and call ForgetLease when it stops
	// ticking a leader. In return the acceptors keep a promise: no
	// Prepare of another proposer is granted within ElectionTicks of an
	// acknowledged heartbeat, nor within ElectionTicks of a restart. Set
	// it alike on every node of a group: an acceptor without it never
	// vouches for a lease (its acknowledgements carry no round), so a
	// leader with it would wait for rounds. Default off: every read
	// takes a round of heartbeats, which assumes nothing about clocks.
	ReadLease bool

	canary canaries
}

// Defaults for the fields of Config, with the reasons given there.
const (
	DefaultElectionTicks       = 10
	DefaultHeartbeatTicks      = 1
	DefaultMaxOpenSlots        = 64
	DefaultMaxSizePerMsg       = 1 << 20
	DefaultMaxUncommittedBytes = 64 << 20
	DefaultMaxPendingReads     = 4096
)

// WithDefaults returns c with every zero limit set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.ElectionTicks, DefaultElectionTicks)
	setDefault(&c.HeartbeatTicks, DefaultHeartbeatTicks)
	setDefault(&c.MaxOpenSlots, DefaultMaxOpenSlots)
	setDefault(&c.MaxSizePerMsg, DefaultMaxSizePerMsg)
	setDefault(&c.MaxUncommittedBytes, DefaultMaxUncommittedBytes)
	setDefault(&c.MaxPendingReads, DefaultMaxPendingReads)
	return c
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate checks c after WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("%w: ID 0 is reserved", ErrInvalidConfig)
	case c.Rand == nil:
		return fmt.Errorf("%w: Rand is required (a seeded *rand.Rand)", ErrInvalidConfig)
	case c.HeartbeatTicks < 1 || c.ElectionTicks <= c.HeartbeatTicks:
		return fmt.Errorf("%w: need 1 <= HeartbeatTicks (%d) < ElectionTicks (%d)", ErrInvalidConfig, c.HeartbeatTicks, c.ElectionTicks)
	case c.MaxOpenSlots < 1:
		return fmt.Errorf("%w: MaxOpenSlots %d: want at least 1", ErrInvalidConfig, c.MaxOpenSlots)
	case c.MaxSizePerMsg < 1 || c.MaxUncommittedBytes < c.MaxSizePerMsg:
		return fmt.Errorf("%w: need 1 <= MaxSizePerMsg (%d) <= MaxUncommittedBytes (%d)", ErrInvalidConfig, c.MaxSizePerMsg, c.MaxUncommittedBytes)
	case c.MaxPendingReads < 1:
		return fmt.Errorf("%w: MaxPendingReads %d: want at least 1", ErrInvalidConfig, c.MaxPendingReads)
	case c.ReadLease && c.HeartbeatTicks >= c.leaseTicks():
		return fmt.Errorf("%w: ReadLease needs HeartbeatTicks (%d) below the lease, ElectionTicks-2 (%d): a lease would run out between two rounds",
			ErrInvalidConfig, c.HeartbeatTicks, c.leaseTicks())
	}
	return nil
}
