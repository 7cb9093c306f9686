// Package toy holds the toy designs of the article's road (lab's first
// scenarios): small and honest implementations of each design the article
// ("Paxos从入门到学会Raft") walks through before the correct ones, each
// broken the way the article says it breaks. (The designs the product
// implements, Basic Paxos, quorum geometries, Multi-Paxos and Raft, run on
// the product's own cores: package lab/cores.) Design 9's naive Raft is a
// toy too: it leaves out, one at a time, the safeguards the product's
// Raft core has.
//
// Every exported function runs one design as a flash sale in the
// deterministic simulator (internal/sim) from a seed and returns its
// [lab.Result]: servers and buyers are simulator nodes, links delay each
// message by 1-10 ms (so messages overtake each other), servers sync their
// disk where the design says they write, and buyers behave as real clients
// do: they time out, ask again or ask another server, and give up after a
// bounded number of tries. The fault that breaks a design is injected by a
// nemesis that draws its timing from the simulator's random source and
// strikes at the moment the design is weak (a crash right after a local
// write, say), so seeds differ and every run replays from its seed. A run
// ends with every fault healed, the replicas given time to settle, a final
// read through the design, and each replica's owner.
package toy
