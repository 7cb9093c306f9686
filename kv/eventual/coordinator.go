package eventual

import (
	"cmp"
	"context"
	"fmt"
	"math"
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
	Peers *transport.Peers
	// catchUpCatalog waits until this node's catalog holds every change
	// committed before the call (the node's catalog barrier).
	catchUpCatalog func(ctx context.Context, what string) error

	// The clock that versions the
	// writes coordinated here, this node's replicas' records, the way to
	// the replicas (net, over recordPeers to the other nodes), and the
	// read repairs in flight.
	Clock          *wrn.Clock
	clockGuard     *clockGuard // what this node knows of its own clock (eventual_clock.go)
	Records        *records.Store
	net            ReplicaNet
	RecordPeers    RecordTransport
	recordStreams  *transport.RecordStreams // recordPeers' streams (kv/transport/recordstream.go)
	replicaTimeout time.Duration
	repairSlots    chan struct{} // a semaphore: one token per repair in flight
	casSeq         atomic.Uint64 // low bits of compare-and-swap proposer IDs (eventual_cas.go)
	rngMu          sync.Mutex
	rng            *rand.Rand // compare-and-swap backoff
	// Hints holds writes for replicas that missed them (hints.go).
	Hints *records.Hints
	// antiEntropy is the state of the Merkle tree exchanges, and
	// tombstoneGrace how long a tombstone is kept at least
	// (antientropy.go).
	antiEntropy antiEntropyState
	// fill is what this node knows of its filling replicas (fill.go).
	fill fillState
	// split is what this node knows of the sweeps of its split ranges
	// (split.go).
	split          splitState
	tombstoneGrace time.Duration
	// Loops runs hint replay and anti-entropy in kvd.
	Loops backgroundLoops
	// evHooks are the eventual coordinator's test-only canaries and
	// callbacks (Hooks); zero in production.
	evHooks Hooks
	// Inflight counts the goroutines of eventual requests and repairs,
	// for Close.
	Inflight sync.WaitGroup
}

// Config configures a Coordinator: NodeConfig's fields of the
// same names, with the node's peers and catalog barrier.
type Config struct {
	Limits         catalog.Limits
	Alive          func(catalog.NodeDescriptor) bool
	Peers          *transport.Peers
	CatchUpCatalog func(ctx context.Context, what string) error
	PhysicalClock  func() int64
	// Monotonic reads a monotonic clock for the clock guard
	// (eventual_clock.go); nil reads Go's. The simulator sets it.
	Monotonic                                      func() time.Duration
	ReplicaTimeout                                 time.Duration
	MaxReadRepairs                                 int
	MaxHints                                       int
	MaxHintBytes                                   int64
	MaxHintAge, HintReplayInterval, TombstoneGrace time.Duration
	Seed                                           uint64
	// Hooks are test-only canaries and callbacks; zero in production.
	Hooks Hooks
	// Net reaches the replicas; nil means one goroutine per request.
	Net ReplicaNet
}

// Net is the coordinator's ReplicaNet, for the node's other calls to
// replicas (the placement driver's LetGo).
func (c *Coordinator) Net() ReplicaNet { return c.net }

// Streams are the node's Records streams to the other nodes, which also
// carry its forwarded KV requests (kv/forward.go).
func (c *Coordinator) Streams() *transport.RecordStreams { return c.recordStreams }

// New starts the coordinator of the store's eventual
// keyspaces, filling in cfg's defaults. It replays no hints and runs no
// anti-entropy until asked to.
func New(st *store.Store, cfg Config) (*Coordinator, error) {
	if cfg.PhysicalClock == nil {
		cfg.PhysicalClock = func() int64 { return time.Now().UnixNano() }
	}
	cfg.ReplicaTimeout = cmp.Or(cfg.ReplicaTimeout, DefaultReplicaTimeout)
	cfg.MaxReadRepairs = cmp.Or(cfg.MaxReadRepairs, DefaultMaxReadRepairs)
	cfg.MaxHints = cmp.Or(cfg.MaxHints, records.DefaultMaxHints)
	cfg.MaxHintBytes = cmp.Or(cfg.MaxHintBytes, records.DefaultMaxHintBytes)
	cfg.MaxHintAge = cmp.Or(cfg.MaxHintAge, records.DefaultMaxHintAge)
	cfg.HintReplayInterval = cmp.Or(cfg.HintReplayInterval, records.DefaultHintReplayInterval)
	if cfg.TombstoneGrace == 0 {
		cfg.TombstoneGrace = cfg.MaxHintAge + min(tombstoneGraceMargin, math.MaxInt64-cfg.MaxHintAge) // no overflow
	}
	if least := cfg.MaxHintAge + cfg.ReplicaTimeout + 2*clockMaxOffset; cfg.TombstoneGrace <= least {
		return nil, fmt.Errorf("%w: tombstone grace %v must exceed the hint window %v plus the replica timeout %v "+
			"plus twice the largest clock offset %v (%v), or purged tombstones could let deleted values come back",
			catalog.ErrInvalidArgument, cfg.TombstoneGrace, cfg.MaxHintAge, cfg.ReplicaTimeout, clockMaxOffset, least)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	hs, err := records.NewHints(st.DB, records.HintsConfig{PhysicalClock: cfg.PhysicalClock, MaxHints: cfg.MaxHints, MaxHintBytes: cfg.MaxHintBytes,
		MaxHintAge: cfg.MaxHintAge, HintReplayInterval: cfg.HintReplayInterval}, st.Config.Metrics)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{store: st, db: st.DB, limits: cfg.Limits, alive: cfg.Alive, Peers: cfg.Peers, catchUpCatalog: cfg.CatchUpCatalog,
		Clock: wrn.NewClock(cfg.PhysicalClock, clockMaxOffset), clockGuard: NewClockGuard(cfg.PhysicalClock, cfg.Monotonic),
		Records: records.NewStore(st.DB), evHooks: cfg.Hooks,
		replicaTimeout: cfg.ReplicaTimeout, repairSlots: make(chan struct{}, cfg.MaxReadRepairs), Hints: hs,
		tombstoneGrace: cfg.TombstoneGrace, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))}
	c.Records.StaleUnsynced = cfg.Hooks.StaleUnsynced
	c.recordStreams = transport.NewRecordStreams(c.Peers)
	c.RecordPeers = transport.RecordClient{NodeAddr: st.NodeAddr, Peers: c.Peers, Streams: c.recordStreams}
	c.net = cfg.Net
	if c.net == nil {
		c.net = goNet{c}
	}
	c.casSeq.Store(c.rng.Uint64())
	c.antiEntropy.mu.handedOff = map[uint64]bool{}
	c.fill.filled = map[uint64]bool{}
	return c, nil
}
