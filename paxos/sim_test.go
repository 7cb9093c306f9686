package paxos_test

import (
	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/replsim/paxoscore"
	"github.com/quorumkv/quorumkv/paxos"
)

// The suites of sim_suite_test.go drive paxos.RawNode through the adapter
// of internal/replsim/paxoscore, with the planted bugs of export_test.go.

// paxosProtocol builds Multi-Paxos nodes with the planted bug c.
func paxosProtocol(c paxos.Canary) replsim.Protocol {
	return paxoscore.Protocol(paxoscore.Options{Tweak: canary(c)})
}

// paxosLeaseProtocol builds Multi-Paxos nodes with read leases
// (Config.ReadLease) and the planted bug c; the harness checks their
// leases (replsim.LeaseCore).
func paxosLeaseProtocol(c paxos.Canary) replsim.Protocol {
	plant := canary(c)
	return paxoscore.Protocol(paxoscore.Options{
		Name: "paxos-lease",
		Tweak: func(cfg *paxos.Config) {
			plant(cfg)
			cfg.ReadLease = true
		},
		Lease: (*paxos.RawNode).HoldsLease,
	})
}

func canary(c paxos.Canary) func(*paxos.Config) {
	return func(cfg *paxos.Config) { *cfg = paxos.WithCanary(*cfg, c) }
}
