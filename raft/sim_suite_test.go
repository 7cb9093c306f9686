package raft_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/raft"
)

// simScenarios are the cluster shapes every protocol runs in the
// simulator, with all the nemesis's faults (drops, duplicates, reordering,
// every partition shape, crashes that lose unsynced writes, restarts),
// crashes right after votes and acknowledgements, and snapshots.
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
	reconf.Reconfig = reconfigTargets()
	return []replsim.Scenario{
		with("majority3", replsim.Majority(1, 2, 3)),
		with("majority5", replsim.Majority(1, 2, 3, 4, 5)),
		with("grid3x3", replsim.Grid3x3()),
		with("zones3x2", replsim.Zones3x2()),
		with("weighted5", replsim.Weighted5()),
		reconf,
	}
}

// reconfigTargets grow 3 voters to 5, change the geometry to zones and to
// weighted, replace voters, and shrink back.
func reconfigTargets() []replsim.Membership {
	return []replsim.Membership{
		replsim.Majority(1, 2, 3, 4, 5),
		replsim.Zones3x2(),
		replsim.Weighted5(),
		replsim.Majority(4, 5, 6),
		replsim.Majority(1, 2, 3),
	}
}

// simSeeds is the default number of seeds per scenario: 6 x 180 = 1080.
const simSeeds = 180

func TestSim(t *testing.T) {
	proto := raftProtocol(raft.Canaries{}, nil)
	for _, sc := range simScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, proto, sc, simSeeds)
		})
	}
}

// canarySeeds bounds each canary hunt; the log names the first catching
// seed, usually far below it.
const canarySeeds = 150

// TestSimCanaries: every planted bug of the core is caught by the
// simulator's invariants or by porcupine, on random schedules of the
// canary scenarios (TestSimCanaryControl runs them without the bugs).
func TestSimCanaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    raft.Canaries
	}{
		{"SendBeforePersist", raft.Canaries{SendBeforePersist: true}},
		{"ReadIndexWithoutQuorum", raft.Canaries{ReadIndexWithoutQuorum: true}},
		{"CommitEarlierTerm", raft.Canaries{CommitEarlierTerm: true}},
		{"ForgetVoteOnRestart", raft.Canaries{ForgetVoteOnRestart: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			replsim.CatchCanary(t, canaryProtocol(tc.k), canaryScenarios(), canarySeeds)
		})
	}
}

// TestSimCanaryControl is the positive control: the canary scenarios pass
// without the planted bugs.
func TestSimCanaryControl(t *testing.T) {
	for _, sc := range canaryScenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, canaryProtocol(raft.Canaries{}), sc, 100)
		})
	}
}

// canaryProtocol sends one entry per MsgApp, so that an earlier Term's
// entry and the new leader's empty entry travel (and get lost) apart: the
// schedule of the Raft paper's Figure 8.
func canaryProtocol(k raft.Canaries) replsim.Protocol {
	return raftProtocol(k, func(c *raft.Config) { c.MaxSizePerMsg = 1 })
}

// canaryScenarios are the small clusters canaries are hunted on, with
// more crashes right after acknowledgements.
func canaryScenarios() []replsim.Scenario {
	all := simScenarios()
	scs := []replsim.Scenario{all[0], all[1]}
	for i := range scs {
		scs[i].CrashAfterAck = 0.02
	}
	return scs
}
