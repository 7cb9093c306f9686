package cores

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

// Design 11: the replicated log, on five nodes with majority quorums,
// under every fault at once: the leader killed every 0.3-1s (restarted
// 20-300ms later), a partition of some shape (one node cut off, a
// minority split off, a bridge, one-way links, a ring, flapping) every
// 50-400ms for 100-800ms, a node (the leader, two times in three) paused
// every 0.2-0.8s for 50-400ms as a GC pause would, and links that delay
// by 1-10ms, reorder, lose 2% and duplicate 2% of messages.
const (
	// logFaults is how long the faults last; then they heal.
	logFaults = 3 * time.Second
	// logArrive spreads the buyers over the first two thirds of the
	// faults, so most of them ask while the cluster is being hurt.
	logArrive = 2 * time.Second
	// logStopAfter is the unavailability that counts as a stop: the
	// length of the faults. A log under this schedule loses its leader
	// every second or so and a try without an answer lasts its 1s
	// timeout, so buyers go unanswered for a second or two on most seeds;
	// a stop is unavailability through the whole schedule.
	logStopAfter = logFaults
)

// logScenario is design 11's cluster and faults.
func logScenario() replsim.Scenario {
	return replsim.Scenario{
		Name:       "log",
		Init:       replsim.Majority(1, 2, 3, 4, 5),
		Faults:     sim.PartitionFaults(),
		KillLeader: true,
		Pause:      true,
		Duration:   logFaults,
	}
}

// Raft is design 11a: the flash sale on the product's Raft core.
func Raft(seed uint64) (*lab.Result, error) {
	res := &lab.Result{
		Design: "Five replicas keep one log with the product's Raft core (package raft): a leader, elected by a majority " +
			"for its term, appends each buyer's compare-and-set to the log and answers once a majority has the entry on " +
			"disk and it is applied; the state machine runs the compare-and-set, so only the first buyer's swaps. A buyer " +
			"that asks a follower is sent to the leader; a retry carries the same session, so it applies once.",
		Fault: "For 3s: the leader killed every 0.3-1s, a partition of some shape every 50-400ms, a node paused as by a " +
			"GC pause, and links that reorder, lose 2% and duplicate 2% of messages.",
	}
	return runLog(seed, raftProtocol(), "term", res)
}

// MultiPaxos is design 11b: the flash sale on the product's Multi-Paxos
// core.
func MultiPaxos(seed uint64) (*lab.Result, error) {
	res := &lab.Result{
		Design: "Five replicas keep one log with the product's Multi-Paxos core (package paxos): a leader runs phase 1 " +
			"(Prepare/Promise) once for every slot ahead with a majority, then phase 2 (Accept/Accepted) per slot; a " +
			"buyer's compare-and-set is chosen when a majority accepts it, and applied in slot order, so only the first " +
			"buyer's swaps. A buyer that asks a follower is sent to the leader; a retry carries the same session.",
		Fault: "For 3s: the leader killed every 0.3-1s, a partition of some shape every 50-400ms, a node paused as by a " +
			"GC pause, and links that reorder, lose 2% and duplicate 2% of messages.",
	}
	return runLog(seed, paxosProtocol(), "ballot", res)
}

// runLog runs design 11 on proto; term names what a leader leads.
func runLog(seed uint64, proto replsim.Protocol, term string, res *lab.Result) (*lab.Result, error) {
	d := design{proto: proto, sc: logScenario(), arrive: logArrive, stopAfter: logStopAfter}
	r, err := d.run(seed, res)
	if err != nil {
		return nil, err
	}
	fc := r.faults()
	leaders := r.c.Leaders()
	if len(leaders) > 0 {
		l := leaders[0]
		res.Story = append(res.Story, fmt.Sprintf("%s won the first election at %s; in all %d %ss had a leader while the "+
			"leader was killed %d times, %d partitions came and went and %d nodes were paused.",
			node(l.ID), ms(l.At), len(leaders), term, fc.kills, fc.partitions, fc.pauses))
	}
	res.Story = append(res.Story, r.saleLine(res), r.endLine(res))
	return res, nil
}
