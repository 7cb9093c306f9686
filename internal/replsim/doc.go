// Package replsim is the simulator suite shared by the Raft and Multi-Paxos
// cores: one driver, one replicated key/value state machine, one client
// workload and one set of invariants, run over internal/sim.
//
// A [Protocol] is a Start function that builds a node's [Core] from the
// node's sim.Disk: the adapters over the product's RawNodes are the
// subpackages raftcore and paxoscore, which raft's and paxos's tests
// configure with their planted bugs. The harness does everything else, the
// same way for both:
//
//   - the node loop: Tick on a timer; Step; a Ready is persisted to the
//     node's disk and synced (which takes Scenario.Fsync of virtual time:
//     a crash in between loses it) before its messages are sent, then
//     committed slots are applied in order and confirmed reads served;
//   - a state machine of registers with put, get, delete and
//     compare-and-set, evaluated when applied, with client sessions so a
//     retried write applies once, snapshots and log compaction;
//   - clients that send random operations to random nodes, follow
//     NotLeader hints, retry, give up (outcome unknown), and record
//     everything in a sim.History; or, instead, a flash sale ([Sale]):
//     buyers racing to compare-and-set one key, each counting the round
//     trips on its write's path (hops.go), and a final linearizable read;
//   - faults on top of the sim's nemesis (drops, duplicates, reordering,
//     every partition shape, crashes losing unsynced writes, restarts):
//     crashes right after a vote or an acknowledgement (a core that sends
//     before it persists is caught there), killing the leader, pausing a
//     node as a GC pause would, and configuration changes while all that
//     goes on;
//   - the invariants checked after every step (observer.go), porcupine on
//     the history at the end, and liveness once the faults heal;
//   - [Run] for one seed, [RunSeeds] for the suites and [CatchCanary] for
//     planted bugs, all on a testing.TB; [New] and [Cluster.Run] for
//     callers without one, on a sim they built themselves.
//
// The suites (raft's and paxos's _test.go files) and the lab (lab/cores,
// which kvctl lab runs) import it; the cores never do.
package replsim
