package paxos

import "github.com/quorumkv/quorumkv/quorum"

// Canary names one planted bug (see canaries). Tests switch one on to show
// the suite catches it; only test code can reach this file.
type Canary int

const (
	CanaryNone Canary = iota
	CanaryForgetPromise
	CanaryIgnoreAccepted
	CanaryAcceptLowerBallot
	CanaryKnownConfigsOnly
	CanaryEveryPromisedConfig
	CanaryIgnoreLeaseWindow
	CanaryLeaseFromAck
)

// Canaries lists the planted bugs, for tests that loop over them.
var Canaries = []Canary{CanaryForgetPromise, CanaryIgnoreAccepted, CanaryAcceptLowerBallot}

// LeaseCanaries are the planted bugs of read leases: they do anything only
// with Config.ReadLease set.
var LeaseCanaries = []Canary{CanaryIgnoreLeaseWindow, CanaryLeaseFromAck}

func (c Canary) String() string {
	return [...]string{"none", "forget-promise", "ignore-accepted", "accept-lower-ballot", "known-configs-only", "every-promised-config",
		"ignore-lease-window", "lease-from-ack"}[c]
}

func (c Canary) set() canaries {
	return canaries{
		forgetPromise:       c == CanaryForgetPromise,
		ignoreAccepted:      c == CanaryIgnoreAccepted,
		acceptLowerBallot:   c == CanaryAcceptLowerBallot,
		knownConfigsOnly:    c == CanaryKnownConfigsOnly,
		everyPromisedConfig: c == CanaryEveryPromisedConfig,
		ignoreLeaseWindow:   c == CanaryIgnoreLeaseWindow,
		leaseFromAck:        c == CanaryLeaseFromAck,
	}
}

// NewAcceptorWithCanary is NewAcceptor with the bug c planted.
func NewAcceptorWithCanary(id uint64, st AcceptorState, c Canary) *Acceptor {
	return newAcceptor(id, st, c.set())
}

// NewProposerWithCanary is NewProposer with the bug c planted.
func NewProposerWithCanary(id uint64, sys quorum.System, c Canary) *Proposer {
	p := NewProposer(id, sys)
	p.canary = c.set()
	return p
}

// WithJoinerGuess returns cfg with the bug joinerGuess planted: a node
// started empty takes m for its configuration.
func WithJoinerGuess(cfg Config, m Membership) Config {
	cfg.canary.joinerGuess = &m
	return cfg
}

// WithCanary returns cfg with the bug c planted.
func WithCanary(cfg Config, c Canary) Config {
	cfg.canary = c.set()
	return cfg
}

// HoldsLease reports whether r leads and would serve a read now from its
// lease, without a round.
func (r *RawNode) HoldsLease() bool { return r.role == Leader && r.leaseValid() }
