package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/paxos"
)

// simScenarios are the cluster shapes of the simulator runs, the same as
// Raft's: every nemesis fault (drops, duplicates, reordering, every
// partition shape, crashes that lose unsynced writes, restarts), crashes
// right after promises and acceptances, leaders killed, nodes paused, and
// snapshots.
func simScenarios() []replsim.Scenario {
	base := replsim.Scenario{
		CrashAfterVote: 0.05, CrashAfterAck: 0.002, KillLeader: true, Pause: true, SnapshotEvery: 40,
	}
	with := func(name string, m replsim.Membership) replsim.Scenario {
		sc := base
		sc.Name, sc.Init = name, m
		return sc
	}
	reconf := with("reconfig", replsim.Majority(1, 2, 3))
	reconf.Nodes = []uint64{1, 2, 3, 4, 5, 6}
	reconf.Reconfig = []replsim.Membership{
		replsim.Majority(1, 2, 3, 4, 5),
		replsim.Zones3x2(),
		replsim.Weighted5(),
		replsim.Majority(4, 5, 6),
		replsim.Majority(1, 2, 3),
	}
	return []replsim.Scenario{
		with("majority3", replsim.Majority(1, 2, 3)),
		with("majority5", replsim.Majority(1, 2, 3, 4, 5)),
		with("grid3x3", replsim.Grid3x3()),
		with("zones3x2", replsim.Zones3x2()),
		with("weighted5", replsim.Weighted5()),
		reconf,
	}
}

// simPaxosSeeds is the default number of seeds per scenario: 6 x 180 = 1080.
const simPaxosSeeds = 180

func TestSim(t *testing.T) {
	proto := paxosProtocol(paxos.CanaryNone)
	for _, sc := range simScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, proto, sc, simPaxosSeeds)
		})
	}
}

// TestSimCanaries: every planted bug of the core is caught by the
// simulator's invariants or by porcupine.
func TestSimCanaries(t *testing.T) {
	all := simScenarios()
	for _, c := range paxos.Canaries {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			replsim.CatchCanary(t, paxosProtocol(c), all[:2], 100)
		})
	}
}
