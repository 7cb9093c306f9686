package membership

import (
	"log/slog"
	"strings"
	"testing"
	"time"

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
	cfg := LoopbackTimings()
	cfg.Meta = Meta{NodeID: id, Addr: "127.0.0.1:70" + id[len(id)-1:], Zone: zone, Weight: 1, Version: "test"}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = quietLogger()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
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
