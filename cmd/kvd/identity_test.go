package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNode starts a kvd node in-process on free loopback ports, with
// args on top of the defaults.
func testNode(t *testing.T, name, dataDir string, args ...string) (*runningNode, error) {
	t.Helper()
	cfg, err := parse(t, append([]string{"--node-id", name, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Cleanup(n.close)
	}
	return n, err
}

// A data dir restarted under another --node-id is refused, with both
// names and the data dir in the error: it would otherwise register a
// second node (a phantom learner in meta) for one data dir.
func TestRefusesRenamedDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n, err := testNode(t, "alpha", dir)
	if err != nil {
		t.Fatal(err)
	}
	n.close()
	n, err = testNode(t, "beta", dir)
	if err == nil {
		t.Fatalf("kvd started data dir %s of node alpha as node beta", dir)
	}
	for _, want := range []string{`"alpha"`, `"beta"`, dir, "--node-id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	if n, err = testNode(t, "alpha", dir); err != nil {
		t.Fatalf("under its own name again: %v", err)
	}
}

// A data dir founded as its own cluster and restarted with --join to
// another cluster is refused with both cluster IDs in the error, and the
// other cluster's gossip never lists it.
func TestRefusesOtherCluster(t *testing.T) {
	dirA := filepath.Join(t.TempDir(), "a")
	a, err := testNode(t, "a1", dirA)
	if err != nil {
		t.Fatal(err)
	}
	clusterA := a.store.ClusterID()
	a.close()
	b, err := testNode(t, "b1", filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	clusterB := b.store.ClusterID()

	_, err = testNode(t, "a1", dirA, "--join", b.gossip.LocalAddr())
	if err == nil {
		t.Fatalf("kvd started data dir %s of cluster %s with --join to cluster %s", dirA, clusterA, clusterB)
	}
	for _, want := range []string{clusterA, clusterB, dirA} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
	// Gossip needs no more than this to list a node it merged.
	time.Sleep(time.Second)
	for _, m := range b.gossip.Members() {
		if m.NodeID != "b1" {
			t.Errorf("cluster %s's gossip lists %s (%s, cluster %q)", clusterB, m.NodeID, m.State, m.ClusterID)
		}
	}
}
