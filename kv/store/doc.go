// Package store runs the replicas of a node's raft and paxos ranges (and
// meta's) on one goroutine, the store loop: each round it ticks the
// ranges, steps the messages that came in, collects every core's Ready,
// sends the leaders' appends, commits all their state in one Pebble batch
// (synced once if any needs it), sends the other messages, applies the
// committed commands and answers
// the waiting proposals and reads. It also owns proposals and their
// waiters (Propose), linearizable read barriers (ReadBarrier), exactly-
// once writes (dedup.go), quiescence of idle ranges, faults that stop one
// range, the catalog that meta's applied log yields, and how each range's
// Raft or Multi-Paxos configuration and meta's follow the catalog
// (rangedriver.go, paxosdriver.go, metadriver.go).
//
// It may import kv/catalog, kv/command, kv/consensus, kv/metrics,
// kv/internal/codec, storage and the protocol cores. It reaches other
// nodes only through the Transport it is given.
//
// Invariants: only the loop's goroutine touches replicas and cores;
// others ask it through Do. A proposal is answered with its result only
// after its entry is applied; when that can no longer be known here (the
// replica stopped leading first), with ErrOutcomeUnknown. A read is
// served only once the replica applied the read's index. A replica's
// state is durable before any message that depends on it is sent.
package store
