package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/paxos"
)

// simPaxosSeeds is the default number of seeds per scenario: 6 x 180 = 1080.
const simPaxosSeeds = 180

func TestSim(t *testing.T) {
	proto := paxosProtocol(paxos.CanaryNone)
	for _, sc := range replsim.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, proto, sc, simPaxosSeeds)
		})
	}
}

// TestSimCanaries: every planted bug of the core is caught by the
// simulator's invariants or by porcupine.
func TestSimCanaries(t *testing.T) {
	all := replsim.Scenarios()
	for _, c := range paxos.Canaries {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			replsim.CatchCanary(t, paxosProtocol(c), all[:2], 100)
		})
	}
}
