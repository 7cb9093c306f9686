// Package consensus runs one range's consensus group on Pebble, behind one
// interface, Core, that the store drives: RaftCore runs Raft (meta and
// raft keyspaces), PaxosCore runs Multi-Paxos (paxos keyspaces). It owns
// the peer messages (PeerMessage and their codec), the logs and hard
// states on Pebble (RaftLog, PaxosLog), building and installing
// snapshots, log compaction, and the faults that stop one range (Fault).
//
// It may import kv/catalog, kv/internal/codec, storage, and the protocol
// cores raft, paxos and quorum. What it needs from the store that runs it
// comes in a Host; it never calls back into the store.
//
// Invariants: only the store's goroutine calls a Core. A Core's state and
// entries reach the batch the store commits (Persist) before its messages
// are sent, and the batch is synced when the Ready says so (MustSync): no
// vote or acknowledgement leaves the node before it is durable. A round
// that does not wait for its sync (AsyncCore) holds them until it is,
// and a leader counts its own copy of entries only then (Synced). A log is
// truncated only up to an index whose effects are committed in Pebble.
package consensus
