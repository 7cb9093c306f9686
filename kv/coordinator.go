package kv

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Coordinator runs this node's side of the eventual keyspaces: it
// coordinates the writes, reads and compare-and-swaps that clients send
// here, and serves its replicas' part of the ones other nodes coordinate;
// in the background it replays hints and runs anti-entropy. Its methods
// are safe for concurrent use.
type Coordinator struct {
	store  *store.Store
	db     *storage.DB
	limits catalog.Limits
	// alive says whether gossip sees a catalog node alive.
	alive func(catalog.NodeDescriptor) bool
	peers *transport.Peers
	// catchUpCatalog waits until this node's catalog holds every change
	// committed before the call (the node's catalog barrier).
	catchUpCatalog func(ctx context.Context, what string) error

	// The clock that versions the
	// writes coordinated here, this node's replicas' records, the way to
	// the replicas (net, over recordPeers to the other nodes), and the
	// read repairs in flight.
	clock          *wrn.Clock
	clockGuard     *clockGuard // what this node knows of its own clock (eventual_clock.go)
	records        *records.Store
	net            replicaNet
	recordPeers    recordTransport
	recordStreams  *transport.RecordStreams // recordPeers' streams (recordstream.go)
	replicaTimeout time.Duration
	repairSlots    chan struct{} // a semaphore: one token per repair in flight
	casSeq         atomic.Uint64 // low bits of compare-and-swap proposer IDs (eventual_cas.go)
	rngMu          sync.Mutex
	rng            *rand.Rand // compare-and-swap backoff
	// hints holds writes for replicas that missed them (hints.go).
	hints *hints
	// antiEntropy is the state of the Merkle tree exchanges, and
	// tombstoneGrace how long a tombstone is kept at least
	// (antientropy.go).
	antiEntropy    antiEntropyState
	tombstoneGrace time.Duration
	// loops runs hint replay and anti-entropy in kvd.
	loops backgroundLoops
	// evHooks are the eventual coordinator's test-only canaries and
	// callbacks (eventualHooks); zero in production.
	evHooks eventualHooks
	// inflight counts the goroutines of eventual requests and repairs,
	// for Close.
	inflight sync.WaitGroup
}
