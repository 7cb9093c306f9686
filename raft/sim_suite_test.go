package raft_test

import (
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/raft"
)

// simSeeds is the default number of seeds per scenario: 6 x 180 = 1080.
const simSeeds = 180

func TestSim(t *testing.T) {
	proto := raftProtocol(raft.Canaries{}, nil)
	for _, sc := range replsim.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, proto, sc, simSeeds)
		})
	}
}

// asyncSeeds is TestSimAsyncPersist's number of seeds per scenario.
const asyncSeeds = 60

// TestSimAsyncPersist runs the scenarios with a store that does not wait
// for its syncs (RawNode.AdvanceWritten): nodes apply, answer clients and
// send their appends while their writes sync, and crash before a sync
// returns.
func TestSimAsyncPersist(t *testing.T) {
	proto := raftProtocol(raft.Canaries{}, nil)
	for _, sc := range asyncScenarios(replsim.Scenarios()) {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, proto, sc, asyncSeeds)
		})
	}
}

// asyncScenarios turns scs into scenarios of asynchronous writes, with
// crashes before syncs.
func asyncScenarios(scs []replsim.Scenario) []replsim.Scenario {
	out := slices.Clone(scs)
	for i := range out {
		out[i].Name += "-async"
		out[i].AsyncPersist = true
		out[i].CrashBeforeSync = 0.02
		out[i].FsyncMax = 20 * time.Millisecond
	}
	return out
}

// canarySeeds bounds each canary hunt; the log names the first catching
// seed. CommitEarlierTerm takes the most: seed 193 of majority5 since a
// Ready syncs only when the log, the term or the vote changes.
const canarySeeds = 300

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

// TestSimAsyncCanaries: the planted bugs of asynchronous writes are
// caught on the canary scenarios run with them (TestSimAsyncCanaryControl
// runs them without the bugs).
func TestSimAsyncCanaries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto replsim.Protocol
	}{
		{"CountUnsynced", canaryProtocol(raft.Canaries{CountUnsynced: true})},
		{"AllEager", allEagerProtocol()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			replsim.CatchCanary(t, tc.proto, asyncScenarios(canaryScenarios()), canarySeeds)
		})
	}
}

// TestSimAsyncCanaryControl is TestSimCanaryControl for the scenarios of
// asynchronous writes.
func TestSimAsyncCanaryControl(t *testing.T) {
	for _, sc := range asyncScenarios(canaryScenarios()) {
		t.Run(sc.Name, func(t *testing.T) {
			replsim.RunSeeds(t, canaryProtocol(raft.Canaries{}), sc, 100)
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
	all := replsim.Scenarios()
	scs := []replsim.Scenario{all[0], all[1]}
	for i := range scs {
		scs[i].CrashAfterAck = 0.02
	}
	return scs
}
