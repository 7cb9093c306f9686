package main

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// The READS column says how a keyspace confirms a linearizable read:
// raft and paxos keyspaces from the leader's lease unless created with
// --read-lease=false.
func TestReadsName(t *testing.T) {
	for _, c := range []struct {
		ks   *v1.Keyspace
		want string
	}{
		{&v1.Keyspace{Mode: v1.Mode_MODE_RAFT}, "lease"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_RAFT, NoReadLease: true}, "quorum-round"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_PAXOS}, "lease"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_PAXOS, NoReadLease: true}, "quorum-round"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_EVENTUAL}, "r-replicas"},
	} {
		if got := readsName(c.ks); got != c.want {
			t.Errorf("%v, NoReadLease %v: READS %q, want %q", c.ks.Mode, c.ks.NoReadLease, got, c.want)
		}
	}
}

// keyspace drop asks on a terminal, and needs --force (or --yes, -y)
// otherwise: without it, nothing is dropped and the exit is 2.
func TestKeyspaceDropConfirms(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	create := func(name string) {
		t.Helper()
		if code, _, errOut := kvctl(t, "--endpoints", ep, "keyspace", "create", name, "--mode", "raft", "--replicas", "1", "--ranges", "1"); code != 0 {
			t.Fatalf("create %s: exit %d, %s", name, code, errOut)
		}
		if code, _, errOut := kvctl(t, "--endpoints", ep, "-k", name, "put", "k", "v"); code != 0 {
			t.Fatalf("put in %s: exit %d, %s", name, code, errOut)
		}
	}
	exists := func(name string) bool {
		t.Helper()
		code, _, _ := kvctl(t, "--endpoints", ep, "keyspace", "describe", name)
		return code == 0
	}
	create("orders")
	code, out, errOut := kvctl(t, "--endpoints", ep, "keyspace", "drop", "orders")
	if code != 2 || !strings.Contains(errOut, "standard input is not a terminal") || !strings.Contains(errOut, "--force") {
		t.Errorf("drop without --force, not on a terminal: exit %d, %s%s", code, out, errOut)
	}
	if !exists("orders") {
		t.Fatal("drop without --force dropped the keyspace")
	}
	for _, force := range []string{"--force", "--yes", "-y"} {
		if code, out, errOut := kvctl(t, "--endpoints", ep, "keyspace", "drop", "orders", force); code != 0 || out != "OK\n" {
			t.Errorf("drop %s: exit %d, %s%s", force, code, out, errOut)
		}
		if exists("orders") {
			t.Errorf("drop %s left the keyspace", force)
		}
		create("orders")
	}

	// On a terminal: anything but y or yes keeps it.
	for _, c := range []struct {
		answer string
		drops  bool
	}{{"n\n", false}, {"\n", false}, {"yess\n", false}, {"y\n", true}, {"YES\n", true}} {
		master, tty := openPTY(t)
		if _, err := master.WriteString(c.answer); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{"kvctl", "--endpoints", ep, "keyspace", "drop", "orders"}, tty, &stdout, &stderr)
		if !strings.Contains(stderr.String(), "drop keyspace orders and all its data? [y/N] ") {
			t.Errorf("answer %q: no question asked: %s", c.answer, stderr.String())
		}
		if c.drops {
			if code != 0 || exists("orders") {
				t.Errorf("answer %q: exit %d, %s; want orders dropped", c.answer, code, stderr.String())
			}
			create("orders")
		} else if code != 1 || !exists("orders") || !strings.Contains(stderr.String(), "keyspace orders not dropped") {
			t.Errorf("answer %q: exit %d, %s; want orders kept, exit 1", c.answer, code, stderr.String())
		}
	}
}
