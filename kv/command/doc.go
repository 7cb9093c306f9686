// Package command is what a raft or paxos range's log carries and how it
// changes the range's data: a Command (put, delete, compare-and-swap, or a
// catalog change of meta), its encoding, its condition, and Apply, which
// decides its effect on the key's current value. It also holds how a
// version is shown to clients (FormatVersion) and how a range's data is
// read in key order (EachData).
//
// It imports kv/catalog, kv/consensus (the log's codec version),
// kv/internal/codec and storage.
//
// Invariants: Apply is deterministic: its result depends only on the
// command, the range, the entry's index and the key's current value, so
// every replica applying the same log holds the same data. A condition is
// checked at apply time, never at proposal.
package command
