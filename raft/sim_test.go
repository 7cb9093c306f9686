package raft_test

import (
	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/replsim/raftcore"
	"github.com/quorumkv/quorumkv/raft"
)

// The suites of sim_suite_test.go drive raft.RawNode through the adapter
// of internal/replsim/raftcore, with the planted bugs of export_test.go.

// raftProtocol builds Raft nodes with the planted bugs k and, if tweak is
// set, other changes to raftcore.Config.
func raftProtocol(k raft.Canaries, tweak func(*raft.Config)) replsim.Protocol {
	return raftcore.Protocol(options(k, tweak))
}

func options(k raft.Canaries, tweak func(*raft.Config)) raftcore.Options {
	return raftcore.Options{
		Tweak: func(c *raft.Config) {
			if tweak != nil {
				tweak(c)
			}
			raft.SetCanaries(c, k)
		},
		Leader: simLeader,
	}
}

// simLeader is raftcore.Options.Leader without allocating: the harness
// calls it for every node after every step.
func simLeader(rn *raft.RawNode) (term, lead uint64, leads bool) {
	term, leads = rn.SimLeader()
	return term, rn.SimLead(), leads
}

// allEagerProtocol is canaryProtocol as driven by a store that sends
// every message, votes and acknowledgements too, before its writes are
// durable (kv/store's Canary.AllEager, with AsyncPersist).
func allEagerProtocol() replsim.Protocol {
	o := options(raft.Canaries{}, func(c *raft.Config) { c.MaxSizePerMsg = 1 }) // as canaryProtocol
	o.AllEager = true
	return raftcore.Protocol(o)
}
