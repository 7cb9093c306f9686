// Package sim is quorumkv's deterministic simulator: whole clusters of real
// protocol cores run in one goroutine, on a virtual clock, over a simulated
// network and disk, with every random choice drawn from one seed. A failing
// seed replays exactly, so a bug found once can be debugged at leisure. It
// follows TigerBeetle's VOPR and FoundationDB's simulation: everything
// nondeterministic (time, network, disk, scheduling, randomness) is stubbed
// out and driven from the seed.
//
// # Model
//
// A [Sim] holds a virtual clock (a [time.Duration] since the start) and a
// queue of events ordered by (time, scheduling order). [Sim.RunFor],
// [Sim.RunUntil] and [Sim.Step] execute events; nothing happens between
// them. A run is bounded by [Config.MaxSteps].
//
// A node is a [Process] (anything with Receive(from, msg)) built by a
// [StartFunc] from an [Env]. The Env is the node's whole world: its clock,
// timers ([Env.After], [Env.Every]), the random source, [Env.Send] and its
// [Disk]. Messages are plain Go values of the test's own types.
//
// [Sim.Crash] kills a node's incarnation: its timers never fire, its later
// sends are dropped, messages reaching it are dropped, and its storage
// keeps only what was synced ([Disk], or simpebble.Disk from package
// internal/sim/simpebble for Pebble).
// [Sim.Restart] calls the StartFunc again, which must recover from storage.
//
// The [Network] gives each directed link a [LinkConfig] (delay range, so
// messages reorder; drop and duplicate probabilities; optional FIFO) and
// applies [Partition]s: [Isolate], [Split], [Bridge], [CutOneWay],
// [MajorityRing], and [Network.Flap] for one that heals and re-forms. A
// [Nemesis] injects random faults from a chosen set on a seeded schedule;
// [Sim.Heal] ends every fault so a test can then check liveness.
//
// Everything is recorded in a bounded in-memory [Trace] (sends, deliveries,
// drops, crashes, restarts, partitions, timers, client calls), dumped when
// a test made with [NewForTest] fails.
//
// Client operations are recorded in a [History] and checked for
// linearizability by porcupine against [KVModel], a per-key register with
// get, put, delete and compare-and-swap ([AssertLinearizable]). Operations
// whose outcome the client never learned are recorded with [Op.Unknown].
//
// [RunSeeds] runs a test body over many seeds (QKV_SIM_SEEDS=n for more,
// QKV_SIM_SEED=s to rerun one) and prints the command that reruns a
// failing seed.
//
// # Rules for deterministic tests
//
//   - Draw every random number from [Sim.Rand] / [Env.Rand], or from a
//     generator seeded from it (a Raft core's election jitter:
//     rand.New(rand.NewPCG(env.Rand().Uint64(), env.Rand().Uint64()))).
//   - Never read the wall clock, start goroutines, or let Go map iteration
//     order decide what happens (iterate over sorted keys).
//   - Do not change a message after sending it: the network may deliver it
//     twice, and the trace prints it later. Its %v form should not contain
//     pointers, or two runs of a seed print different traces.
//
// # Example: a Raft test
//
//	func TestRaftLinearizable(t *testing.T) {
//		sim.RunSeeds(t, 200, func(t *testing.T, seed uint64) {
//			s := sim.NewForTest(t, sim.Config{Seed: seed, Link: sim.DefaultLink()})
//			ids := []sim.NodeID{1, 2, 3, 4, 5}
//			for _, id := range ids {
//				s.AddNode(id, func(env *sim.Env) sim.Process {
//					return newRaftNode(env, ids) // loads HardState and log from env.Disk()
//				})
//			}
//			h := sim.NewHistory(s)
//			clients := startClients(s, h, ids) // Invoke, then Return or Unknown on timeout
//			s.AddInvariant("one leader per term", func() error { return oneLeaderPerTerm(s, ids) })
//			s.StartNemesis(sim.NemesisConfig{Nodes: ids})
//			if err := s.RunFor(10 * time.Second); err != nil {
//				t.Fatal(err)
//			}
//			s.Heal() // liveness: with the faults gone, clients finish
//			if err := s.RunUntil(clients.allDone, 5*time.Second); err != nil {
//				t.Fatal(err)
//			}
//			sim.AssertLinearizable(t, h, sim.DefaultCheckTimeout)
//		})
//	}
//
// where the node glues a pure core to the Env:
//
//	func newRaftNode(env *sim.Env, peers []sim.NodeID) *raftNode {
//		n := &raftNode{env: env, rn: raft.NewRawNode(loadConfig(env.Disk(), peers, env.Rand()))}
//		env.Every(10*time.Millisecond, func() { n.rn.Tick(); n.handleReady() })
//		return n
//	}
//
//	func (n *raftNode) Receive(from sim.NodeID, msg any) {
//		n.rn.Step(msg.(raft.Message))
//		n.handleReady()
//	}
//
//	func (n *raftNode) handleReady() {
//		rd := n.rn.Ready()
//		save(n.env.Disk(), rd.HardState, rd.Entries)
//		n.env.Disk().Sync() // persist before sending
//		for _, m := range rd.Messages {
//			n.env.Send(sim.NodeID(m.To), m)
//		}
//		n.apply(rd.CommittedEntries)
//		n.rn.Advance()
//	}
//
// The tests of this package hold two complete examples: an ABD quorum
// register that must pass on every seed (toy_abd_test.go) and an
// asynchronous primary-backup that must be caught losing acknowledged
// writes (toy_primarybackup_test.go).
package sim
