package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/server"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// startNode starts a one-node cluster in memory, served over h2c on a
// free loopback port as kvd serves it, with limits (catalog.DefaultLimits
// when zero), and returns its host:port once the default keyspace takes
// writes.
func startNode(t *testing.T, limits catalog.Limits) string {
	t.Helper()
	if limits == (catalog.Limits{}) {
		limits = catalog.DefaultLimits()
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	addr := srv.Listener.Addr().String()
	reg := prometheus.NewRegistry()
	m := metrics.NewMetrics(reg)
	st, err := store.OpenStore(db, store.StoreConfig{TickInterval: 10 * time.Millisecond, Logger: quiet, Seed: 1, Metrics: m,
		Self: catalog.NodeDescriptor{Name: "n1", Addr: addr, Zone: "z1", Weight: 1}}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n, err := kv.NewNode(st, kv.NodeConfig{Limits: limits, Zone: "z1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	s := server.NewServer(n, server.ServerInfo{NodeName: "n1", Advertise: addr}, m, reg)
	t.Cleanup(s.StopPeers)
	srv.Config.Handler = s
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	ep := strings.TrimPrefix(srv.URL, "http://")
	// A fresh node elects itself in every range within a few ticks.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, errOut := kvctl(t, "--endpoints", ep, "put", "kvctl-test-ready", "1")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the test node takes no writes: exit %d: %s", code, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, errOut := kvctl(t, "--endpoints", ep, "del", "kvctl-test-ready"); code != 0 {
		t.Fatalf("del: exit %d: %s", code, errOut)
	}
	return ep
}

func TestStartNode(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	if code, out, errOut := kvctl(t, "--endpoints", ep, "put", "a", "b"); code != 0 || out != "OK\n" {
		t.Fatalf("put: exit %d, %q, %s", code, out, errOut)
	}
}
