// Package cores runs the designs of the article's road that the product
// implements on the product's own protocol cores, in the simulator.
//
// Design 8 is Basic Paxos per key: [BasicPaxos] drives package paxos's
// Proposer and Acceptor as eventual keyspaces drive them for
// compare-and-swap, one proposer per buyer and five acceptors that sync
// before they answer.
//
// Designs 10 and 11 are the flash sale on a replicated log, driven by the
// Raft core (package raft) and the Multi-Paxos core (package paxos)
// exactly as their simulator suites drive them (internal/replsim, with the
// adapters of internal/replsim/raftcore and internal/replsim/paxoscore).
//
// Design 11 is the log itself, under every fault the suites throw at it:
// [Raft] and [MultiPaxos]. Design 10 is the choice of quorums: [Weighted],
// [Zones] and [Grid] crash a set of nodes the geometry survives, as
// package quorum's proof computes, and name a set it does not;
// [NonIntersecting] runs a geometry whose phase-1 and phase-2 quorums can
// be disjoint, which the proof rejects, and sells the phone twice.
//
// In designs 10 and 11 every buyer sends CAS-if-absent("phone", its
// name) through the cluster as replsim's clients do: it is told "sold" if
// its CAS swapped, "sold out" if not, and gets no answer when a try times
// out. At the end, with
// the faults healed, a linearizable read through the leader says who owns
// the phone, and every replica's applied state is compared.
package cores
