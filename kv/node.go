package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// Node serves the KV and Admin operations of one quorumkv node on top of
// its Store. Its methods are safe for concurrent use.
type Node struct {
	store  *store.Store
	db     *storage.DB
	limits catalog.Limits
	// zone and weight describe this node for placement.
	zone   string
	weight int
	// alive says whether gossip sees a catalog node alive; gossip lists
	// the members gossip knows (nil: no gossip).
	alive  func(catalog.NodeDescriptor) bool
	gossip func() []Member
	peers  *transport.Peers

	// ev coordinates the eventual keyspaces' requests (kv/eventual).
	ev *eventual.Coordinator
	// placer and stopPlacement: the placement driver (placement.go).
	placer        *placer
	stopPlacement func()
	// stopSplits stops the split driver (split.go).
	stopSplits func()
	// clock reads the physical clock (NodeConfig.PhysicalClock).
	clock func() int64
	// forward serves the KV requests other nodes forward here
	// (SetForwardHandler, forward.go).
	forward atomic.Pointer[ForwardHandler]
}

// NodeConfig configures a Node.
type NodeConfig struct {
	Limits catalog.Limits
	Zone   string
	Weight int
	// Alive reports whether gossip sees a node of the catalog alive, for
	// placement, anti-entropy and hint replay: a member of its name that
	// carries its UUID, so that a node whose data dir was lost, back
	// under its old name, is alive under its new ID and not its old one.
	// nil counts every node of the catalog alive.
	Alive func(catalog.NodeDescriptor) bool
	// HTTPClient reaches other nodes (forwarding, scans, joins); nil
	// means one speaking HTTP/2 without TLS.
	HTTPClient *http.Client
	// Members lists the nodes gossip knows, with their UUIDs, for the
	// Admin API (which shows them next to the catalog's nodes) and for
	// finding meta's leader; nil means no gossip.
	Members func() []Member
	// PhysicalClock reads physical time in nanoseconds since the Unix
	// epoch for the hybrid logical clock that versions eventual writes;
	// nil reads the system clock.
	PhysicalClock func() int64
	// ReplicaTimeout bounds one replica's answer to an eventual
	// coordinator; 0 means DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// MaxReadRepairs bounds read repairs in flight; 0 means
	// DefaultMaxReadRepairs.
	MaxReadRepairs int
	// MaxHints and MaxHintBytes bound the hints held for replicas that
	// missed eventual writes, in count and in bytes (keys and values); 0
	// means DefaultMaxHints, DefaultMaxHintBytes.
	MaxHints     int
	MaxHintBytes int64
	// MaxHintAge is how long a hint waits for its replica before it is
	// dropped; 0 means DefaultMaxHintAge.
	MaxHintAge time.Duration
	// HintReplayInterval is how often hints are replayed to replicas that
	// came back; 0 means DefaultHintReplayInterval.
	HintReplayInterval time.Duration
	// TombstoneGrace is how long a tombstone of an eventual keyspace is
	// kept at least; after it, anti-entropy purges it once every replica
	// holds it. It must exceed MaxHintAge plus ReplicaTimeout plus twice
	// the clocks' largest offset (500 ms); 0 means MaxHintAge plus one
	// hour.
	TombstoneGrace time.Duration
	// DeadAfter is how long gossip must see a node dead before the
	// placement driver moves its replicas (StartPlacement); 0 means
	// DefaultDeadAfter. MaxMovesPerPass bounds the moves of one pass; 0
	// means DefaultMaxMovesPerPass.
	DeadAfter       time.Duration
	MaxMovesPerPass int
	// Seed seeds the node's random choices (compare-and-swap ballots and
	// backoff); 0 means a random seed.
	Seed uint64

	// monotonic reads a monotonic clock for the clock guard
	// (kv/eventual/eventual_clock.go); nil reads Go's. The simulator sets it.
	monotonic func() time.Duration
	// evHooks: see Node.evHooks. Tests only.
	evHooks eventual.Hooks
}

// Member is a node as gossip sees it, or, in Node.Members, a node of the
// catalog with its gossip state.
type Member struct {
	// ID is the node's ID in the catalog, 0 for a node gossip knows and
	// the catalog does not (yet).
	ID                                          uint64
	UUID, Name, Addr, GossipAddr, Zone, Version string
	Weight                                      int
	// State is alive, dead or left; in Node.Members also unknown, for a
	// catalog node of a name gossip has not heard of.
	State string
	// Decommissioning and Replicas: see NodeDescriptor.Decommissioning and
	// replicasHeld (Node.Members only).
	Decommissioning bool
	Replicas        int
}

// NewNode serves the store. Its eventual coordinator reaches the
// replicas through goroutines, and it replays hints in the background;
// StartAntiEntropy starts anti-entropy.
func NewNode(store *store.Store, cfg NodeConfig) (*Node, error) {
	n, err := newNode(store, cfg, nil)
	if err != nil {
		return nil, err
	}
	n.ev.Loops.Every(n.ev.Hints.Interval, n.ev.ReplayHints)
	return n, nil
}

// newNode is NewNode with net as the way to replicas (nil: goNet) and no
// background loop: the simulator passes its own net and runs the loops'
// steps (replayHints, antiEntropyStep) from its timers.
func newNode(store *store.Store, cfg NodeConfig, net eventual.ReplicaNet) (*Node, error) {
	if cfg.Limits == (catalog.Limits{}) {
		cfg.Limits = catalog.DefaultLimits()
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if cfg.Weight == 0 {
		cfg.Weight = 1
	}
	if cfg.Alive == nil {
		cfg.Alive = func(catalog.NodeDescriptor) bool { return true }
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = transport.H2CClient()
	}
	n := &Node{store: store, db: store.DB, limits: cfg.Limits, zone: cfg.Zone, weight: cfg.Weight,
		alive: cfg.Alive, gossip: cfg.Members, peers: transport.NewPeers(cfg.HTTPClient),
		placer: newPlacer(cfg.DeadAfter, cfg.MaxMovesPerPass), clock: cfg.PhysicalClock}
	if n.clock == nil {
		n.clock = func() int64 { return time.Now().UnixNano() }
	}
	store.SetDeadForGood(n.deadForGood)
	c, err := eventual.New(store, eventual.Config{
		Limits: cfg.Limits, Alive: cfg.Alive, Peers: n.peers, CatchUpCatalog: n.catchUpCatalog,
		PhysicalClock: cfg.PhysicalClock, Monotonic: cfg.monotonic, ReplicaTimeout: cfg.ReplicaTimeout,
		MaxReadRepairs: cfg.MaxReadRepairs, MaxHints: cfg.MaxHints, MaxHintBytes: cfg.MaxHintBytes,
		MaxHintAge: cfg.MaxHintAge, HintReplayInterval: cfg.HintReplayInterval, TombstoneGrace: cfg.TombstoneGrace,
		Seed: cfg.Seed, Hooks: cfg.evHooks, Net: net,
	})
	if err != nil {
		return nil, err
	}
	n.ev = c
	return n, nil
}

// Members lists the catalog's nodes in ID order, each with its gossip
// state by identity: a node is in the state of gossip's member of its
// name only if that member carries its UUID. A node whose data dir was
// lost and that came back under its name is another node, with another
// UUID and ID: its old ID is dead. After them come the members gossip
// knows that the catalog does not (ID 0): nodes not admitted yet. Without
// gossip, a catalog node is alive or dead as NodeConfig.Alive says.
func (n *Node) Members() []Member {
	cat := n.store.Catalog()
	var gossip []Member
	if n.gossip != nil {
		gossip = n.gossip()
	}
	byName := make(map[string]Member, len(gossip))
	for _, g := range gossip {
		byName[g.Name] = g
	}
	known := map[string]bool{} // UUIDs of the catalog
	var out []Member
	for _, id := range slices.Sorted(maps.Keys(cat.Nodes)) {
		nd := cat.Nodes[id]
		known[nd.UUID] = true
		m := Member{ID: id, UUID: nd.UUID, Name: nd.Name, Addr: nd.Addr, GossipAddr: nd.Gossip, Zone: nd.Zone, Weight: nd.Weight,
			Decommissioning: nd.Decommissioning && !nd.Removed, Replicas: replicasHeld(cat, id)}
		g, ok := byName[nd.Name]
		switch {
		case nd.Removed:
			m.State = "removed"
		case n.gossip == nil && n.alive(nd):
			m.State = "alive"
		case n.gossip == nil:
			m.State = "dead"
		case ok && g.UUID == nd.UUID:
			m.State, m.Version, m.GossipAddr = g.State, g.Version, g.GossipAddr
		case ok:
			m.State = "dead" // its name belongs to another node now
		default:
			m.State = "unknown"
		}
		out = append(out, m)
	}
	for _, g := range gossip {
		if !known[g.UUID] {
			g.ID = 0
			out = append(out, g)
		}
	}
	return out
}

// Announce makes sure the catalog knows this node as it is now (its
// address may change across restarts), retrying until meta accepts it or
// ctx ends. The request carries the node's identity and secret: only the
// node itself can change its catalog entry. A node started on an existing
// data dir calls it once. A refusal (the catalog does not know this
// node's identity, or it is of another cluster) is returned at once.
func (n *Node) Announce(ctx context.Context, self catalog.NodeDescriptor) error {
	ident := n.store.Identity
	self.ID, self.UUID, self.SecretHash = n.store.NodeID(), ident.UUID, ident.SecretHash()
	if self.Weight == 0 {
		self.Weight = 1
	}
	backoff := 100 * time.Millisecond
	for {
		if cur, ok := n.store.Catalog().Nodes[self.ID]; ok && cur == self {
			return nil
		}
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := n.registerNode(attempt, newJoinRequest(self, ident.Secret, n.store.ClusterID()), false)
		cancel()
		if err == nil && id != self.ID {
			return fmt.Errorf("announcing node %s to the catalog: the catalog knows uuid %s as node %d, and this data dir holds node %d",
				self.Name, self.UUID, id, self.ID)
		}
		if err == nil {
			return nil
		}
		if JoinRefused(err) {
			return fmt.Errorf("announcing node %s to the catalog: %w", self.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("announcing node %s to the catalog: %w (last error: %v)", self.Name, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Store returns the node's store.
func (n *Node) Store() *store.Store { return n.store }

// Limits returns the node's request limits.
func (n *Node) Limits() catalog.Limits { return n.limits }

// Served reports whether this node serves keyspaces of mode m: raft and
// paxos keyspaces, through one consensus group per range.
func Served(m catalog.Mode) bool { return m == catalog.ModeRaft || m == catalog.ModePaxos }

// AwaitKeyspace returns nil if keyspace exists. The catalog reaches a
// node through meta's log, a moment after it changed, so a keyspace just
// created through another node may not be in this node's catalog yet:
// before it answers that keyspace does not exist, the node waits until
// its catalog holds every change committed before the request
// (catalogBarrier). A client that created a keyspace through one node
// can then use it through any other at once.
func (n *Node) AwaitKeyspace(ctx context.Context, keyspace string) error {
	if _, ok := n.store.Catalog().Keyspaces[keyspace]; ok {
		return nil
	}
	if err := catalog.CheckKeyspaceName(keyspace); err != nil {
		return err
	}
	if err := n.catchUpCatalog(ctx, fmt.Sprintf("keyspace %q", keyspace)); err != nil {
		return err
	}
	if _, ok := n.store.Catalog().Keyspaces[keyspace]; ok {
		return nil
	}
	return fmt.Errorf("%w: %q (kvctl keyspace list shows them)", catalog.ErrNoKeyspace, keyspace)
}

// CatchUpCatalog waits, a short while at most, until this node's catalog
// holds every change committed before the call (catalogBarrier): for an
// answer about users or permissions changed a moment ago elsewhere.
func (n *Node) CatchUpCatalog(ctx context.Context, what string) error {
	return n.catchUpCatalog(ctx, what)
}

// catchUpCatalog runs catalogBarrier, bounded by catalogBarrierTimeout,
// for a request on what, which this node's catalog does not hold.
func (n *Node) catchUpCatalog(ctx context.Context, what string) error {
	bctx, cancel := context.WithTimeout(ctx, catalogBarrierTimeout)
	defer cancel()
	if err := n.catalogBarrier(bctx); err != nil {
		return fmt.Errorf("%w: %s is not in this node's catalog, and meta could not confirm it does not exist: %w",
			store.ErrUnavailable, what, err)
	}
	return nil
}

// catalogBarrierTimeout bounds catalogBarrier in catchUpCatalog. Too low
// answers Unavailable during a meta election; too high holds a request
// for a missing keyspace that long when meta has no leader.
const catalogBarrierTimeout = 2 * time.Second

// catalogBarrier waits until this node's catalog holds every catalog
// change committed before it was called: on meta's leader, a ReadIndex;
// elsewhere, the leader's applied index after one (the MetaIndex peer
// call), which this node's meta replica then applies up to.
func (n *Node) catalogBarrier(ctx context.Context) error {
	err := n.store.ReadBarrier(ctx, catalog.MetaRangeID)
	var nl *store.NotLeaderError
	if !errors.As(err, &nl) {
		return err
	}
	if nl.Leader == 0 {
		return fmt.Errorf("%w: meta has no leader now", store.ErrUnavailable)
	}
	index, err := n.ev.RecordPeers.MetaIndex(ctx, nl.Leader)
	if err != nil {
		return fmt.Errorf("meta's leader, node %d: %w", nl.Leader, err)
	}
	for {
		applied, err := n.store.AppliedIndex(ctx, catalog.MetaRangeID)
		if err != nil || applied >= index {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (meta applied %d here, %d on its leader)", ctx.Err(), applied, index)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Route finds the range of key in keyspace.
func (n *Node) Route(keyspace string, key []byte) (*catalog.RangeDescriptor, error) {
	if err := n.limits.CheckKey(key); err != nil {
		return nil, err
	}
	cat := n.store.Catalog()
	ks, ok := cat.Keyspaces[keyspace]
	if !ok {
		if err := catalog.CheckKeyspaceName(keyspace); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %q (kvctl keyspace list shows them)", catalog.ErrNoKeyspace, keyspace)
	}
	if !Served(ks.Mode) {
		// Every operation of eventual keyspaces goes to the coordinator
		// before routing.
		return nil, fmt.Errorf("%w: keyspace %s is an %s keyspace, which runs no consensus group", catalog.ErrNotServed, keyspace, ks.Mode)
	}
	spans := cat.Spans[keyspace]
	return cat.Ranges[keyspace][catalog.SpanIndex(spans, catalog.HashKey(key))], nil
}

// Put writes value under key.
func (n *Node) Put(ctx context.Context, keyspace string, key, value []byte) (string, error) {
	return n.PutWith(ctx, keyspace, key, value, catalog.WriteOptions{})
}

// PutWith is Put with a request's options.
func (n *Node) PutWith(ctx context.Context, keyspace string, key, value []byte, opts catalog.WriteOptions) (string, error) {
	if err := n.limits.CheckValue(value); err != nil {
		return "", err
	}
	if err := n.limits.CheckIdempotencyKey(opts.IdempotencyKey); err != nil {
		return "", err
	}
	if err := n.AwaitKeyspace(ctx, keyspace); err != nil {
		return "", err
	}
	if ks, r, err := n.ev.Lookup(keyspace, key); err == nil && ks.Mode == catalog.ModeEventual {
		v, _, err := n.ev.Write(ctx, ks, r, key, wrn.Record{Value: value}, opts.Quorum)
		return eventual.FormatRecordVersion(v), err
	}
	var version string
	err := n.onRange(ctx, keyspace, key, func(r *catalog.RangeDescriptor) error {
		res, err := n.store.Propose(ctx, r.ID, &command.Command{Op: command.OpPut, Key: key, Value: value, IdemKey: opts.IdempotencyKey})
		if err == nil {
			err = res.Err
		}
		version = command.FormatVersion(r.ID, res.Version)
		return err
	})
	return version, err
}

// Delete removes key and says whether it existed.
func (n *Node) Delete(ctx context.Context, keyspace string, key []byte) (bool, error) {
	return n.DeleteWith(ctx, keyspace, key, nil, catalog.WriteOptions{})
}

// DeleteWith is Delete with a request's options, and a condition if
// expect is not nil: the key is deleted only if it holds, else
// ErrConditionFailed and nothing is deleted. In eventual keyspaces a
// delete writes a tombstone, and "existed" says whether one of the W
// replicas that acknowledged held a live value before; a conditional
// delete there is a compare-and-swap to a tombstone (kv/eventual/eventual_cas.go),
// deduplicated by its idempotency key like one.
func (n *Node) DeleteWith(ctx context.Context, keyspace string, key []byte, expect *catalog.Expect, opts catalog.WriteOptions) (bool, error) {
	if err := n.limits.CheckIdempotencyKey(opts.IdempotencyKey); err != nil {
		return false, err
	}
	if err := n.AwaitKeyspace(ctx, keyspace); err != nil {
		return false, err
	}
	if ks, r, err := n.ev.Lookup(keyspace, key); err == nil && ks.Mode == catalog.ModeEventual {
		if expect != nil {
			// A compare-and-swap to a tombstone (kv/eventual/eventual_cas.go): it
			// existed, since every condition a delete takes needs it to.
			_, err := n.ev.CAS(ctx, ks, r, key, *expect, wrn.Record{Tombstone: true}, opts)
			return err == nil, err
		}
		_, existed, err := n.ev.Write(ctx, ks, r, key, wrn.Record{Tombstone: true}, opts.Quorum)
		return existed, err
	}
	var existed bool
	err := n.onRange(ctx, keyspace, key, func(r *catalog.RangeDescriptor) error {
		cmd := &command.Command{Op: command.OpDelete, Key: key, IdemKey: opts.IdempotencyKey}
		if expect != nil {
			cmd.Op, cmd.Del = command.OpCAS, true
			if err := cmd.SetCondition(r.ID, n.inheritedVersion(keyspace, r, *expect)); err != nil {
				return err
			}
		}
		res, err := n.store.Propose(ctx, r.ID, cmd)
		if err == nil {
			err = res.Err
		}
		existed = res.Existed
		return err
	})
	return existed, err
}

// CompareAndSwap writes value if the key is as expected, deciding at apply
// time; a failed condition is ErrConditionFailed and writes nothing.
func (n *Node) CompareAndSwap(ctx context.Context, keyspace string, key []byte, expect catalog.Expect, value []byte) (string, error) {
	return n.CompareAndSwapWith(ctx, keyspace, key, expect, value, catalog.WriteOptions{})
}

// CompareAndSwapWith is CompareAndSwap with a request's options.
func (n *Node) CompareAndSwapWith(ctx context.Context, keyspace string, key []byte, expect catalog.Expect, value []byte, opts catalog.WriteOptions) (string, error) {
	if err := n.limits.CheckValue(value); err != nil {
		return "", err
	}
	if err := n.limits.CheckIdempotencyKey(opts.IdempotencyKey); err != nil {
		return "", err
	}
	if err := n.AwaitKeyspace(ctx, keyspace); err != nil {
		return "", err
	}
	if ks, r, err := n.ev.Lookup(keyspace, key); err == nil && ks.Mode == catalog.ModeEventual {
		// Basic Paxos per key over its replicas (kv/eventual/eventual_cas.go). Plain
		// writes of a key also written by compare-and-swap forfeit the
		// guarantee.
		return n.ev.CAS(ctx, ks, r, key, expect, wrn.Record{Value: value}, opts)
	}
	var version string
	err := n.onRange(ctx, keyspace, key, func(r *catalog.RangeDescriptor) error {
		cmd := &command.Command{Op: command.OpCAS, Key: key, Value: value, IdemKey: opts.IdempotencyKey}
		if err := cmd.SetCondition(r.ID, n.inheritedVersion(keyspace, r, expect)); err != nil {
			return err
		}
		res, err := n.store.Propose(ctx, r.ID, cmd)
		if err == nil {
			err = res.Err
		}
		version = command.FormatVersion(r.ID, res.Version)
		return err
	})
	return version, err
}

// Get reads key linearizably; a missing key is ErrKeyNotFound.
func (n *Node) Get(ctx context.Context, keyspace string, key []byte) (catalog.KeyValue, error) {
	return n.GetWith(ctx, keyspace, key, catalog.QuorumOverride{})
}

// GetWith is Get with a request's R for eventual keyspaces, where it
// returns the newest record among R replicas (not linearizable: see
// DESIGN.md §5).
func (n *Node) GetWith(ctx context.Context, keyspace string, key []byte, q catalog.QuorumOverride) (catalog.KeyValue, error) {
	if err := n.AwaitKeyspace(ctx, keyspace); err != nil {
		return catalog.KeyValue{}, err
	}
	if ks, r, err := n.ev.Lookup(keyspace, key); err == nil && ks.Mode == catalog.ModeEventual {
		rec, err := n.ev.Read(ctx, ks, r, key, q)
		if err != nil {
			return catalog.KeyValue{}, err
		}
		if !rec.Exists() {
			return catalog.KeyValue{}, fmt.Errorf("%w: %q in keyspace %s", catalog.ErrKeyNotFound, command.Abbreviate(key), keyspace)
		}
		return catalog.KeyValue{Key: key, Value: rec.Value, Version: eventual.FormatRecordVersion(rec.Version)}, nil
	}
	var kv catalog.KeyValue
	err := n.onRange(ctx, keyspace, key, func(r *catalog.RangeDescriptor) error {
		if err := n.store.ReadBarrier(ctx, r.ID); err != nil {
			return err
		}
		var err error
		kv, err = n.getApplied(keyspace, r, key)
		return err
	})
	return kv, err
}

// getApplied reads key from this replica's applied data of range r, which
// a read barrier has just made current.
func (n *Node) getApplied(keyspace string, r *catalog.RangeDescriptor, key []byte) (catalog.KeyValue, error) {
	raw, err := n.db.Get(storage.DataKey(r.ID, key))
	// After the read: a split moves the key and shrinks the span in one
	// batch, and the span only shrinks (store.Holds).
	if holds, herr := n.store.Holds(r.ID, key); herr != nil || !holds {
		if herr != nil {
			return catalog.KeyValue{}, herr
		}
		return catalog.KeyValue{}, &store.KeyMovedError{RangeID: r.ID}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return catalog.KeyValue{}, fmt.Errorf("%w: %q in keyspace %s", catalog.ErrKeyNotFound, command.Abbreviate(key), keyspace)
	}
	if err != nil {
		return catalog.KeyValue{}, err
	}
	v, err := command.DecodeValue(raw)
	if err != nil {
		return catalog.KeyValue{}, err
	}
	return catalog.KeyValue{Key: key, Value: v.Data, Version: command.FormatVersion(r.ID, v.Version)}, nil
}

// Scan returns up to limit keys with prefix after startAfter, in key
// order across all of the keyspace's ranges, and whether more remain.
func (n *Node) Scan(ctx context.Context, keyspace string, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, bool, error) {
	if limit <= 0 || limit > n.limits.MaxScanKeys {
		limit = n.limits.MaxScanKeys
	}
	if err := n.AwaitKeyspace(ctx, keyspace); err != nil {
		return nil, false, err
	}
	cat := n.store.Catalog()
	ks, ok := cat.Keyspaces[keyspace]
	switch {
	case !ok:
		return nil, false, fmt.Errorf("%w: %q", catalog.ErrNoKeyspace, keyspace)
	case ks.Mode == catalog.ModeEventual:
		return n.ev.ScanKeyspace(ctx, ks, prefix, startAfter, limit)
	case !Served(ks.Mode):
		return nil, false, fmt.Errorf("%w: keyspace %s is an %s keyspace: its descriptor and replicas are stored, but eventual reads and writes are not built yet", catalog.ErrNotServed, keyspace, ks.Mode)
	}
	// Keys hash to ranges, so every range may hold keys of any prefix:
	// read up to limit+1 from each, merge, and cut. A range that split
	// since the catalog was read would miss the half it gave away: its
	// scan finds it moved, and the whole scan starts again.
	for backoff := movedBackoffMin; ; backoff = min(2*backoff, movedBackoffMax) {
		all, more, err := n.scanRanges(ctx, keyspace, prefix, startAfter, limit)
		if !transport.KeyMoved(err) {
			return all, more, err
		}
		select {
		case <-ctx.Done():
			return nil, false, err
		case <-time.After(backoff):
		}
	}
}

// scanRanges is one attempt of Scan over the ranges the catalog names now.
func (n *Node) scanRanges(ctx context.Context, keyspace string, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, bool, error) {
	var all []catalog.KeyValue
	for _, r := range n.store.Catalog().Ranges[keyspace] {
		kvs, err := n.scanRange(ctx, r.ID, &r.Span, prefix, startAfter, limit+1)
		var nl *store.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != n.store.NodeID() {
			kvs, err = n.scanRemote(ctx, nl.Leader, r, prefix, startAfter, limit+1)
		} else if errors.Is(err, store.ErrNoReplicaHere) {
			kvs, err = n.scanReplicas(ctx, r, prefix, startAfter, limit+1)
		}
		if err != nil {
			return nil, false, err
		}
		all = append(all, kvs...)
	}
	all, more := command.MergePages(all, limit)
	return all, more, nil
}

// scanRange scans this node's replica of a range, which must lead it. If
// span is set, the range must still hold all of it (store.HoldsSpan),
// checked after the read: else the scan failed with ErrKeyMoved.
func (n *Node) scanRange(ctx context.Context, rangeID uint64, span *catalog.Span, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, error) {
	if err := n.store.ReadBarrier(ctx, rangeID); err != nil {
		return nil, err
	}
	var out []catalog.KeyValue
	err := command.EachData(n.db, rangeID, prefix, startAfter, func(key, raw []byte) (bool, error) {
		v, err := command.DecodeValue(raw)
		if err != nil {
			return false, err
		}
		out = append(out, catalog.KeyValue{Key: bytes.Clone(key), Value: bytes.Clone(v.Data), Version: command.FormatVersion(rangeID, v.Version)})
		return len(out) < limit, nil
	})
	if err != nil || span == nil {
		return out, err
	}
	holds, err := n.store.HoldsSpan(rangeID, *span)
	if err == nil && !holds {
		err = &store.KeyMovedError{RangeID: rangeID, Span: *span}
	}
	return out, err
}

// scanSpanHeader, on a ScanRange call, is the span of the range that the
// scanning node's catalog has: the range must still hold all of it.
const scanSpanHeader = "Quorumkv-Span"

// scanRemote scans one range on its leader, another node.
func (n *Node) scanRemote(ctx context.Context, leader uint64, r *catalog.RangeDescriptor, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, error) {
	rangeID := r.ID
	addr, ok := n.store.NodeAddr(leader)
	if !ok {
		return nil, fmt.Errorf("%w: range %d's leader, node %d, has no known address", store.ErrUnavailable, rangeID, leader)
	}
	req := connect.NewRequest(&peerv1.ScanRangeRequest{RangeId: rangeID, Prefix: prefix, StartAfter: startAfter, Limit: uint32(limit)})
	req.Header().Set(scanSpanHeader, fmt.Sprintf("%016x-%016x", r.Span.Lo, r.Span.Hi))
	resp, err := n.peers.PeerClient(addr).ScanRange(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]catalog.KeyValue, len(resp.Msg.Entries))
	for i, e := range resp.Msg.Entries {
		out[i] = catalog.KeyValue{Key: e.Key, Value: e.Value, Version: e.Version}
	}
	return out, nil
}

// scanReplicas scans a range this node holds no replica of: its replicas,
// in turn, answer or name their leader.
func (n *Node) scanReplicas(ctx context.Context, r *catalog.RangeDescriptor, prefix, startAfter []byte, limit int) ([]catalog.KeyValue, error) {
	var errs []error
	for _, rep := range r.Replicas {
		kvs, err := n.scanRemote(ctx, rep.NodeID, r, prefix, startAfter, limit)
		if err == nil {
			return kvs, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: no replica of range %d could serve the scan: %w", store.ErrUnavailable, r.ID, errors.Join(errs...))
}

// CreateKeyspace checks d, places its ranges, proves its geometry on each
// replica set, and adds it to the catalog through meta.
func (n *Node) CreateKeyspace(ctx context.Context, d catalog.KeyspaceDescriptor) (catalog.KeyspaceDescriptor, error) {
	op, err := n.placeKeyspace(&d)
	if err != nil {
		return catalog.KeyspaceDescriptor{}, err
	}
	if err := n.proposeCatalog(ctx, op); err != nil {
		return catalog.KeyspaceDescriptor{}, err
	}
	created, ok := n.store.Catalog().Keyspaces[d.Name]
	if !ok {
		return catalog.KeyspaceDescriptor{}, fmt.Errorf("%w: keyspace %s was created but is already gone", catalog.ErrNoKeyspace, d.Name)
	}
	return created, nil
}

// placeKeyspace normalizes d, places its ranges on live nodes, proves its
// geometry on each replica set, and returns the catalog command that
// creates it.
func (n *Node) placeKeyspace(d *catalog.KeyspaceDescriptor) ([]byte, error) {
	if err := d.Normalize(); err != nil {
		return nil, err
	}
	candidates := n.candidates()
	replicas := make([][]catalog.ReplicaDescriptor, d.Ranges)
	for i := range replicas {
		placed, err := catalog.Place(candidates, d.Replicas)
		if err != nil {
			return nil, fmt.Errorf("keyspace %s: %w", d.Name, err)
		}
		if _, _, err := d.ProveOn(placed); err != nil {
			return nil, err
		}
		for _, p := range placed {
			replicas[i] = append(replicas[i], catalog.ReplicaDescriptor{NodeID: p.ID, Zone: p.Zone, Weight: p.Weight})
			addLoad(candidates, p.ID)
		}
	}
	return json.Marshal(catalog.CatalogOp{Create: d, Replicas: replicas})
}

// DropKeyspace removes a keyspace and, on every replica, its data.
// RemoveNode removes node id, gone for good, from the cluster: the
// placement driver moves its replicas at once, without waiting for
// DeadAfter, meta's voter of it is swapped for a learner, and the catalog
// refuses it ever after under its identity (catalog.ErrRemoved). A node
// that gossip sees alive is refused (ErrNodeAlive): stop it first.
func (n *Node) RemoveNode(ctx context.Context, id uint64) error {
	nd, ok := n.store.Catalog().Nodes[id]
	switch {
	case !ok:
		return fmt.Errorf("%w: node %d is not in the catalog (kvctl cluster members lists them)", catalog.ErrInvalidArgument, id)
	case n.alive(nd):
		return fmt.Errorf("%w: node %d (%s) is alive: stop it before removing it", catalog.ErrNodeAlive, id, nd.Name)
	}
	return n.proposeOp(ctx, catalog.CatalogOp{RemoveNode: id})
}

// Drain makes this node hand the leaderships of its ranges to other
// replicas, and keep handing away any it gains until it restarts
// (Store.SetDraining). It waits a few seconds for the transfers and
// reports how many leaderships moved and how many this node still holds.
func (n *Node) Drain(ctx context.Context) (moved, kept int) {
	n.store.SetDraining(true)
	return n.store.TransferLeaderships(ctx)
}

func (n *Node) DropKeyspace(ctx context.Context, name string) error {
	if name == catalog.MetaKeyspace {
		return fmt.Errorf("%w: the meta keyspace holds the catalog and cannot be dropped", catalog.ErrInvalidArgument)
	}
	return n.proposeOp(ctx, catalog.CatalogOp{Drop: name})
}

func (n *Node) proposeCatalog(ctx context.Context, op []byte) error {
	res, err := n.store.Propose(ctx, catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: op})
	if err != nil {
		return err
	}
	return res.Err
}

// candidates are the nodes placement may use, the catalog's nodes that
// gossip sees alive and that are neither removed nor decommissioning,
// with their current load, in ID order.
func (n *Node) candidates() []catalog.Candidate {
	cat := n.store.Catalog()
	var out []catalog.Candidate
	for _, id := range slices.Sorted(maps.Keys(cat.Nodes)) {
		nd := cat.Nodes[id]
		if nd.Removed || nd.Decommissioning || !n.alive(nd) {
			continue
		}
		c := catalog.Candidate{ID: id, Zone: nd.Zone, Weight: nd.Weight}
		for _, ranges := range cat.Ranges {
			for _, r := range ranges {
				if r.HasReplica(id) {
					c.Replicas++
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// Close stops the node's eventual coordinator: its hint replay and
// anti-entropy loops, then waits for its background work to finish (read
// repairs, replays and exchanges under way, and replica requests of
// eventual writes and reads that outlived their request, each bounded by
// the replica timeout). Close the store after. It may be called more than
// once.
func (n *Node) Close() {
	if n.stopPlacement != nil {
		n.stopPlacement()
		n.stopPlacement = nil
	}
	if n.stopSplits != nil {
		n.stopSplits()
		n.stopSplits = nil
	}
	n.ev.Close()
}

// StartAntiEntropy starts the node's anti-entropy loop: one round every
// interval (0 means eventual.DefaultAntiEntropyInterval), visiting its
// eventual ranges in turn. Close stops it.
func (n *Node) StartAntiEntropy(interval time.Duration) { n.ev.StartAntiEntropy(interval) }
