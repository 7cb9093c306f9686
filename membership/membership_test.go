package membership

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

// memberlist's Shutdown does not wait for a probe in flight; that goroutine
// ends by itself when its probe times out.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func start(t *testing.T, id, zone string) *Membership {
	t.Helper()
	return startMeta(t, Meta{NodeID: id, Addr: "127.0.0.1:70" + id[len(id)-1:], Zone: zone, Weight: 1, Version: "test"})
}

// startMeta starts gossip on a loopback port with the given metadata.
func startMeta(t *testing.T, meta Meta) *Membership {
	t.Helper()
	cfg := LoopbackTimings()
	cfg.Meta = meta
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = quietLogger()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", meta.NodeID, err)
	}
	return m
}

// waitFor polls cond until it holds or the deadline passes. Gossip is
// asynchronous by nature; the deadline is generous for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func states(m *Membership) string {
	var parts []string
	for _, mem := range m.Members() {
		parts = append(parts, mem.NodeID+"="+mem.State.String())
	}
	return strings.Join(parts, " ")
}

func TestJoinFailLeave(t *testing.T) {
	a, b, c := start(t, "n1", "east"), start(t, "n2", "west"), start(t, "n3", "north")
	defer a.Close()
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join([]string{a.LocalAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three alive members everywhere", func() bool {
		for _, m := range []*Membership{a, b, c} {
			if states(m) != "n1=alive n2=alive n3=alive" {
				return false
			}
		}
		return true
	})
	if got := a.Members()[1]; got.Zone != "west" || got.Addr != "127.0.0.1:702" || got.Version != "test" {
		t.Errorf("metadata of n2 as n1 sees it: %+v", got)
	}
	select {
	case <-a.Changes():
	default:
		t.Error("no change signalled after joins")
	}

	// Metadata changes spread.
	if err := b.UpdateMeta(Meta{NodeID: "n2", Addr: "127.0.0.1:7999", Zone: "west", Weight: 3}, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2's new weight at n1", func() bool { return a.Members()[1].Weight == 3 })

	// A graceful leave is "left"; a crash is found "dead".
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 left", func() bool { return states(a) == "n1=alive n2=left n3=alive" })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n3 dead", func() bool { return states(a) == "n1=alive n2=left n3=dead" })
	if got := a.CountByState(); got[StateAlive] != 1 || got[StateLeft] != 1 || got[StateDead] != 1 {
		t.Errorf("CountByState = %v", got)
	}
}

func TestJoinNoSeed(t *testing.T) {
	a := start(t, "n1", "z")
	defer a.Close()
	// A port nothing listens on: reserved by binding and closing another member.
	b := start(t, "n9", "z")
	addr := b.LocalAddr()
	b.Close()
	if _, err := a.Join([]string{addr}); err == nil || !strings.Contains(err.Error(), "no seed reachable") {
		t.Fatalf("Join(dead seed) = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Meta.NodeID = "" }, "NodeID is required"},
		{func(c *Config) { c.BindAddr = "nowhere" }, "bind address"},
		{func(c *Config) { c.ProbeTimeout = 2 * c.ProbeInterval }, "must be shorter than ProbeInterval"},
		{func(c *Config) { c.Meta.Version = strings.Repeat("v", 600) }, "at most 512"},
	} {
		cfg := LoopbackTimings()
		cfg.Meta = Meta{NodeID: "n1"}
		cfg.BindAddr = "127.0.0.1:0"
		cfg.Logger = quietLogger()
		c.mutate(&cfg)
		m, err := New(cfg)
		if err == nil {
			m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want an error containing %q", err, c.want)
		}
	}
}

// startIn starts a member of cluster (empty: not joined to one yet).
func startIn(t *testing.T, id, cluster string) *Membership {
	t.Helper()
	return startMeta(t, Meta{NodeID: id, Addr: "127.0.0.1:7000", Zone: "z", Weight: 1, Version: "test", UUID: "uuid-" + id, ClusterID: cluster})
}

// A node of one cluster that joins the gossip of another is refused on
// both sides, with both cluster IDs named, and never listed; a node that
// has not joined a cluster yet is admitted, and stays once it takes the
// cluster's ID.
func TestOtherClusterRefused(t *testing.T) {
	a1, a2 := startIn(t, "a1", "cluster-a"), startIn(t, "a2", "cluster-a")
	defer a1.Close()
	defer a2.Close()
	if _, err := a2.Join([]string{a1.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	b1 := startIn(t, "b1", "cluster-b")
	defer b1.Close()
	_, err := b1.Join([]string{a1.LocalAddr()})
	var refused *OtherClusterError
	if !errors.As(err, &refused) || !errors.Is(err, ErrOtherCluster) || refused.Theirs != "cluster-a" || refused.Ours != "cluster-b" ||
		!strings.Contains(err.Error(), "cluster-a") || !strings.Contains(err.Error(), "cluster-b") {
		t.Fatalf("b1 joining cluster-a's gossip: %v, want an OtherClusterError naming both clusters", err)
	}

	fresh := startIn(t, "c1", "")
	defer fresh.Close()
	if _, err := fresh.Join([]string{a1.LocalAddr()}); err != nil {
		t.Fatalf("a node of no cluster yet joining: %v", err)
	}
	meta := fresh.Meta()
	meta.ClusterID = "cluster-a"
	if err := fresh.UpdateMeta(meta, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c1 in cluster-a's gossip", func() bool {
		return states(a1) == "a1=alive a2=alive c1=alive" && states(a2) == "a1=alive a2=alive c1=alive"
	})
	for _, mem := range a1.Members() {
		if mem.NodeID == "c1" && (mem.ClusterID != "cluster-a" || mem.UUID != "uuid-c1") {
			t.Fatalf("c1 as a1 sees it: %+v", mem)
		}
	}
	// Gossip goes on for a few push/pull rounds: b1 never shows up.
	time.Sleep(3 * LoopbackTimings().PushPullInterval / 2)
	for _, m := range []*Membership{a1, a2, fresh} {
		if got := states(m); strings.Contains(got, "b1") {
			t.Fatalf("cluster-a lists b1: %s", got)
		}
	}
	if got := states(b1); got != "b1=alive" {
		t.Fatalf("b1 lists %s, want itself alone", got)
	}
	// An alive message of another cluster's node, as gossip would
	// spread it, is refused too.
	if err := (*clusterFilter)(a1).NotifyAlive(&memberlist.Node{Name: "b1", Meta: mustMeta(t, Meta{NodeID: "b1", ClusterID: "cluster-b"})}); !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("NotifyAlive(b1): %v", err)
	}
	if err := (*clusterFilter)(a1).NotifyAlive(&memberlist.Node{Name: "d1", Meta: mustMeta(t, Meta{NodeID: "d1"})}); err != nil {
		t.Fatalf("NotifyAlive(a node of no cluster yet): %v", err)
	}
}

func mustMeta(t *testing.T, m Meta) []byte {
	t.Helper()
	b, err := json.Marshal(wireMeta{Meta: m})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AdvertisedAddr finds the address a live member of a UUID advertises,
// follows its changes, and forgets it once the member is dead.
func TestAdvertisedAddr(t *testing.T) {
	const uuidA, uuidB = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	withUUID := func(id, uuid string) *Membership {
		return startMeta(t, Meta{NodeID: id, Addr: "127.0.0.1:70" + id[len(id)-1:], Zone: "z", Weight: 1, Version: "test", UUID: uuid})
	}
	a, b := withUUID("n1", uuidA), withUUID("n2", uuidB)
	defer a.Close()
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2's address at n1", func() bool { addr, ok := a.AdvertisedAddr(uuidB); return ok && addr == "127.0.0.1:702" })
	if addr, ok := a.AdvertisedAddr("cccccccc-cccc-4ccc-8ccc-cccccccccccc"); ok {
		t.Errorf("an unknown UUID has address %q", addr)
	}
	if err := b.UpdateMeta(Meta{NodeID: "n2", Addr: "127.0.0.1:7999", Zone: "z", Weight: 1, UUID: uuidB}, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2's new address at n1", func() bool { addr, _ := a.AdvertisedAddr(uuidB); return addr == "127.0.0.1:7999" })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no address for the dead n2", func() bool { _, ok := a.AdvertisedAddr(uuidB); return !ok })
}

// startKeyed starts gossip with keys (nil: in the clear).
func startKeyed(t *testing.T, id string, keys ...[]byte) *Membership {
	t.Helper()
	cfg := LoopbackTimings()
	cfg.Meta = Meta{NodeID: id, Addr: "127.0.0.1:1", Zone: "z", Weight: 1}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = quietLogger()
	cfg.Keys = keys
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return m
}

// With keys, gossip is sealed: nodes of one key form a cluster, a node
// without the key or with another cannot join it, and a node holding the
// old key second joins nodes that seal with it (rotation).
func TestGossipKeys(t *testing.T) {
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 32))
	a, b := startKeyed(t, "n1", k1), startKeyed(t, "n2", k1)
	defer a.Close()
	defer b.Close()
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 and n2 alive at n1", func() bool { return states(a) == "n1=alive n2=alive" })
	for _, c := range []struct {
		id   string
		keys [][]byte
	}{{"n3", nil}, {"n4", [][]byte{k2}}} {
		m := startKeyed(t, c.id, c.keys...)
		if _, err := m.Join([]string{a.LocalAddr()}); err == nil {
			t.Errorf("%s (keys %d) joined a cluster sealed with another key", c.id, len(c.keys))
		}
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(states(a), c.id) {
			t.Errorf("n1 lists %s, which holds no key of it: %s", c.id, states(a))
		}
		m.Close()
	}
	// Rotation: n5 sealing with k1 and opening k2 too (the new key added
	// second) joins n1; n6 sealing with k2 and opening k1 (the new key
	// moved first) joins n5.
	n5 := startKeyed(t, "n5", k1, k2)
	defer n5.Close()
	if _, err := n5.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatalf("n5 (k1, then k2) joining n1 (k1): %v", err)
	}
	n6 := startKeyed(t, "n6", k2, k1)
	defer n6.Close()
	if _, err := n6.Join([]string{n5.LocalAddr()}); err != nil {
		t.Fatalf("n6 (k2, then k1) joining n5 (k1, then k2): %v", err)
	}
	waitFor(t, "n6 alive at n5", func() bool { return strings.Contains(states(n5), "n6=alive") })
	if err := (&Config{Meta: Meta{NodeID: "x"}, BindAddr: "127.0.0.1:0", ProbeInterval: time.Second, ProbeTimeout: time.Millisecond, SuspicionMult: 1,
		Keys: [][]byte{[]byte("short")}}).Validate(); err == nil || !strings.Contains(err.Error(), "16, 24 or 32") {
		t.Errorf("a 5-byte key: %v", err)
	}
}

// The keyring changes while gossip runs: a key installed, used and the
// old one removed leaves the new key alone; the sealing key cannot be
// removed; gossip started in the clear has no keyring to change.
func TestGossipKeyringOps(t *testing.T) {
	k1, k2 := []byte(strings.Repeat("a", 32)), []byte(strings.Repeat("b", 16))
	m := startKeyed(t, "n1", k1)
	defer m.Close()
	if err := m.InstallGossipKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveGossipKey(k1); err == nil {
		t.Error("the sealing key was removed")
	}
	if err := m.UseGossipKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveGossipKey(k1); err != nil {
		t.Fatal(err)
	}
	if keys, err := m.GossipKeys(); err != nil || len(keys) != 1 || string(keys[0]) != string(k2) {
		t.Errorf("keys after the rotation: %q, %v", keys, err)
	}
	clear := startKeyed(t, "n2")
	defer clear.Close()
	if err := clear.InstallGossipKey(k2); !errors.Is(err, ErrGossipInClear) {
		t.Errorf("installing a key on gossip in the clear: %v", err)
	}
}
