// Package replsim is the simulator suite shared by the Raft and Multi-Paxos
// cores: one driver, one replicated key/value state machine, one client
// workload and one set of invariants, run over internal/sim.
//
// Each protocol's tests supply a [Protocol]: a Start function that builds a
// node's [Core] (an adapter over the protocol's RawNode) from the node's
// sim.Disk. The harness does everything else, the same way for both:
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
//     everything in a sim.History;
//   - faults on top of the sim's nemesis (drops, duplicates, reordering,
//     every partition shape, crashes losing unsynced writes, restarts):
//     crashes right after a vote or an acknowledgement (a core that sends
//     before it persists is caught there), killing the leader, pausing a
//     node as a GC pause would, and configuration changes while all that
//     goes on;
//   - the invariants checked after every step (observer.go), porcupine on
//     the history at the end, and liveness once the faults heal;
//   - [RunSeeds] for the suites and [CatchCanary] for planted bugs.
//
// It is test-support code: only _test.go files import it, and the cores
// never do.
package replsim
