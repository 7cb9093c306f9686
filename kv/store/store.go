package store

import (
	"cmp"
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/kv/identity"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// StoreConfig configures a Store. Zero fields take the defaults of
// EnsureDefaults.
type StoreConfig struct {
	// TickInterval is the length of one Raft tick. Elections time out
	// after Raft.ElectionTicks ticks, leaders heartbeat every
	// Raft.HeartbeatTicks. Shorter finds a dead leader sooner and costs
	// more idle CPU and messages per range.
	TickInterval time.Duration
	// Raft tunes every Raft range's core (ID, Storage, Applied, Logger and
	// Rand are set per range). Zero fields take raft's defaults.
	Raft raft.Config
	// Paxos tunes every paxos range's core (ID, Applied and Rand are set
	// per range). Zero fields take paxos's defaults; MaxOpenSlots must be
	// the same on every node.
	Paxos paxos.Config
	// LogTruncateEntries: a range's log is truncated once it holds more
	// than LogTruncateEntries+LogKeepEntries applied entries, down to
	// LogKeepEntries. Higher keeps more history for slow followers (who
	// otherwise need a snapshot) at the price of disk.
	LogTruncateEntries uint64
	LogKeepEntries     uint64
	// LogTruncateBytes and LogKeepBytes do the same by the size of the
	// entries: a raft log is also truncated once its applied entries
	// weigh more than LogTruncateBytes+LogKeepBytes, and keeps at most
	// LogKeepBytes of them (CockroachDB truncates at 16 MiB as well); a
	// paxos log is compacted once that many bytes were applied since its
	// last compaction (counted from a restart).
	LogTruncateBytes uint64
	LogKeepBytes     uint64
	// Snapshots stream in chunks (snapshot.go); these bound a transfer.
	//
	// SnapshotChunkBytes is about how many bytes of records one chunk
	// carries (a chunk ends with the record that reaches it). Each side of
	// a transfer holds about one chunk in memory, and one chunk is in
	// flight per transfer, so a transfer moves at most a chunk per round
	// trip: lower costs throughput on a slow link (1 MiB per 50 ms round
	// trip is 20 MiB/s), higher costs memory per transfer and more bytes
	// sent again when a transfer fails.
	SnapshotChunkBytes int
	// MaxSnapshotSends bounds the transfers this node serves at once; a
	// receiver over it is told to try later. Each costs a reader of the
	// disk and a chunk of memory; too low makes new replicas wait behind
	// each other, too high lets catching-up replicas crowd out the
	// node's own work.
	MaxSnapshotSends int
	// MaxSnapshotFetches bounds the transfers this node receives at once,
	// each writing a staged file on disk; the other ranges that need a
	// snapshot wait (their leaders send it again).
	MaxSnapshotFetches int
	// SnapshotHoldTicks: a held snapshot (an open Pebble snapshot, which
	// keeps every version it sees from being compacted away, so costs
	// disk while the node is written) is closed when nobody has read it
	// for this many ticks, and a transfer idle for as long is dropped.
	// Too low drops snapshots a receiver was about to pull (it pulls a
	// newer one); too high keeps old versions on disk longer.
	SnapshotHoldTicks int64
	// SnapshotFetchTimeoutTicks: a chunk not answered within this many
	// ticks is asked for again, and after chunkAttempts asks its transfer
	// fails. Too low asks again (and fails transfers) on a slow disk or
	// link; too high leaves a replica behind longer when a request or an
	// answer was lost, or a sender died.
	SnapshotFetchTimeoutTicks int64
	// SnapshotRetryTicks: after a transfer of a range failed, no other
	// starts for this many ticks, so that a bad sender is not asked again
	// at once.
	SnapshotRetryTicks int64
	// MaxSnapshotBytes is a sanity bound on one snapshot's records, not a
	// limit on ranges: a transfer that sends more is refused as a bad
	// stream. It only stops a sender that would fill the receiver's disk.
	MaxSnapshotBytes int
	// SnapshotHook, if set, is called on the store's goroutine at the
	// steps of a snapshot's arrival and install ("chunk" after each chunk
	// is written, "staged" once the file is synced, "before-ingest" once
	// the round's batch holds the new log state and the marker,
	// "after-ingest"), so that tests can crash there.
	SnapshotHook func(step string)
	// SplitHook, if set, is called at the steps of a split's apply
	// (splitjob.go), so that tests can crash or wait there: on the store's
	// goroutine, "committed" once the entries before it are committed,
	// "staged" once its file is synced, before the ingest, and "ingested"
	// after it; on the split's own goroutine, "writing" before it writes
	// the file (the loop goes on meanwhile).
	SplitHook func(step string)
	// SyncHook, if set, is called in each round that sent messages
	// before its batch was synced (consensus.Ready.Eager), between the
	// send and the sync, so that tests can crash there.
	SyncHook func()
	// WaitForSyncs makes every round wait in the loop for its WAL sync,
	// as the store did before rounds could go on without (syncs.go).
	WaitForSyncs bool
	// StartSync, for a driven store (OpenDriven), lets rounds go on
	// without their sync: it is called, on the loop, when a sync should
	// start, and the caller calls Store.FinishSync later on the loop.
	// Without it a driven store's rounds wait for their syncs.
	StartSync func()
	// NoLeaderBalancing switches leadership balancing off (leaders.go): a
	// range's leadership then moves only by elections and drains. Tests
	// that hand proposals straight to a range's leader set it, since a
	// range refuses proposals while its leadership moves.
	NoLeaderBalancing bool
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
	// Seed seeds election jitter; 0 picks a random seed.
	Seed uint64
	// Metrics receives the store's metrics; nil means unregistered ones.
	Metrics *metrics.Metrics
	// DefaultGrowTo is the N the default keyspace, founded with one
	// replica, grows to once that many nodes are alive
	// (KeyspaceDescriptor.GrowTo); 0 keeps it at one. kvd sets 3.
	DefaultGrowTo int
	// AuthAtBootstrap: a store that founds a cluster founds it with
	// authentication on (catalog.AuthOp.Enable), as a node with TLS does
	// (kvd --certs-dir): its clients must log in from the first request,
	// root with its client certificate.
	AuthAtBootstrap bool
	// Advertised returns the address that the live node of a UUID
	// advertises now (gossip), if it is known. A node's address in the
	// catalog is the one it had when it last announced itself; after it
	// moved (a restart at another port or host) the catalog learns the new
	// one only through meta, and meta may need that very node to elect a
	// leader. nil means the catalog's addresses only.
	Advertised func(uuid string) (string, bool)
	// Self describes this node (name, address, zone, weight) for the
	// catalog; its ID is assigned by the cluster, and its UUID and the
	// hash of its secret come from the identity in its data dir.
	Self catalog.NodeDescriptor
	// Clock reads physical time in Unix nanoseconds, for the stamps of the
	// commands proposed here (request dedup, dedup.go); nil reads the
	// system clock.
	Clock func() int64
	// DedupWindow is how long the ranges led here keep the answers of
	// writes with an idempotency key (DefaultDedupWindow if 0).
	DedupWindow time.Duration

	// RangeMaxBytes: a raft or paxos range whose data grows past this
	// many bytes (keys and values) splits in two (split.go), and so does
	// an eventual range whose records on its deciding replica do
	// (kv/eventual/split.go);
	// DefaultRangeMaxBytes if 0. Lower makes more, smaller ranges: more groups to tick, elect and
	// quiesce, cheaper snapshots and moves. Higher makes each split write
	// more at once: a split writes the whole range into one ingested
	// sstable, with constant memory and off the store's goroutine, but the
	// range's apply (its writes' answers, its reads) waits for it (about
	// 2 s per GiB at 500 MiB/s of disk), and a new replica's snapshot
	// sends the whole range.
	RangeMaxBytes int64
	// MergeBelowBytes: two neighbouring raft ranges whose data sums to
	// less merge (merge.go); 0 means RangeMaxBytes/4, negative switches
	// merges off. Well below RangeMaxBytes, so that a merged range does
	// not split again at once; higher merges more, each merge costing the
	// right range a pause of its writes (a second or two).
	MergeBelowBytes int64

	// Canary plants a bug for the tests that must catch it (canary.go).
	Canary Canary
	// OnApply, if set, sees every command a replica applies with an
	// idempotency key: fresh says it took effect (not a repeat answered
	// from the range's dedup state). Tests check exactly-once with it.
	OnApply func(rangeID, index uint64, idem []byte, fresh bool)
}

// EnsureDefaults fills zero fields.
func (c *StoreConfig) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.LogTruncateEntries == 0 {
		c.LogTruncateEntries = 10000
	}
	if c.LogKeepEntries == 0 {
		c.LogKeepEntries = 1000
	}
	if c.LogTruncateBytes == 0 {
		c.LogTruncateBytes = 16 << 20
	}
	if c.LogKeepBytes == 0 {
		c.LogKeepBytes = 4 << 20
	}
	// 1 MiB, as CockroachDB's snapshot batches: a few ms of disk and of a
	// LAN per chunk, small beside a node's memory.
	if c.SnapshotChunkBytes == 0 {
		c.SnapshotChunkBytes = 1 << 20
	}
	// A few at once: enough to refill a replaced node's ranges in
	// parallel, few enough not to saturate the sender's disk.
	if c.MaxSnapshotSends == 0 {
		c.MaxSnapshotSends = 4
	}
	if c.MaxSnapshotFetches == 0 {
		c.MaxSnapshotFetches = 2
	}
	// 1 min at the default tick: a receiver pulls within a round trip of
	// the message that names the snapshot, or after a busy sender lets it.
	if c.SnapshotHoldTicks == 0 {
		c.SnapshotHoldTicks = 600
	}
	// 10 s for one chunk of 1 MiB is a link of 100 KiB/s.
	if c.SnapshotFetchTimeoutTicks == 0 {
		c.SnapshotFetchTimeoutTicks = 100
	}
	if c.SnapshotRetryTicks == 0 {
		c.SnapshotRetryTicks = 20
	}
	// 64 GiB: far above any range this version splits into (kvd allows
	// 8 GiB at most), far below a disk.
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = 64 << 30
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewMetrics(nil)
	}
	if c.Clock == nil {
		c.Clock = func() int64 { return time.Now().UnixNano() }
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.RangeMaxBytes == 0 {
		c.RangeMaxBytes = DefaultRangeMaxBytes
	}
}

// Transport carries consensus messages to other nodes, and the chunks of
// snapshot transfers. The store calls Send from its goroutine after
// persisting; it must not block.
type Transport interface {
	Send(rangeID uint64, m consensus.PeerMessage)
	// Learn records where a peer that sent messages can be reached.
	Learn(nodeID uint64, addr string)
	SnapshotFetcher
}

// Store runs every replica this node holds, in one goroutine: each round
// it collects the Ready of every replica that has one, sends the appends
// of its leaders (consensus.Ready.Eager), writes all their entries and
// hard states in one Pebble batch with at most one WAL sync (so syncs per
// second do not grow with the number of ranges), sends their other
// messages, applies their committed entries in one more batch, and
// advances them.
type Store struct {
	Config StoreConfig
	DB     *storage.DB
	nodeID uint64

	// Identity is this node's, from its data dir (identity.Open).
	Identity identity.Identity

	Logger *slog.Logger
	// raftLogger takes the cores' logs one level down: a core's Info
	// (became follower, became leader) is routine for a node with
	// thousands of ranges.
	raftLogger *slog.Logger
	transport  Transport

	work chan func()
	// incoming carries consensus messages from peers. Buffered, because
	// the transport must never block on a busy store: when it is full the
	// message is dropped, which Raft and Multi-Paxos tolerate (they retry).
	incoming chan Inbound
	// readsToIssue are the replicas with batched reads (issueReads).
	readsToIssue []*replica
	// again wakes the loop for another round at once (capacity 1): a
	// replica that advanced has more ready, such as the commit of an
	// entry that its own append just acknowledged (a range of one voter),
	// which would otherwise wait for the next event, a tick at worst.
	again chan struct{}
	stop  chan struct{}
	done  chan struct{}
	// syncs are the rounds that did not wait for their sync (syncs.go).
	syncs syncState

	// catalog is the latest applied catalog, published for readers.
	published atomic.Pointer[CatalogView]
	// transportForPeers is the transport, for the peer service's goroutines.
	transportForPeers atomic.Pointer[Transport]

	// Owned by the loop goroutine.
	rng *rand.Rand
	// draining: see SetDraining.
	draining atomic.Bool
	// mergesOn: EnableMerges was called (merge.go).
	mergesOn atomic.Bool
	// invalidLogged is when stepReplica last warned of an invalid peer
	// message (invalidLogEvery). Loop only.
	invalidLogged time.Time
	// deadForGood: see SetDeadForGood.
	deadForGood atomic.Pointer[func(uint64) bool]
	// members: see publishMembers.
	members atomic.Pointer[rangeMembers]
	// preferred and drainingPeers are leadership balancing's bookkeeping
	// (leaders.go): each range's preferred leader, and the peers whose last
	// beacon said they are draining.
	preferred     map[uint64]uint64
	drainingPeers map[uint64]bool
	// host is what every range's core is given (coreHost).
	host           *consensus.Host
	Replicas       map[uint64]*replica
	cat            *catalog.Catalog
	catalogChanged bool
	catalogReload  bool
	// requestEpoch starts this incarnation's request IDs at a random
	// point (see requestID); nextRequest counts from it.
	requestEpoch uint64
	NextRequest  uint64
	Quiesce      quiesceState
	// heard publishes Quiesce.heard to the API (silent.go).
	heard heardState
	// clock keeps the loop's ticks in step with time (clock.go).
	clock clockState
	// sizesHeld is how many keys the replicas' size caches hold
	// (sizecache.go), recounted on every tick.
	sizesHeld int
	// ordered caches sortedReplicas; nil when the replicas changed.
	ordered []*replica
	// heldEventual are the eventual ranges held here at the last
	// reconcile (dropEventual).
	heldEventual map[uint64]bool
	// born are the replicas a split started here that the catalog does
	// not list yet (split.go): reconcile keeps them.
	born map[uint64]bool
	// merges is the merge driver's state (merge.go).
	merges mergeState
	// Failed are the replicas a fault of their own range stopped
	// (rangefault.go), by range: not in replicas, kept for their status.
	Failed map[uint64]*failedReplica
	// Canary plants bugs for the tests (rangefault.go); always zero in
	// production.
	Canary FaultCanaries
	// snap holds the snapshots this node serves and the transfers it
	// receives (snapshot.go).
	snap snapState
	// splits are the splits whose file is being written (splitjob.go).
	splits splitJobs
	// driven: no goroutine of the store's own runs the loop (OpenDriven);
	// HandleReady then waits for the splits in flight (splitjob.go).
	driven bool

	errMu struct {
		sync.Mutex
		err error
	}
}

// Errors of the store, mapped by the API to Connect codes.
var (
	// ErrNotLeader: this replica cannot serve; Leader names the node that
	// can, if known. Maps to Unavailable (nothing was proposed).
	ErrNotLeader = errors.New("not the leader")
	// ErrStopped: the store is shutting down. Maps to Unavailable.
	ErrStopped = errors.New("kv: store stopped")
	// ErrUnavailable: the range cannot serve now (no quorum, proposal
	// dropped); nothing was written.
	ErrUnavailable = errors.New("unavailable")
	// ErrOutcomeUnknown: a write was proposed but its client cannot be
	// told whether it was applied (the node is stopping). Maps to Unknown;
	// never retried blindly.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// NotLeaderError is ErrNotLeader with the leader's ID (0 if unknown).
type NotLeaderError struct {
	RangeID uint64
	Leader  uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return fmt.Sprintf("range %d has no leader (an election is in progress)", e.RangeID)
	}
	return fmt.Sprintf("range %d: node %d is the leader", e.RangeID, e.Leader)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

func (e *NotLeaderError) LeaderOr0() uint64 {
	if e == nil {
		return 0
	}
	return e.Leader
}

// OpenStore opens the node's store and starts its goroutine. The data
// dir's identity must be cfg.Self.Name's (identity.Open, which also
// chooses one in a new data dir). A database without a node ID is a new
// node: with bootstrap set it founds a new cluster (node 1, holding meta
// and the default keyspace); otherwise it must have joined one first
// (SaveJoin).
func OpenStore(db *storage.DB, cfg StoreConfig, transport Transport, bootstrap bool) (*Store, error) {
	s, err := open(db, cfg, transport, bootstrap, false /* driven */)
	if err != nil {
		return nil, err
	}
	go s.runSyncer()
	go s.run()
	return s, nil
}

// OpenDriven is OpenStore without the goroutine. Its caller becomes the
// store's goroutine: it calls the loop's own functions, one at a time, as
// run does (tick on every TickInterval; step for a peer's message;
// Store.StartPropose and Store.StartRead for clients; then Store.HandleReady once per
// wake-up), and never the methods that wait for the goroutine (do,
// Propose, ReadBarrier, Close, SetTransport, RangeStatuses), which would
// block forever. The simulator drives whole nodes this way, on virtual
// time and from one seed (kv/sim_test.go).
//
// A split's file is written on a goroutine of its own all the same, but
// each HandleReady first waits for the ones in flight, so that a
// simulation replays exactly (splitjob.go).
func OpenDriven(db *storage.DB, cfg StoreConfig, transport Transport, bootstrap bool) (*Store, error) {
	return open(db, cfg, transport, bootstrap, true /* driven */)
}

// open opens the store; driven says whether its caller is its loop
// (OpenDriven) or its own goroutine will be (OpenStore).
func open(db *storage.DB, cfg StoreConfig, transport Transport, bootstrap, driven bool) (*Store, error) {
	cfg.EnsureDefaults()
	if cfg.Self.Name == "" {
		return nil, errors.New("kv: StoreConfig.Self.Name (the node's --node-id) is required")
	}
	s := &Store{
		Config: cfg, DB: db, Logger: cfg.Logger, raftLogger: slog.New(demoted{cfg.Logger.Handler()}), transport: transport,
		work: make(chan func()), incoming: make(chan Inbound, incomingQueue), again: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1)),
		Replicas: map[uint64]*replica{},
		Failed:   map[uint64]*failedReplica{},
		born:     map[uint64]bool{},
		cat:      catalog.NewCatalog(),
		driven:   driven,
	}
	if !driven {
		// The syncer starts with the loop (OpenStore); a round of the
		// opening may ask it for a sync already.
		s.syncs.req, s.syncs.done, s.syncs.exited = make(chan struct{}, 1), make(chan error, 1), make(chan struct{})
	}
	s.Quiesce.init()
	s.drainingPeers = map[uint64]bool{}
	s.requestEpoch = s.rng.Uint64()
	ident, err := identity.Open(db, cfg.Self.Name)
	if err != nil {
		return nil, err
	}
	s.Identity = ident
	s.Config.Self.UUID, s.Config.Self.SecretHash = ident.UUID, ident.SecretHash()
	id := ident.NodeID
	if id == 0 {
		if !bootstrap {
			return nil, errors.New("kv: this node belongs to no cluster: found one (no --join) or join one first")
		}
		if id, err = s.bootstrap(); err != nil {
			return nil, err
		}
	}
	s.nodeID = id
	s.initSnapshots()
	s.initSplits()
	s.driven = driven
	if err := s.recoverInstalls(); err != nil {
		return nil, err
	}
	if err := s.loadCatalog(); err != nil {
		return nil, err
	}
	if err := s.findWaiting(); err != nil {
		return nil, err
	}
	meta, err := newReplica(s, s.metaDescriptor())
	if err != nil {
		return nil, err
	}
	s.Replicas[catalog.MetaRangeID] = meta
	s.ordered = nil
	meta.Core.CampaignAtStart(s.nodeID, false)
	if err := s.reconcile(); err != nil {
		return nil, err
	}
	// Apply what meta's log already commits (the catalog a founding node
	// just wrote, or what a restarted node had not applied), so the store
	// serves its keyspaces from the start. A few rounds suffice: a lone
	// voter elects itself and commits in one.
	for range 8 {
		if !meta.Core.HasReady() {
			break
		}
		if err := s.HandleReady(); err != nil {
			s.stopSplits()
			return nil, err
		}
	}
	return s, nil
}

// NodeID is this node's ID in the cluster.
func (s *Store) NodeID() uint64 { return s.nodeID }

// ClusterID is the ID the cluster got when it was founded. It is read
// from the data dir when the store opens (a member's) or set when it
// founds the cluster, and never changes.
func (s *Store) ClusterID() string { return s.Identity.ClusterID }

// metaDescriptor is meta's range descriptor. Meta's replica set is its
// Raft configuration; the descriptor only starts it.
func (s *Store) metaDescriptor() *catalog.RangeDescriptor {
	return &catalog.RangeDescriptor{
		ID: catalog.MetaRangeID, Keyspace: catalog.MetaKeyspace, Span: catalog.Span{}, Geometry: "majority", Mode: catalog.ModeRaft,
		Replicas: []catalog.ReplicaDescriptor{{NodeID: s.nodeID}},
	}
}

// bootstrap founds a cluster: node ID 1 and meta with this node as its
// only voter, whose log holds, after the founding configuration, the
// catalog's first commands: this node, the default keyspace (raft, N=1,
// 8 ranges), and with AuthAtBootstrap, auth on. They are applied like any later command, so a
// node that joins later replays them from the log. One synced batch, so a
// crash leaves all or nothing.
func (s *Store) bootstrap() (uint64, error) {
	const id = 1
	s.nodeID = id
	log, err := consensus.LoadRaftLog(s.DB, catalog.MetaRangeID)
	if err != nil {
		return 0, err
	}
	hs, ents, err := raft.BootstrapState(consensus.ConfStateOf(s.metaDescriptor()))
	if err != nil {
		return 0, err
	}
	self := s.Config.Self
	def := catalog.KeyspaceDescriptor{Name: "default", Mode: catalog.ModeRaft, Replicas: 1, Ranges: catalog.DefaultRanges, GrowTo: s.Config.DefaultGrowTo}
	if err := def.Normalize(); err != nil {
		return 0, err
	}
	replicas := make([][]catalog.ReplicaDescriptor, def.Ranges)
	for i := range replicas {
		replicas[i] = []catalog.ReplicaDescriptor{{NodeID: id, Zone: self.Zone, Weight: self.Weight}}
	}
	ops := []catalog.CatalogOp{{AddNode: &self}, {Create: &def, Replicas: replicas}}
	if s.Config.AuthAtBootstrap {
		key := make([]byte, catalog.TokenKeyBytes)
		if _, err := cryptorand.Read(key); err != nil {
			return 0, err
		}
		ops = append(ops, catalog.CatalogOp{Auth: &catalog.AuthOp{Enable: &catalog.AuthSettings{TokenKey: key}}})
	}
	for _, op := range ops {
		cmd := command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(op)}
		ents = append(ents, raft.Entry{Term: hs.Term, Index: uint64(len(ents) + 1), Type: raft.EntryNormal, Data: cmd.Encode()})
	}
	hs.Commit = uint64(len(ents))

	b := s.DB.NewBatch()
	defer b.Close()
	var idb [8]byte
	binary.BigEndian.PutUint64(idb[:], id)
	clusterID := fmt.Sprintf("%016x", s.rng.Uint64())
	err = errors.Join(
		b.Set(storage.NodeIDKey(), idb[:]),
		b.Set(storage.ClusterIDKey(), []byte(clusterID)),
		log.Append(b, ents),
		log.SetHardState(b, hs),
		// Entry 1 is the configuration alone; the catalog commands after
		// it are applied when the store starts.
		b.Set(storage.AppliedStateKey(catalog.MetaRangeID), consensus.AppliedState(1)),
	)
	if err != nil {
		return 0, err
	}
	if err := b.Commit(true); err != nil {
		return 0, err
	}
	s.Identity.NodeID, s.Identity.ClusterID = id, clusterID
	s.Logger.Info("founded a new cluster", "cluster", clusterID, "node-id", id)
	return id, nil
}

// loadCatalog reads meta's data into the catalog.
func (s *Store) loadCatalog() error {
	err := command.EachData(s.DB, catalog.MetaRangeID, nil, nil, func(key, raw []byte) (bool, error) {
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, err
		}
		return true, s.cat.Load(key, v.Data)
	})
	if err != nil {
		return err
	}
	s.publish()
	return nil
}

// reconcile makes the replicas this node runs match the catalog: it
// starts replicas of ranges assigned here and removes those of ranges
// that are gone, with their data. A replica that cannot be opened because
// of its own range's state (openFault) starts failed; the others start.
func (s *Store) reconcile() error {
	// In ID order: each new replica draws its core's seed from s.rng.
	for _, id := range slices.Sorted(maps.Keys(s.cat.Ranges)) {
		desc := s.cat.Ranges[id]
		delete(s.born, desc.ID) // the catalog has it now
		if r, ok := s.Replicas[desc.ID]; ok {
			r.desc = desc // a move or a split gave the range a new descriptor
			continue
		}
		if !desc.Holds(s.nodeID) {
			continue
		}
		if _, ok := s.Failed[desc.ID]; ok {
			continue // stopped here until the node restarts
		}
		if desc.Mode == catalog.ModeEventual {
			continue // no consensus group: eventual ranges are served by coordinators
		}
		if s.founding(desc.ID) {
			continue // a split here writes its state, and starts it once ingested
		}
		r, err := newReplica(s, desc)
		if err != nil && openFault(err) && !s.Canary.FaultStopsStore {
			s.startFailed(desc, err)
			continue
		}
		if err != nil {
			return err
		}
		s.Replicas[desc.ID] = r
		s.ordered = nil
		r.Core.CampaignAtStart(s.nodeID, desc.Replicas[0].NodeID == s.nodeID)
		s.Logger.Debug("started replica", "range", desc.ID, "keyspace", desc.Keyspace)
	}
	for _, id := range slices.Sorted(maps.Keys(s.Replicas)) {
		r := s.Replicas[id]
		if id == catalog.MetaRangeID {
			continue
		}
		desc, ok := s.cat.Ranges[id]
		_, keyspace := s.cat.Keyspaces[r.desc.Keyspace]
		switch {
		case ok && desc.Holds(s.nodeID):
			continue // a leaving replica runs until its range lets it go
		case !ok && s.born[id] && keyspace:
			continue // born of a split that meta does not have yet
		case !ok && s.keepSubsumed(r):
			continue // merged in the catalog, not yet here (merge.go)
		case !ok && s.born[id]:
			delete(s.born, id)
			r.failAll(fmt.Errorf("%w: range %d was removed", catalog.ErrNoKeyspace, id))
		case ok:
			// The range lives on elsewhere: its requests may be retried there.
			r.failAll(&NotLeaderError{RangeID: id})
		case keyspace:
			// The keyspace lives on and the range does not (merged away):
			// its keys are in another range now.
			r.failAll(fmt.Errorf("%w: range %d is no longer in the catalog (merged into another)", ErrKeyMoved, id))
		default:
			r.failAll(fmt.Errorf("%w: range %d was removed", catalog.ErrNoKeyspace, id))
		}
		s.cancelSplit(r, "the replica was removed")
		// A round that collected its Ready drops it (Store.running).
		delete(s.Replicas, id)
		s.ordered = nil
		var err error
		if !ok && keyspace && r.split.subsumedInto != 0 {
			// Merged away: its tombstone stays, as a merge applied here
			// leaves it (mergedaway.go).
			err = s.clearMerged(id, r.split)
		} else {
			err = s.destroyReplica(id)
		}
		if err != nil {
			return err
		}
		s.Logger.Info("removed replica", "range", id, "keyspace", r.desc.Keyspace)
	}
	if err := s.dropTaken(); err != nil {
		return err
	}
	if err := s.dropFailed(); err != nil {
		return err
	}
	if err := s.dropEventual(); err != nil {
		return err
	}
	s.publish()
	return nil
}

// dropEventual deletes the data of the eventual ranges this node held at
// the last reconcile and holds no more (their keyspace was dropped, or
// their replica here left). Eventual ranges run no consensus group, so
// the loop above does not see them go. A node that was down when its
// replica left keeps that range's data until it is deleted by hand: it
// never learns it held it.
func (s *Store) dropEventual() error {
	held := map[uint64]bool{}
	for id, desc := range s.cat.Ranges {
		if desc.Mode == catalog.ModeEventual && desc.Holds(s.nodeID) {
			held[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.heldEventual)) {
		if held[id] {
			continue
		}
		if err := s.destroyReplica(id); err != nil {
			return err
		}
		s.Logger.Info("removed eventual replica", "range", id)
	}
	s.heldEventual = held
	return nil
}

func (s *Store) destroyReplica(id uint64) error {
	b := s.DB.NewBatch()
	defer b.Close()
	for _, span := range storage.ReplicaSpans(id) {
		if err := b.DeleteRange(span.Start, span.End); err != nil {
			return err
		}
	}
	return b.Commit(false)
}

// demoted is a slog.Handler that logs Info records at Debug.
type demoted struct{ slog.Handler }

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return d.Handler.Enabled(ctx, l)
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return d.Handler.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.Handler.WithAttrs(as)} }
func (d demoted) WithGroup(g string) slog.Handler       { return demoted{d.Handler.WithGroup(g)} }

// sortedReplicas returns the replicas in range order, for the rounds that
// must visit them deterministically. The slice is kept until the set of
// replicas changes (every round walks it, so it is not rebuilt each time);
// callers must not modify it.
func (s *Store) sortedReplicas() []*replica {
	if s.ordered != nil {
		return s.ordered
	}
	ids := make([]uint64, 0, len(s.Replicas))
	for id := range s.Replicas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	s.ordered = make([]*replica, len(ids))
	for i, id := range ids {
		s.ordered[i] = s.Replicas[id]
	}
	return s.ordered
}

// Close stops the store's goroutine and answers every waiting client.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	if s.syncs.exited != nil {
		<-s.syncs.exited // done with the database too
	}
	return s.Err()
}

// Err returns the error that stopped the store, if any.
func (s *Store) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.errMu.err
}

// Do runs fn on the store's goroutine and waits until it has run.
func (s *Store) Do(ctx context.Context, fn func()) error {
	ran := make(chan struct{})
	select {
	case s.work <- func() { fn(); close(ran) }:
	case <-s.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ran:
		return nil
	case <-s.done:
		return ErrStopped
	}
}

// Inbound is a consensus message for one of this node's replicas.
type Inbound struct {
	RangeID uint64
	Msg     consensus.PeerMessage
	// Unreachable, if not 0, says instead that the transport dropped
	// messages of the range to this node (ReportUnreachable).
	Unreachable uint64
}

// incomingQueue bounds the peer messages waiting for the store: enough
// for a few rounds of heartbeats and appends of a few thousand ranges.
const incomingQueue = 4096

// Step hands a peer's message to the range's replica. It never blocks;
// it reports false when the message was dropped because the store is
// behind.
func (s *Store) Step(rangeID uint64, m consensus.PeerMessage) bool {
	select {
	case s.incoming <- Inbound{RangeID: rangeID, Msg: m}:
		return true
	default:
		return false
	}
}

// ReportUnreachable tells the store that the transport dropped messages
// of range rangeID to node to, so that a Raft leader probes that follower
// at once instead of after an election timeout. It never blocks: a
// report that finds the queue full is lost, and the stall check finds the
// follower later.
func (s *Store) ReportUnreachable(rangeID, to uint64) {
	select {
	case s.incoming <- Inbound{RangeID: rangeID, Unreachable: to}:
	default:
	}
}

func (s *Store) StepInbound(in Inbound) {
	if in.Unreachable != 0 {
		if r, ok := s.Replicas[in.RangeID]; ok {
			r.Core.ReportUnreachable(in.Unreachable)
		}
		return
	}
	if from := in.Msg.From(); !s.heardThisTick(from) {
		s.Quiesce.heard[from] = s.Quiesce.ticks
		s.heard.heardFrom(from, s.Quiesce.ticks) // once per peer and tick, not per message
	}
	if in.Msg.Control != nil {
		s.onControl(in.RangeID, in.Msg.Control)
		return
	}
	r, ok := s.Replicas[in.RangeID]
	if ok && wakes(in.Msg) {
		s.wake(r) // something is happening in the range
	}
	if !ok {
		// A range this node has not started yet (its catalog entry has
		// not arrived) or has removed: the sender will retry.
		return
	}
	if s.interceptSnapshot(r, in.Msg) {
		return
	}
	s.stepReplica(r, in.Msg)
}

// stepReplica hands a message to the replica's core.
func (s *Store) stepReplica(r *replica, m consensus.PeerMessage) {
	if wakes(m) {
		s.wake(r)
	}
	err := r.Core.Step(m)
	switch {
	case errors.Is(err, raft.ErrInvalidMessage) || errors.Is(err, paxos.ErrInvalidMessage):
		s.Config.Metrics.InvalidMessages.WithLabelValues(r.Core.Protocol()).Inc()
		if now := time.Now(); now.Sub(s.invalidLogged) >= invalidLogEvery {
			s.invalidLogged = now
			s.Logger.Warn("refused a peer message no correct peer sends (a bug, or a forgery); more are counted in quorumkv_consensus_invalid_messages_total",
				"range", r.desc.ID, "type", m.Kind(), "err", err)
		}
	case err != nil:
		s.Logger.Debug("consensus core refused a message", "range", r.desc.ID, "type", m.Kind(), "err", err)
	}
}

// invalidLogEvery bounds the warnings of refused peer messages to one per
// interval: a peer that sends nothing else must not flood the log.
const invalidLogEvery = 10 * time.Second

// maxWorkPerRound bounds the requests folded into one round, so a flood
// of proposals cannot starve ticks; each round's proposals share one sync.
const maxWorkPerRound = 256

func (s *Store) run() {
	defer close(s.done)
	s.clock = clockState{start: time.Now()}
	ticker := time.NewTicker(s.Config.TickInterval)
	defer ticker.Stop()
	for {
		// Every event is handled with the ticks due by then given
		// (keepTime, clock.go); the ticker only wakes the loop.
		select {
		case <-s.stop:
			s.shutdown(ErrStopped)
			return
		case <-ticker.C:
			s.keepTime()
		case fn := <-s.work:
			s.keepTime()
			fn()
			s.drain()
		case in := <-s.incoming:
			s.keepTime()
			s.StepInbound(in)
			s.drain()
		case res := <-s.snap.chunkIn:
			s.keepTime()
			s.onChunk(res)
		case <-s.splits.wake:
			// A split's file is written: HandleReady takes it.
			s.keepTime()
		case <-s.again:
			// A replica has more ready (HandleReady, step 4).
			s.keepTime()
		case err := <-s.syncs.done:
			s.keepTime()
			if err := s.synced(err); err != nil {
				s.Fail(err)
				return
			}
		}
		if err := s.HandleReady(); err != nil {
			s.Fail(err)
			return
		}
	}
}

// Tick advances every replica's logical clock by one tick and lets meta's
// leader drive meta's membership: the loop's work on every TickInterval.
// (The loop itself ticks as time says, keepTime; simulations call Tick.)
func (s *Store) Tick() { s.tick(1) }

// tick is Tick for n ticks at once: the loop fell behind, and catches up
// with the cores' clocks; the rest of a tick's work runs once.
func (s *Store) tick(n int) {
	s.countSizes()
	s.quiesceTick()
	var quiescing []*replica
	for _, r := range s.Replicas {
		// Quiesce before ticking, so that a quiescing leader sends no
		// heartbeat after its quiesce message.
		if r.Quiesced {
			continue
		}
		if s.maybeQuiesce(r) {
			quiescing = append(quiescing, r)
			continue
		}
		// The cores are independent and send nothing from a tick (their
		// messages leave in the next round's Ready, in range order), so
		// the map's order does not matter here.
		for range n {
			r.Core.Tick()
		}
	}
	// Quiesce messages do leave now: in range order, so that a seed
	// replays exactly.
	slices.SortFunc(quiescing, func(a, b *replica) int { return cmp.Compare(a.desc.ID, b.desc.ID) })
	for _, r := range quiescing {
		s.sendQuiesce(r)
	}
	s.tickSnapshots()
	s.driveMeta()
	s.driveRanges()
	s.mergeTick()
	s.shedLeaderships()
	// Gauges visit every replica: once a second is plenty for a scrape.
	if s.Quiesce.ticks%gaugeEveryTicks == 0 {
		s.updateGauges()
	}
}

// gaugeEveryTicks is how often the replica gauges are refreshed.
const gaugeEveryTicks = 10

// Fail stops the store after err, an error of the node's: persisting a
// round, or a fault of meta (see rangefault.go for the faults that stop
// one range only). What is on disk is all a restart can trust.
func (s *Store) Fail(err error) {
	s.Logger.Error("store stopped: cannot persist or apply", "err", err)
	s.errMu.Lock()
	s.errMu.err = err
	s.errMu.Unlock()
	s.shutdown(fmt.Errorf("%w: %v", ErrStopped, err))
}

// drain takes what else is waiting, up to a bound, into this round, so
// that its proposals and messages share one persist and one sync.
func (s *Store) drain() {
	for range maxWorkPerRound {
		select {
		case fn := <-s.work:
			fn()
		case in := <-s.incoming:
			s.StepInbound(in)
		default:
			return
		}
	}
}

func (s *Store) shutdown(err error) {
	for _, r := range s.sortedReplicas() {
		r.failAll(err)
	}
	s.stopSnapshots()
	s.stopSplits()
}

type readyReplica struct {
	r  *replica
	rd consensus.Ready
}

// HandleReady runs one round of the Ready contract for every replica
// that has something to do (see consensus.Core, raft.Ready and paxos.Ready
// for the order and why).
//
// A fault of one range (rangefault.go) in the round stops that replica
// alone; every other error is the node's and stops the store. The round's
// batches hold every replica's writes, so the faulty replica's must stay
// out of them while the others' go in:
//
//  1. Persist. A replica's Ready is refused only when it holds a snapshot
//     whose data was not received, and stageInstall checks that before it
//     writes anything: the batch holds none of that replica's writes, and
//     the others' are committed. (A batch write or commit that fails is
//     the node's.) Once the batch is committed, the snapshots' data is
//     ingested (snapshot.go).
//  2. Send: the stopped replica sends nothing, so no peer learns of an
//     entry or a vote of it that is not persisted.
//  3. Apply. Each replica applies its entries to a batch of its own,
//     appended to the round's only when every entry applied. A replica
//     that fails at entry k leaves nothing: neither the effects of the
//     entries before k nor its applied index. Its persisted log and hard
//     state (step 1) are valid, so a restart replays the same entries from
//     the applied index it had, and fails again at k or, if the fault
//     passed, applies them. Its clients of those entries are answered
//     "outcome unknown" (the other replicas may apply them), and the
//     others' effects are committed and answered as usual.
//  4. Advance and compact: the stopped replica is neither advanced nor
//     compacted. Compaction fails before writing (a paxos range builds its
//     snapshot, Raft reads the entry it truncates at, before anything goes
//     into the batch), so the batch again holds the others' writes only.
func (s *Store) HandleReady() error {
	// Splits whose file is written: ingested, their ranges' apply resumes
	// in this round (splitjob.go).
	if err := s.takeSplits(); err != nil {
		return err
	}
	// Snapshot chunks that arrived: a finished transfer steps its message
	// into the core, which takes the snapshot in this round.
	s.takeChunks()
	// Reads that arrived since the last round: one ReadIndex per range.
	s.issueReads()
	defer s.dropStaged()
	var ready []readyReplica
	for _, r := range s.sortedReplicas() {
		if r.Core.HasReady() {
			ready = append(ready, readyReplica{r, r.Core.Ready()})
		}
	}
	if len(ready) == 0 {
		return nil
	}

	// 1. Persist every replica's snapshot, entries and hard state in one
	// batch, synced once if any of them needs it. The leaders' appends go
	// out before the sync. A round of raft ranges only does not wait for
	// the sync (syncs.go).
	b := s.DB.NewBatch()
	defer b.Close()
	sync := false
	for _, x := range ready {
		if err := s.persist(b, x.r, &x.rd); err != nil {
			if err := s.isolate(x.r, err); err != nil {
				return err
			}
			continue
		}
		// An install's marker must be durable before its ingest.
		sync = sync || x.rd.MustSync || x.rd.Snapshot != nil
	}
	ready = s.stillRunning(ready)
	// A leader's appends go out now, so that its followers write them
	// while it syncs its own copy (consensus.Ready.Eager).
	early, late := eagerMessages, lateMessages
	if s.Config.Canary.AllEager {
		early, late = allMessages, noMessages
	}
	if s.send(ready, early) > 0 && s.Config.SyncHook != nil {
		s.Config.SyncHook()
	}
	later := sync && s.canSyncLater(ready)
	if !b.Empty() || sync {
		if err := b.Commit(sync && !later && !s.Config.Canary.AckBeforeSync); err != nil {
			return err
		}
	}
	if sync && !later {
		// What the held rounds wrote is durable too: theirs go first.
		s.release(len(s.syncs.held))
	}
	if err := s.ingestInstalls(); err != nil {
		return err
	}
	s.Config.Metrics.ReadyRounds.Inc()
	if sync {
		s.Config.Metrics.ReadySyncs.Inc()
	}

	// 2. Send the rest, now that what they promise is durable, or hold
	// them until it is.
	var held *heldRound
	if later || len(s.syncs.held) > 0 {
		held = s.hold(ready, late)
		s.startSync()
	} else {
		s.send(ready, late)
	}

	// 3. Apply committed entries, all replicas in one unsynced batch (or
	// more, if one would exceed MaxBatchBytes: RoundBatch), each replica's
	// effects whole with its applied index: the log is durable, and a
	// crash replays entries past the applied index stored in the same
	// batch as their effects. A split commits the batch, synced, and
	// stops its range's apply until its file, written off the loop, is
	// ingested (split.go, splitjob.go).
	ab := &RoundBatch{S: s, B: s.DB.NewBatch()}
	defer func() { ab.B.Close() }()
	var deliveries []delivery
	for _, x := range ready {
		ds, err := s.applyReady(ab, x)
		if err != nil {
			return err
		}
		deliveries = append(deliveries, ds...)
	}
	if err := ab.Commit(); err != nil {
		return err
	}
	// A client that changed the catalog sees its change when answered.
	if err := s.catalogUpdated(); err != nil {
		return err
	}
	// A replica the applied catalog removed is gone, its log with it:
	// it is neither advanced nor compacted; nor is one that failed.
	ready = s.stillRunning(ready)
	for _, d := range deliveries {
		d.to(d.res)
	}

	// 4. Serve reads whose index is applied, and advance. A replica with
	// committed entries after its advance gets the next round at once.
	more := false
	for _, x := range ready {
		x.r.serveReads()
		s.advance(x.r, held)
		more = more || s.running(x.r) && x.r.Core.HasCommittedEntries()
	}
	if more {
		select {
		case s.again <- struct{}{}:
		default: // a round is due already
		}
	}
	return s.compactLogs(ready)
}

// send sends the messages that which picks from each replica's Ready and
// returns how many.
func (s *Store) send(ready []readyReplica, which func(*consensus.Ready) []consensus.PeerMessage) int {
	if s.transport == nil {
		return 0
	}
	n := 0
	for _, x := range ready {
		for _, m := range which(&x.rd) {
			s.transport.Send(x.r.desc.ID, m)
			n++
		}
	}
	return n
}

// The messages of a Ready that go out before its round's sync, and after.
func eagerMessages(rd *consensus.Ready) []consensus.PeerMessage { return rd.Eager }
func lateMessages(rd *consensus.Ready) []consensus.PeerMessage  { return rd.Messages }

// The same for Canary.AllEager.
func allMessages(rd *consensus.Ready) []consensus.PeerMessage {
	return append(slices.Clip(rd.Eager), rd.Messages...)
}
func noMessages(*consensus.Ready) []consensus.PeerMessage { return nil }

// stillRunning drops from ready the replicas that were destroyed or failed
// since it was collected. It reuses ready's array.
func (s *Store) stillRunning(ready []readyReplica) []readyReplica {
	return slices.DeleteFunc(ready, func(x readyReplica) bool { return !s.running(x.r) })
}

// applyReady applies one replica's committed entries to a batch of its
// own and appends it to the round's (Store.HandleReady, step 3), returning the
// results for waiting clients. A fault of the range stops the replica and
// leaves nothing of its entries in the round's batch.
func (s *Store) applyReady(ab *RoundBatch, x readyReplica) ([]delivery, error) {
	if !s.running(x.r) {
		return nil, nil // merged into a range applied before it (merge.go)
	}
	w := &applyWriter{round: ab, shared: s.Canary.SharedApplyBatch, durable: x.r.Applied}
	if w.shared {
		w.b = ab.B
	} else {
		w.b = s.DB.NewBatch()
		defer func() { w.b.Close() }()
	}
	ds, err := x.r.Apply(s, w, x.rd.Committed)
	if w.nodeErr != nil {
		return nil, w.nodeErr
	}
	if err != nil {
		x.r.Applied = w.durable // what Pebble holds, for its status
		return nil, s.applyFailed(x.r, ds, err)
	}
	applied := 0 // a split stops the apply before its entry (splitjob.go)
	for _, e := range x.rd.Committed {
		if e.Index <= x.r.Applied {
			applied++
		}
	}
	s.Config.Metrics.Applied.WithLabelValues(x.r.Core.Protocol()).Add(float64(applied))
	if w.shared {
		return ds, nil
	}
	return ds, ab.Append(w.b)
}

// applyWriter is where one replica's apply writes: b, a batch of its own
// that the round's batch takes once every entry applied, or, with the
// SharedApplyBatch canary, the round's batch itself. A split commits
// both before it goes on (commitSoFar).
type applyWriter struct {
	round  *RoundBatch
	b      *storage.Batch
	shared bool
	// durable is the replica's applied index as Pebble holds it: what it
	// was before the apply, until a split commits part of it.
	durable uint64
	// nodeErr is a commit that failed in commitSoFar: the node's error,
	// not the range's, since the round's batch holds other ranges' writes.
	nodeErr error
}

// commitApplied finishes the apply of what replica r applied so far (its
// applied index included), commits it synced (commitSoFar), starts ab
// anew and names the step to the tests' hook: what a split, a subsume and
// a merge do before they take effect on their own.
func (w *applyWriter) commitApplied(s *Store, r *replica, ab *applyBatch, step string) error {
	if err := r.finishApply(s, w.b, ab); err != nil {
		return err
	}
	if err := w.commitSoFar(); err != nil {
		return err
	}
	w.durable = r.Applied
	*ab = *newApplyBatch()
	s.splitStep(step)
	return nil
}

// commitSoFar commits, synced, the round's batch with what the replica
// applied so far (its applied index included), and gives the apply and
// the round new batches. Synced: an ingest that follows must not survive
// a crash that loses this.
func (w *applyWriter) commitSoFar() error {
	if !w.shared {
		if err := w.round.Append(w.b); err != nil {
			return err
		}
	}
	if err := w.round.B.Commit(true); err != nil {
		w.nodeErr = err
		return err
	}
	db := w.round.S.DB
	w.round.B.Close()
	w.round.B = db.NewBatch()
	if w.shared {
		w.b = w.round.B
		return nil
	}
	w.b.Close()
	w.b = db.NewBatch()
	return nil
}

// applyFailed stops a replica whose entries could not all be applied:
// ds are the results of the entries before the failing one, whose effects
// are discarded, so their clients learn only that the outcome is unknown.
// Meta's failures are the node's (isolate).
func (s *Store) applyFailed(r *replica, ds []delivery, err error) error {
	for _, d := range ds {
		d.to(command.Result{Err: fmt.Errorf("%w: range %d could not apply its entries: %v", ErrOutcomeUnknown, r.desc.ID, err)})
	}
	return s.isolate(r, consensus.NewRangeFault(consensus.FaultApply, err))
}

// RoundBatch is a round's apply batch. Each replica's effects, with its
// applied index, are appended whole; when the next replica's would take
// it over MaxBatchBytes, the batch is committed and a new one started, as
// a crash needs each replica's writes atomic, not the round's.
type RoundBatch struct {
	S *Store
	B *storage.Batch
}

func (ab *RoundBatch) Append(rb *storage.Batch) error {
	err := ab.B.Append(rb)
	if !errors.Is(err, storage.ErrBatchTooLarge) || ab.B.Empty() {
		return err
	}
	if err := ab.Commit(); err != nil {
		return err
	}
	ab.B.Close()
	ab.B = ab.S.DB.NewBatch()
	return ab.B.Append(rb)
}

func (ab *RoundBatch) Commit() error {
	if ab.B.Empty() {
		return nil
	}
	return ab.B.Commit(false)
}

// catalogUpdated reloads and republishes the catalog if applied commands
// or a snapshot of meta changed it, and starts or removes replicas to match.
func (s *Store) catalogUpdated() error {
	if s.catalogReload {
		s.catalogReload, s.catalogChanged = false, true
		s.cat = catalog.NewCatalog()
		if err := s.loadCatalog(); err != nil {
			return err
		}
	}
	if s.catalogChanged {
		s.catalogChanged = false
		if err := s.reconcile(); err != nil {
			return err
		}
	}
	return nil
}

// persist adds one replica's Ready to the batch and takes note of its
// leadership and confirmed reads.
func (s *Store) persist(b *storage.Batch, r *replica, rd *consensus.Ready) error {
	if rd.Snapshot != nil {
		if err := s.stageInstall(b, r, rd.Snapshot); err != nil {
			return err
		}
	}
	if err := r.Core.Persist(b); err != nil {
		return err
	}
	if rd.Soft != nil {
		protocol := r.Core.Protocol()
		if rd.Soft.Leader != r.Leader {
			s.Config.Metrics.LeaderChanges.WithLabelValues(protocol).Inc()
			s.Logger.Debug("range leader changed", "range", r.desc.ID, "leader", rd.Soft.Leader, "state", rd.Soft.Role)
		}
		if rd.Soft.Role == consensus.RoleCandidate && r.Role != consensus.RoleCandidate {
			s.Config.Metrics.Elections.WithLabelValues(protocol).Inc()
		}
		r.Leader, r.Role = rd.Soft.Leader, rd.Soft.Role
		if r.Role != consensus.RoleLeader {
			// Reads not yet confirmed will not be: the new leader does
			// not know them. Their clients retry; nothing was written.
			// Proposals may still commit, or may be gone: their clients
			// learn it now rather than wait out their deadline on a
			// replica that may never apply them (a leader cut off by a
			// partition steps down, and the new one may overwrite its
			// tail); with an idempotency key they try the new leader,
			// which applies the write at most once (dedup.go).
			nl := &NotLeaderError{RangeID: r.desc.ID, Leader: r.Leader}
			r.failWaiters(fmt.Errorf("range %d: this replica stopped leading before the write was applied (%v)", r.desc.ID, nl))
			r.failReads(nl)
		}
	}
	for _, rs := range rd.Reads {
		if len(rs.Ctx) != 8 {
			continue
		}
		id := binary.BigEndian.Uint64(rs.Ctx)
		if done, ok := r.Reads[id]; ok {
			delete(r.Reads, id)
			r.confirmed = append(r.confirmed, confirmedRead{index: rs.Index, done: done})
		}
	}
	return nil
}

// compactLogs lets every replica of the round drop applied log entries
// beyond what slow followers are likely to need; a follower further
// behind gets a snapshot.
func (s *Store) compactLogs(ready []readyReplica) error {
	var b *storage.Batch
	batch := func() *storage.Batch {
		if b == nil {
			b = s.DB.NewBatch()
		}
		return b
	}
	for _, x := range ready {
		// A fault fails before it writes anything (Store.HandleReady, step 4).
		if err := x.r.Core.Compact(batch, x.r.Applied); err != nil {
			if err := s.isolate(x.r, err); err != nil {
				if b != nil {
					b.Close()
				}
				return err
			}
		}
	}
	if b == nil {
		return nil
	}
	defer b.Close()
	return b.Commit(false)
}

// CatalogView is a read-only copy of the catalog, published after every
// change; requests route with it without asking the store's goroutine.
type CatalogView struct {
	Keyspaces map[string]catalog.KeyspaceDescriptor
	// Ranges maps a keyspace to its ranges in hash order.
	Ranges map[string][]*catalog.RangeDescriptor
	// Spans are the ranges' spans in the same order, for SpanIndex.
	Spans map[string][]catalog.Span
	// Nodes are the cluster's nodes by ID.
	Nodes map[uint64]catalog.NodeDescriptor
	// Auth holds the users, roles and auth settings.
	Auth *catalog.AuthView
}

func (s *Store) publish() {
	s.preferred = preferLeaders(s.cat)
	v := &CatalogView{Keyspaces: map[string]catalog.KeyspaceDescriptor{}, Ranges: map[string][]*catalog.RangeDescriptor{}, Spans: map[string][]catalog.Span{},
		Nodes: maps.Clone(s.cat.Nodes), Auth: s.cat.AuthView()}
	for name, ks := range s.cat.Keyspaces {
		v.Keyspaces[name] = ks
		for _, r := range s.cat.KeyspaceRanges(name) {
			v.Ranges[name] = append(v.Ranges[name], r.Clone())
			v.Spans[name] = append(v.Spans[name], r.Span)
		}
	}
	s.published.Store(v)
}

// Catalog returns the latest catalog. It is never nil after OpenStore.
func (s *Store) Catalog() *CatalogView { return s.published.Load() }

// NodeAddr returns the address of node id: the one it advertises now
// (StoreConfig.Advertised) if it is known, else the catalog's.
func (s *Store) NodeAddr(id uint64) (string, bool) {
	n, ok := s.Catalog().Nodes[id]
	if !ok {
		return "", false
	}
	if s.Config.Advertised != nil && n.UUID != "" {
		if a, ok := s.Config.Advertised(n.UUID); ok && a != "" {
			return a, true
		}
	}
	return n.Addr, n.Addr != ""
}

// SetTransport sets the transport before the first peer is added. The
// transport needs the store (to resolve addresses) and the store the
// transport, so one of them is set after both exist.
func (s *Store) SetTransport(t Transport) error {
	s.transportForPeers.Store(&t)
	return s.Do(context.Background(), func() { s.transport = t })
}

// LearnPeer passes a sender's address to the transport.
func (s *Store) LearnPeer(id uint64, addr string) {
	if t := s.transportForPeers.Load(); t != nil {
		(*t).Learn(id, addr)
	}
}

// updateGauges refreshes the gauges that describe all replicas.
func (s *Store) updateGauges() {
	byRole := map[consensus.Role]int{}
	lag := map[string]uint64{consensus.ProtocolRaft: 0, consensus.ProtocolPaxos: 0}
	for _, r := range s.Replicas {
		byRole[r.Role]++
		commit := r.Core.Status().Commit
		lag[r.Core.Protocol()] += commit - min(r.Applied, commit)
	}
	for _, role := range consensus.Roles {
		s.Config.Metrics.Ranges.WithLabelValues(role.String()).Set(float64(byRole[role]))
	}
	for protocol, l := range lag {
		s.Config.Metrics.ApplyLag.WithLabelValues(protocol).Set(float64(l))
	}
	s.Config.Metrics.Quiesced.Set(float64(s.Quiesce.count))
	s.Config.Metrics.RangesFailed.Set(float64(len(s.Failed)))
}

// Ticks returns how many ticks the store's loop has run (one per
// TickInterval).
func (s *Store) Ticks(ctx context.Context) (int64, error) {
	var n int64
	err := s.Do(ctx, func() { n = int64(s.Quiesce.ticks) })
	return n, err
}

// QuiescedRanges returns how many replicas on this node are quiesced.
func (s *Store) QuiescedRanges(ctx context.Context) (int, error) {
	var n int
	err := s.Do(ctx, func() { n = s.Quiesce.count })
	return n, err
}

// RangeStatus is a replica's view of its range, for the API and status page.
type RangeStatus struct {
	RangeID uint64
	Leader  uint64
	// Term is the Raft term, or for a paxos range the round of the ballot
	// its acceptor promised.
	Term    uint64
	Commit  uint64
	Applied uint64
	// State is the replica's role, or "failed" once a fault of its range
	// stopped it (rangefault.go).
	State string
	// Error is the fault that stopped the replica, or one it serves
	// despite (a follower needs a snapshot that cannot be built); empty
	// when there is none.
	Error string
	// Voters and Learners are meta's configuration (other ranges' replicas
	// are in their descriptors).
	Voters, Learners []uint64
	// SubsumedInto is the range this one is being merged into, from its
	// subsume on (it serves nothing then; merge.go); 0 if none.
	SubsumedInto uint64
}

// RangeStatuses returns the status of every replica on this node, failed
// ones included.
func (s *Store) RangeStatuses(ctx context.Context) (map[uint64]RangeStatus, error) {
	var out map[uint64]RangeStatus
	err := s.Do(ctx, func() { out = s.RangeStatusesOnLoop() })
	return out, err
}

// rangeStatuses is RangeStatuses on the loop.
func (s *Store) RangeStatusesOnLoop() map[uint64]RangeStatus {
	out := make(map[uint64]RangeStatus, len(s.Replicas)+len(s.Failed))
	for id, r := range s.Replicas {
		out[id] = s.replicaStatus(r)
	}
	for id, f := range s.Failed {
		out[id] = f.status
	}
	return out
}

// replicaStatus is the status of a running replica. Loop only.
func (s *Store) replicaStatus(r *replica) RangeStatus {
	id := r.desc.ID
	st := r.Core.Status()
	rs := RangeStatus{RangeID: id, Leader: r.Leader, Term: st.Term, Commit: st.Commit, Applied: r.Applied, State: r.Role.String(),
		Error: r.snapshotFault.Report(s.Quiesce.ticks), SubsumedInto: r.split.subsumedInto}
	if id == catalog.MetaRangeID {
		cs := MetaCore(r).RawNode.ConfState()
		for _, v := range cs.Voters {
			rs.Voters = append(rs.Voters, v.ID)
		}
		rs.Learners = slices.Clone(cs.Learners)
	}
	return rs
}

// Leads reports whether this node's replica of range rangeID leads it.
func (s *Store) Leads(ctx context.Context, rangeID uint64) (bool, error) {
	var leads bool
	err := s.Do(ctx, func() {
		r := s.Replicas[rangeID]
		leads = r != nil && r.Role == consensus.RoleLeader
	})
	return leads, err
}

// Done is closed when the store's goroutine has stopped: after Close, or
// on its own when it could not persist (Err says why).
func (s *Store) Done() <-chan struct{} { return s.done }

// LeaderOf returns the leader of range rangeID as this node's replica
// knows it (0 when it knows none, or holds no replica).
func (s *Store) LeaderOf(ctx context.Context, rangeID uint64) (uint64, error) {
	var leader uint64
	err := s.Do(ctx, func() {
		if r := s.Replicas[rangeID]; r != nil {
			leader = r.Leader
		}
	})
	return leader, err
}
