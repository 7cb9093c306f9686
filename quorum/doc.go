// Package quorum is the geometry of quorumkv: which sets of nodes may decide.
//
// Every replication protocol in quorumkv runs in two phases, and each phase
// waits for a quorum of its own kind:
//
//	phase 1 (learn the past)     Raft election, Paxos Prepare, W/R/N read set
//	phase 2 (decide the future)  Raft commit,   Paxos Accept,  W/R/N write set
//
// The protocols are safe when every phase-1 quorum shares at least one node
// with every phase-2 quorum (Howard, Malkhi and Spiegelman, "Flexible Paxos",
// 2016): whoever starts phase 1 is then bound to hear of anything a phase-2
// quorum accepted. Majorities of both kinds meet because two majorities
// always overlap, but they are not the only way, and not always the cheapest.
// The article quorumkv grows out of walks through the alternatives while
// selling one phone to one buyer: a 3x3 grid in which a row and a column
// always cross, so each phase needs 3 nodes where a majority of 9 needs 5;
// per-datacenter quorums that keep writes inside one zone; weighted votes.
//
// A System answers, for a fixed set of voters, "is this set a phase-p
// quorum?" and "what is the highest index a phase-p quorum has acknowledged?"
// (the commit index of a Raft or Paxos leader). The geometries are:
//
//	majority        more than half of the voters, both phases
//	weighted        more than half of the total weight, both phases
//	grid:RxC        phase 1 a full row, phase 2 a full column
//	zones           phase 1 a node in every zone, phase 2 every node of one zone
//	flexible:Q1,Q2  any Q1 voters for phase 1, any Q2 voters for phase 2
//
// and Joint combines two systems (a set is a quorum when it is one in both),
// which is how a configuration change moves from an old geometry to a new one
// without a moment in which neither is in charge.
//
// Prove enumerates the subsets of a cluster's voters and either proves that
// every phase-1 quorum meets every phase-2 quorum or returns a pair that does
// not. It also says whether phase-1 quorums meet each other (Raft relies on
// that to keep one leader per term unless terms are unique per candidate) and
// how many failures each phase survives in the worst case.
//
// Geometries are monotone: adding nodes to a quorum leaves it a quorum. The
// proof and the quorum-index computations rely on that, and the tests check it.
//
// The package is pure: it imports only the standard library, has no global
// state and does no IO.
package quorum
