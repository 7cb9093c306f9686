// Package bench is quorumkv's workload engine: the load generator behind
// "kvctl bench" and the benchmarks in e2e/.
//
// A run (Run, Workload) drives one keyspace with closed-loop clients, each
// sending its next request once the previous one was answered, or
// open-loop (Workload.Rate), requests due at fixed times and measured from
// them so that a stall is not hidden (coordinated omission), spread over
// the cluster's nodes, and measures:
//
//   - throughput and latency percentiles per kind of request (HDR
//     histograms), and failed requests by kind of error;
//   - stale reads as the client sees them: reads that missed a write
//     acknowledged before they were sent (MissedAcks). Raft and paxos
//     keyspaces must show none (they are linearizable), nor must eventual
//     ones read with W+R > N;
//   - for eventual keyspaces, the server's own staleness counters, read
//     from every node's /metrics before and after the run.
//
// A sweep (Sweep) compares the modes: the same workload on a raft, a
// paxos and an eventual keyspace it creates, the last once per (W, R),
// and each at every rate of Sweep.Rates. WriteChart draws such runs as
// throughput against p99 latency, a line per setting; WriteTable prints
// them. Workload.Progress reports a run as it goes.
//
// The load runs in the calling process. On the machine that runs the
// nodes it competes with them for the cores, and what it measures is then
// the pair of them, not the cluster alone.
//
// bench depends on client/ and api/ only, never on the node (kv/) or the
// tests (e2e/): it measures the cluster from the outside, as a user would.
package bench
