// Package membership tells a node which other nodes exist and whether they
// are alive, by gossip (hashicorp/memberlist, SWIM with suspicion).
//
// Gossip decides nothing in quorumkv: it carries liveness and each node's
// metadata (ID, API address, zone, weight, version). Who holds which
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

	mu struct {
		sync.Mutex
		meta    []byte
		members map[string]Member // by NodeID
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
	m.mu.members = map[string]Member{}
	if err := m.setMeta(wireMeta{Meta: cfg.Meta}); err != nil {
		return nil, err
	}
	mlc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	mlc.Delegate = (*delegate)(m)
	mlc.Events = (*events)(m)
	mlc.Logger = log.New(slogWriter{cfg.Logger}, "", 0)
	if m.list, err = memberlist.Create(mlc); err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	return m, nil
}

// ErrNoSeeds is returned by Join when no seed could be reached.
var ErrNoSeeds = errors.New("membership: no seed reachable")

// Join contacts the seeds (host:port of their gossip addresses) and merges
// their view of the cluster. It succeeds when at least one answered.
func (m *Membership) Join(seeds []string) (int, error) {
	n, err := m.list.Join(seeds)
	if n == 0 {
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
	m.mu.meta = b
	return nil
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
	m.mu.Unlock()
	if !ok || old != mem {
		m.logger.Debug("membership: member changed", "node", meta.NodeID, "state", mem.State, "addr", mem.Addr)
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
