package paxos

import (
	"fmt"

	"github.com/quorumkv/quorumkv/quorum"
)

// Reconfiguration through the log.
//
// A configuration (voters and geometry) is itself a value chosen in a
// slot. An EntryConfig chosen in slot s governs the slots from s+alpha on,
// where alpha is MaxOpenSlots, the pipelining window (Lamport's "α" in "The
// Part-Time Parliament"; Lamport, Malkhi and Zhou, "Reconfiguring a State
// Machine", 2010). The delay is what lets a leader always know the
// configuration of a slot before it sends an Accept for it: the leader
// sends slot t only once every slot up to t-alpha is chosen, and the
// configuration of t depends only on those.
//
// Why the quorums of old and new configurations meet where they must.
// Paxos is safe when a leader's phase-1 quorum meets the phase-2 quorum of
// every slot that may already be chosen. A slot t is chosen by a phase-2
// quorum of config(t). A new leader prepares every slot from c+1 on (c its
// commit index), so it needs, for every such t, a phase-1 quorum of
// config(t). It does not know every config(t) up front: an EntryConfig in
// a slot above c may be chosen without its knowledge. So it gathers
// promises until it holds a phase-1 quorum of each configuration in the
// set below, growing the set as promises arrive (a quorum.Joint of them
// all, since a joint quorum is a quorum of every part):
//
//  1. config(c+1) and every configuration it knows of that governs a later
//     slot (chosen in a slot <= c, taking effect after c);
//  2. the configuration of every slot above c whose highest-ballot entry
//     among the promises is an EntryConfig.
//
// Induction on t >= c+1: suppose a value was chosen in slot t. If config(t)
// comes from (1), the leader has a phase-1 quorum of it. Otherwise config(t)
// was chosen in a slot s with c < s <= t-alpha, and it was chosen before t
// was ever sent (the window). By induction the leader's quorum met the
// phase-2 quorum that chose s, so some promise reported slot s with a
// ballot at or above the one that chose it, and the highest such entry is
// that configuration (Paxos's own argument, slot by slot). It then falls
// under (2), and the leader holds a phase-1 quorum of it too, which meets
// the quorum that chose t. A configuration in (2) that was never chosen
// makes the leader wait for its voters' promises: safe, if slower, and the
// leader proposes it again in its slot anyway (the highest-ballot value of
// a slot is what a new leader proposes there). A configuration that a
// higher ballot superseded in its slot cannot have been chosen, so it is
// left out: its voters may never answer, and needing them would block
// every election for good.
//
// Phase 2 needs no joint quorum: slot t is decided by config(t) alone,
// and every future leader meets config(t)'s phase-2 quorums by the
// argument above. The old configuration keeps deciding slots below s+alpha
// and the new one decides from there, with no slot decided by both.
//
// Reads and the leader's liveness check use a joint phase-2 quorum of
// every configuration governing a slot from commit+1 on, so that whichever
// of them a future leader prepares with, its phase-1 quorum meets the
// quorum that confirmed the read.
//
// A leader may itself be removed: it stays proposer (Paxos does not need
// the proposer to be an acceptor) until a voter of the new configuration
// takes over, and its own acceptances no longer count.
//
// A configuration takes effect only once its slot is alpha slots behind
// the chosen prefix, so an idle group would never get there: once one is
// chosen, the leader fills the slots up to the one it governs with no-ops
// (openSlots), and the change completes whether clients write or not.
//
// Joining acceptors. A node added to a running group starts with no
// configuration at all (an empty PersistentState): it does not know the
// one in force, only the leader's snapshot can tell it. Until a snapshot
// arrives it answers Prepares and Accepts like any acceptor (an
// acceptor's promises need no configuration), but it never runs phase 1
// and never learns which slots are chosen. It must not guess a
// configuration: a candidate that prepares with, say, the one that added
// it (ahead of its slot), needs no promise from the acceptors that chose
// the slots before that one under the old configuration, and may
// overwrite them (canary joinerAssumesConfig). Its acknowledgements say
// it is joining (Message.Joining); the leader sends it a snapshot, asking
// the application to compact first (NeedsSnapshot) if it has never done
// so, and once installed the joiner is an ordinary acceptor. One removed
// and added back may have lost everything in between: it joins again, the
// leader forgetting what it answered before (forgetReadded).
type configSet struct {
	alpha uint64
	list  []*activeConfig // ascending Effective
}

type activeConfig struct {
	ConfigState
	sys quorum.System
}

// newConfigSet builds the configurations of states; none makes a joiner's
// empty set (known is false), which a snapshot fills.
func newConfigSet(alpha uint64, states []ConfigState) (*configSet, error) {
	c := &configSet{alpha: alpha}
	for _, st := range states {
		sys, err := st.Membership.System()
		if err != nil {
			return nil, fmt.Errorf("%w: configuration at slot %d: %w", ErrInvalidConfig, st.Effective, err)
		}
		c.list = append(c.list, &activeConfig{st, sys})
	}
	return c, nil
}

// known reports whether the set holds any configuration: false on a
// joiner before its first snapshot, where at, from and last must not be
// called.
func (c *configSet) known() bool { return len(c.list) > 0 }

// at returns the configuration that governs slot s.
func (c *configSet) at(s uint64) *activeConfig {
	cur := c.list[0]
	for _, a := range c.list[1:] {
		if a.Effective <= s {
			cur = a
		}
	}
	return cur
}

// from returns the configurations that govern any slot >= s.
func (c *configSet) from(s uint64) []*activeConfig {
	out := []*activeConfig{c.at(s)}
	for _, a := range c.list {
		if a.Effective > s {
			out = append(out, a)
		}
	}
	return out
}

// last returns the most recent configuration.
func (c *configSet) last() *activeConfig { return c.list[len(c.list)-1] }

// add records an EntryConfig chosen in slot s.
func (c *configSet) add(s uint64, data []byte) {
	m, err := UnmarshalMembership(data)
	if err != nil {
		panic(fmt.Sprintf("paxos: chosen configuration in slot %d: %v", s, err))
	}
	sys, err := m.System()
	if err != nil {
		panic(fmt.Sprintf("paxos: chosen configuration in slot %d: %v", s, err))
	}
	eff := s + c.alpha
	if eff <= c.last().Effective {
		panic(fmt.Sprintf("paxos: configuration chosen in slot %d takes effect at %d, not after %d", s, eff, c.last().Effective))
	}
	c.list = append(c.list, &activeConfig{ConfigState{eff, m}, sys})
}

// states returns the configurations that govern any slot after s, as a
// snapshot at s must carry them.
func (c *configSet) states(s uint64) []ConfigState {
	var out []ConfigState
	for _, a := range c.from(s + 1) {
		out = append(out, a.ConfigState)
	}
	return out
}

// trim forgets the configurations that govern no slot after s.
func (c *configSet) trim(s uint64) { c.list = c.from(s + 1) }

// voters returns the union of the voters of cs, ascending.
func voters(cs []*activeConfig) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for _, a := range cs {
		for _, id := range a.sys.Voters() {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	slicesSort(out)
	return out
}

// joint folds systems into one whose quorums are quorums of every part.
func joint(systems []quorum.System) quorum.System {
	sys := systems[0]
	for _, s := range systems[1:] {
		sys = quorum.NewJoint(sys, s)
	}
	return sys
}

func systemsOf(cs []*activeConfig) []quorum.System {
	out := make([]quorum.System, len(cs))
	for i, a := range cs {
		out[i] = a.sys
	}
	return out
}

// checkMembership refuses a configuration Paxos cannot run safely on.
func checkMembership(m Membership) error {
	sys, err := m.System()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	rep, err := quorum.Prove(sys)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if ok, why := rep.Safe(quorum.Paxos); !ok {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, m, why)
	}
	return nil
}
