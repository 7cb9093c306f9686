// Package membership tells a node which other nodes exist and whether they
// are alive, by gossip (hashicorp/memberlist, SWIM with suspicion).
//
// Gossip decides nothing in quorumkv: it carries liveness and each node's
// metadata (name, API address, zone, weight, version, and its identity:
// UUID and cluster ID). It refuses members of another cluster. Who holds which
// replica, and who may vote, is decided by consensus in the catalog
// (DESIGN.md §3); Cassandra and ScyllaDB moved topology out of gossip after
// Jepsen found split brain there. kv/ reads Members and watches Changes to
// route requests, replay hints and propose placement changes.
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the others about itself.
type Meta struct {
	// NodeID is the node's unique, stable name (kvd --node-id).
	NodeID string `json:"id"`
	// Addr is the client API and peer address (kvd --advertise).
	Addr string `json:"addr"`
	// Zone is the node's failure domain.
	Zone string `json:"zone"`
	// Weight is the node's votes in weighted geometries.
	Weight int `json:"weight"`
	// Version is the kvd version.
	Version string `json:"version"`
	// UUID is the node's identity, chosen at its first start and kept in
	// its data dir: a node whose data dir was lost comes back under its
	// old NodeID with a new UUID.
	UUID string `json:"uuid,omitempty"`
	// ClusterID is the cluster the node belongs to, empty until it has
	// founded or joined one. Gossip refuses members of another cluster.
	ClusterID string `json:"cluster,omitempty"`
}

// State is a member's liveness as gossip sees it.
type State int

// memberlist reports suspicion to no one (a suspect is alive until it is
// declared dead), so these are the states a member can be seen in.
const (
	StateAlive State = iota + 1
	// StateDead: failure detection gave up on the node.
	StateDead
	// StateLeft: the node said goodbye (graceful shutdown, drain).
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node as gossip knows it.
type Member struct {
	Meta
	// GossipAddr is the node's memberlist address.
	GossipAddr string
	State      State
}

// Membership is this node's view of the cluster. It is safe for concurrent use.
type Membership struct {
	list    *memberlist.Memberlist
	logger  *slog.Logger
	changes chan struct{}
	// keyring seals gossip (Config.Keys); nil when gossip is in the clear.
	keyring *memberlist.Keyring

	mu struct {
		sync.Mutex
		meta    []byte
		self    Meta              // decoded meta, for the cluster filter
		members map[string]Member // by NodeID
		// advertised maps the UUID of each alive member to the address it
		// advertises (AdvertisedAddr, on the path of every peer call).
		advertised map[string]string
		// refused is the last member refused for being of another
		// cluster, so that Join can say why it reached no one.
		refused *OtherClusterError
	}
}

// New starts gossip on cfg.BindAddr. It joins no one: call Join with seeds,
// or nothing to bootstrap a new cluster.
func New(cfg Config) (*Membership, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{logger: cfg.Logger, changes: make(chan struct{}, 1)}
	m.mu.members, m.mu.advertised = map[string]Member{}, map[string]string{}
	if err := m.setMeta(wireMeta{Meta: cfg.Meta}); err != nil {
		return nil, err
	}
	mlc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	mlc.Delegate = (*delegate)(m)
	mlc.Events = (*events)(m)
	// Both hooks: the merge delegate sees the state exchanged at a join,
	// the alive delegate every alive message, also those that spread
	// later by gossip (memberlist's AliveDelegate doc).
	mlc.Merge = (*clusterFilter)(m)
	mlc.Alive = (*clusterFilter)(m)
	mlc.Logger = log.New(slogWriter{cfg.Logger}, "", 0)
	m.keyring = mlc.Keyring
	if m.list, err = memberlist.Create(mlc); err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	return m, nil
}

// ErrNoSeeds is returned by Join when no seed could be reached.
var ErrNoSeeds = errors.New("membership: no seed reachable")

// ErrOtherCluster marks an OtherClusterError.
var ErrOtherCluster = errors.New("membership: a member of another cluster")

// OtherClusterError is a member refused because it belongs to another
// cluster than this node.
type OtherClusterError struct {
	// Node and Addr name the member refused; Theirs is its cluster, Ours
	// this node's.
	Node, Addr, Theirs, Ours string
}

func (e *OtherClusterError) Error() string {
	return fmt.Sprintf("membership: node %s at %s belongs to cluster %s, and this node to cluster %s", e.Node, e.Addr, e.Theirs, e.Ours)
}

func (e *OtherClusterError) Is(target error) bool { return target == ErrOtherCluster }

// Join contacts the seeds (host:port of their gossip addresses) and merges
// their view of the cluster. It succeeds when at least one answered. When
// none did because they belong to another cluster, the error is an
// *OtherClusterError (ErrOtherCluster).
func (m *Membership) Join(seeds []string) (int, error) {
	m.mu.Lock()
	m.mu.refused = nil
	m.mu.Unlock()
	n, err := m.list.Join(seeds)
	if n == 0 {
		m.mu.Lock()
		refused := m.mu.refused
		m.mu.Unlock()
		if refused != nil {
			return 0, fmt.Errorf("%w (tried %v)", refused, seeds)
		}
		return 0, fmt.Errorf("%w: tried %v: %v", ErrNoSeeds, seeds, err)
	}
	return n, nil
}

// LocalAddr is the gossip address actually bound (useful with port 0).
func (m *Membership) LocalAddr() string {
	n := m.list.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members returns every node gossip has seen, this one included, sorted by
// NodeID. Dead and departed nodes stay listed with their state.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.mu.members))
	for _, mem := range m.mu.members {
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.NodeID < b.NodeID:
			return -1
		case a.NodeID > b.NodeID:
			return 1
		}
		return 0
	})
	return out
}

// AdvertisedAddr returns the address (Meta.Addr) that the alive member of
// UUID uuid advertises, if gossip knows one.
func (m *Membership) AdvertisedAddr(uuid string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	addr, ok := m.mu.advertised[uuid]
	return addr, ok
}

// CountByState returns how many members are in each state.
func (m *Membership) CountByState() map[State]int {
	counts := map[State]int{}
	for _, mem := range m.Members() {
		counts[mem.State]++
	}
	return counts
}

// Changes is signalled (level-triggered and coalesced: one pending signal
// at most) whenever a member joins, changes or fails. Read Members after it.
// A slow reader misses no state, only intermediate ones.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// UpdateMeta changes this node's metadata and gossips it, waiting up to
// timeout for the broadcast to go out.
func (m *Membership) UpdateMeta(meta Meta, timeout time.Duration) error {
	if err := m.setMeta(wireMeta{Meta: meta}); err != nil {
		return err
	}
	return m.list.UpdateNode(timeout)
}

// wireMeta is what travels in memberlist's node metadata. Leaving is set
// just before a graceful leave: memberlist tells the others that a node is
// gone but not whether it left or died, so the node says so first.
type wireMeta struct {
	Meta
	Leaving bool `json:"leaving,omitempty"`
}

func (m *Membership) setMeta(w wireMeta) error {
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("membership: encode metadata: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("membership: node metadata is %d bytes, memberlist carries at most %d", len(b), memberlist.MetaMaxSize)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.meta, m.mu.self = b, w.Meta
	return nil
}

// Meta returns what this node gossips about itself.
func (m *Membership) Meta() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.self
}

// Leave tells the others this node is going, so that they mark it left
// rather than dead, then stops gossip. It spends up to timeout on each of
// its two broadcasts (the leaving mark, then memberlist's leave).
func (m *Membership) Leave(timeout time.Duration) error {
	var w wireMeta
	m.mu.Lock()
	err := json.Unmarshal(m.mu.meta, &w)
	m.mu.Unlock()
	if err == nil {
		w.Leaving = true
		if err = m.setMeta(w); err == nil {
			err = m.list.UpdateNode(timeout)
		}
	}
	return errors.Join(err, m.list.Leave(timeout), m.list.Shutdown())
}

// Close stops gossip without saying goodbye: the others will find this
// node dead, as if it had crashed.
func (m *Membership) Close() error { return m.list.Shutdown() }

func (m *Membership) notify() {
	select {
	case m.changes <- struct{}{}:
	default: // a signal is already pending
	}
}

// record notes a member's news; gone says memberlist reported it gone.
func (m *Membership) record(n *memberlist.Node, gone bool) {
	var meta wireMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.NodeID == "" {
		// A node from another program, or one too old to send metadata.
		m.logger.Warn("membership: ignoring a gossip member without quorumkv metadata", "name", n.Name, "addr", n.Address())
		return
	}
	if m.otherCluster(n.Name, n.Address(), meta.ClusterID) != nil {
		return // the filter refused it already; never listed
	}
	mem := Member{Meta: meta.Meta, GossipAddr: n.Address(), State: StateAlive}
	switch {
	case gone && meta.Leaving:
		mem.State = StateLeft
	case gone:
		mem.State = StateDead
	}
	m.mu.Lock()
	old, ok := m.mu.members[meta.NodeID]
	m.mu.members[meta.NodeID] = mem
	if ok && old.UUID != mem.UUID {
		delete(m.mu.advertised, old.UUID) // the name belongs to another node now
	}
	if mem.UUID != "" {
		if mem.State == StateAlive && mem.Addr != "" {
			m.mu.advertised[mem.UUID] = mem.Addr
		} else {
			delete(m.mu.advertised, mem.UUID)
		}
	}
	m.mu.Unlock()
	if !ok || old != mem {
		m.logger.Debug("membership: member changed", "member", meta.NodeID, "state", mem.State, "addr", mem.Addr)
		m.notify()
	}
}

// delegate gives memberlist this node's metadata. Its other hooks carry
// user messages and state exchange, which quorumkv does not gossip.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.mu.meta) // New and UpdateMeta keep it under limit
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// otherCluster returns the refusal of a member of cluster theirs, or nil
// if it may be a member: a node that has not joined a cluster yet (an
// empty ID, on either side) may.
func (m *Membership) otherCluster(node, addr, theirs string) *OtherClusterError {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ours := m.mu.self.ClusterID; theirs != "" && ours != "" && theirs != ours {
		return &OtherClusterError{Node: node, Addr: addr, Theirs: theirs, Ours: ours}
	}
	return nil
}

// clusterFilter keeps members of other clusters out: memberlist neither
// merges their state nor takes their alive messages, so they are never
// listed, probed or gossiped to. A node whose data dir belongs to one
// cluster, started with --join to another, stays out of both.
type clusterFilter Membership

func (f *clusterFilter) check(n *memberlist.Node) error {
	m := (*Membership)(f)
	var meta wireMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil {
		return nil // not a quorumkv node: record ignores it
	}
	refused := m.otherCluster(n.Name, n.Address(), meta.ClusterID)
	if refused == nil {
		return nil
	}
	m.mu.Lock()
	m.mu.refused = refused
	m.mu.Unlock()
	m.logger.Warn("membership: refusing a member of another cluster", "member", refused.Node, "addr", refused.Addr,
		"its_cluster", refused.Theirs, "our_cluster", refused.Ours)
	return refused
}

// NotifyAlive refuses an alive message from a node of another cluster.
func (f *clusterFilter) NotifyAlive(n *memberlist.Node) error { return f.check(n) }

// NotifyMerge refuses to merge the state of a node that knows members of
// another cluster (at a join, the seed's view, or the joiner's).
func (f *clusterFilter) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := f.check(n); err != nil {
			return err
		}
	}
	return nil
}

// events receives memberlist's membership events. memberlist calls it
// synchronously from its own goroutines, so it only records and signals.
type events Membership

// memberlist's Node.State is not kept up to date in these calls, so the
// kind of call says whether the node is gone.
func (e *events) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).record(n, false) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).record(n, true) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).record(n, false) }

// slogWriter turns memberlist's "[LEVEL] memberlist: ..." log lines into
// slog records at the matching level.
type slogWriter struct{ logger *slog.Logger }

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG] ": slog.LevelDebug, "[INFO] ": slog.LevelInfo, "[WARN] ": slog.LevelWarn, "[ERR] ": slog.LevelError} {
		if len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
			level, msg = l, msg[len(prefix):]
			break
		}
	}
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	if level > slog.LevelDebug && strings.Contains(msg, "use of closed network connection") {
		// memberlist's own probes racing its Shutdown, when this node
		// leaves: nothing is wrong.
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, msg, "component", "gossip")
	return len(p), nil
}

// ErrGossipInClear: the keyring operations need gossip started with keys
// (Config.Keys); encryption cannot be switched on while running.
var ErrGossipInClear = errors.New("membership: gossip is not encrypted (no keys at start)")

// GossipKeys returns the keys that open gossip, the one that seals it
// first.
func (m *Membership) GossipKeys() ([][]byte, error) {
	if m.keyring == nil {
		return nil, ErrGossipInClear
	}
	return m.keyring.GetKeys(), nil
}

// InstallGossipKey adds key to those that open gossip: the first step of a
// rotation, taken on every node before any seals with it.
func (m *Membership) InstallGossipKey(key []byte) error {
	if m.keyring == nil {
		return ErrGossipInClear
	}
	return m.keyring.AddKey(key)
}

// UseGossipKey makes key, installed already, the one that seals gossip.
func (m *Membership) UseGossipKey(key []byte) error {
	if m.keyring == nil {
		return ErrGossipInClear
	}
	return m.keyring.UseKey(key)
}

// RemoveGossipKey drops key from those that open gossip; the one that
// seals it cannot be removed.
func (m *Membership) RemoveGossipKey(key []byte) error {
	if m.keyring == nil {
		return ErrGossipInClear
	}
	return m.keyring.RemoveKey(key)
}
