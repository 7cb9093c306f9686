package raft

// Unique Terms for geometries whose election quorums can be disjoint.
//
// Raft's argument that a Term has at most one leader is that a leader got
// votes from an election (phase-1) quorum, a node votes once per Term, and
// two phase-1 quorums share a node. In a grid:3x3 (phase 1 = a full row,
// phase 2 = a full column) two rows share nothing, and this happens:
//
//  1. n1 (row 1: n1 n2 n3) and n4 (row 2: n4 n5 n6) both time out in
//     Term 1 and campaign for Term 2.
//  2. n2 and n3 vote for n1; n5 and n6 vote for n4. Each vote is the
//     voter's only vote in Term 2.
//  3. n1 has a full row, a phase-1 quorum: it is leader of Term 2.
//     n4 has a full row too: it is also leader of Term 2.
//  4. n1 appends entry (Term 2, index 2) = "x" and replicates it to its
//     column n1 n4 n7; n4 appends a different (Term 2, index 2) = "y" and
//     replicates it to n2 n5 n8.
//  5. Two logs now hold different entries with the same index and Term:
//     Log Matching, which every later AppendEntries consistency check
//     trusts, is broken, and both "x" and "y" can be committed.
//
// So, as Paxos ballots <round, node> are unique, each Term has one owner:
// Term t belongs to the node whose ID is congruent to t modulo TermSlots,
// and in such a configuration a candidate only campaigns for the next Term
// it owns. Step 1 then has n1 campaign for Term 1025 (1025 mod 1024 = 1)
// and n4 for Term 1028: at most one of them leads each Term, and the
// other's later Term makes it the newer leader, as in ordinary Raft.
//
// Ownership depends on node IDs only, never on the configuration, because
// two candidates may hold different configurations during a change; the
// rule must give them the same answer. Configurations that need unique
// Terms are refused if two voters share an owner slot (see newConfig).
//
// Which configurations need it is decided once per configuration from the
// quorum system (quorum.Prove's Phase1Intersect); a joint configuration
// needs it if either side does. Candidates in configurations whose phase-1
// quorums all meet keep Raft's Term+1: a candidate of such a configuration
// C and one of joint(C, D) both need a phase-1 quorum of C, and those meet.

// TermSlots is the number of owners Terms are dealt among. Raising it would
// change which node owns which Term and must never happen to a running
// cluster. 1024 allows any voter IDs that differ modulo 1024 (node IDs
// given out in sequence always do) and still leaves 2^54 rounds.
const TermSlots = 1024

// ownsTerm reports whether node id owns Term t.
func ownsTerm(id, t uint64) bool { return t%TermSlots == id%TermSlots }

// nextOwnedTerm returns the smallest Term greater than after owned by id.
func nextOwnedTerm(id, after uint64) uint64 {
	t := after - after%TermSlots + id%TermSlots
	if t <= after {
		t += TermSlots
	}
	return t
}
