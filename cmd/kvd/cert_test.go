package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/certs"
)

// kvd cert writes a working set of certificates: a node's, loaded, is
// presented over TLS and verified by a client of the same CA; list shows
// them; a second create-ca is refused and changes nothing.
func TestCertCommands(t *testing.T) {
	dir, key := filepath.Join(t.TempDir(), "certs"), filepath.Join(t.TempDir(), "ca.key")
	kvd := func(args ...string) (int, string) {
		var out, errs bytes.Buffer
		code := run(append([]string{"kvd", "cert"}, args...), &out, &errs, nil)
		return code, out.String() + errs.String()
	}
	for _, args := range [][]string{
		{"create-ca", "--certs-dir", dir, "--ca-key", key},
		{"create-node", "--certs-dir", dir, "--ca-key", key, "127.0.0.1", "localhost"},
		{"create-client", "--certs-dir", dir, "--ca-key", key, "root"},
	} {
		if code, out := kvd(args...); code != 0 {
			t.Fatalf("kvd cert %v: exit %d\n%s", args, code, out)
		}
	}
	code, out := kvd("list", "--certs-dir", dir)
	for _, want := range []string{"ca.crt", "node.crt", "localhost,127.0.0.1", "client.root.crt", "root"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("kvd cert list: exit %d, no %q in\n%s", code, want, out)
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if code, out := kvd("create-ca", "--certs-dir", dir, "--ca-key", key); code == 0 || !strings.Contains(out, "--overwrite") {
		t.Errorf("a second create-ca: exit %d, %s; want a refusal naming --overwrite", code, out)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, certs.CAFile)); !bytes.Equal(before, after) {
		t.Error("a refused create-ca changed ca.crt")
	}
	if code, out := kvd("create-node", "--certs-dir", dir); code == 0 || !strings.Contains(out, "ca-key") {
		t.Errorf("create-node without --ca-key: exit %d, %s", code, out)
	}

	b, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", b.ServerTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg := b.ClientTLS("root")
	cfg.ServerName = "localhost"
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("a client of the CA cannot reach a node with its certificate: %v", err)
	}
	c.Close()
}

// Plaintext is served on loopback only, unless --insecure with a cluster
// secret; --certs-dir needs the node's certificate; the two flags do not
// go together. Each refusal names what to pass.
func TestSecureUnlessTold(t *testing.T) {
	dir, key := filepath.Join(t.TempDir(), "certs"), filepath.Join(t.TempDir(), "ca.key")
	if err := certs.CreateCA(dir, key, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	secret, short := filepath.Join(t.TempDir(), "cluster.secret"), filepath.Join(t.TempDir(), "short.secret")
	if err := certs.CreateClusterSecret(secret, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string // "" if accepted
	}{
		{[]string{"--listen", "127.0.0.1:7070"}, ""},
		{[]string{"--listen", "localhost:7070"}, ""},
		{[]string{"--listen", "[::1]:7070"}, ""},
		{[]string{"--listen", "0.0.0.0:7070"}, "--insecure"},
		{[]string{"--listen", ":7070"}, "--insecure"},
		{[]string{"--listen", "10.1.2.3:7070"}, "--certs-dir"},
		{[]string{"--listen", "10.1.2.3:7070", "--insecure"}, "kvd cert create-cluster-secret"},
		{[]string{"--listen", "10.1.2.3:7070", "--insecure", "--cluster-secret-file", secret}, ""},
		{[]string{"--listen", "10.1.2.3:7070", "--insecure", "--cluster-secret-file", short}, "16 to 4096 bytes"},
		{[]string{"--cluster-secret-file", filepath.Join(dir, "none")}, "--cluster-secret-file"},
		{[]string{"--certs-dir", dir}, "kvd cert create-node"},
		{[]string{"--certs-dir", filepath.Join(dir, "none")}, "--certs-dir"},
		{[]string{"--certs-dir", dir, "--insecure"}, "choose one"},
	} {
		_, err := parse(t, c.args...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
	// Without TLS, the secret keys gossip: every node holding it derives
	// the same key, and no other.
	a, errA := parse(t, "--cluster-secret-file", secret)
	b, errB := parse(t, "--cluster-secret-file", secret, "--node-id", "other")
	if errA != nil || errB != nil || len(a.gossipKeys) != 1 || len(a.gossipKeys[0]) != 32 || !bytes.Equal(a.gossipKeys[0], b.gossipKeys[0]) {
		t.Errorf("gossip keys of two nodes with one secret: %v %v %x %x", errA, errB, a.gossipKeys, b.gossipKeys)
	}
	if a.secret.Digest() == "" || strings.Contains(fmt.Sprint(a.secret), strings.TrimSpace(readFile(t, secret))) {
		t.Errorf("the secret shows in its digest or in %%v: %v", a.secret)
	}
	if err := certs.CreateNode(dir, key, []string{"127.0.0.1"}, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := parse(t, "--listen", "0.0.0.0:7070", "--certs-dir", dir); err != nil || cfg.certs == nil || cfg.gossipKeys != nil {
		t.Errorf("--certs-dir with a node certificate, on 0.0.0.0: %v", err)
	}
	// Gossip off loopback needs a gossip key with TLS on.
	if _, err := parse(t, "--certs-dir", dir, "--gossip", "10.1.2.3:7946"); err == nil || !strings.Contains(err.Error(), "kvd cert create-gossip-key") {
		t.Errorf("--gossip off loopback without a gossip key: %v, want an error naming kvd cert create-gossip-key", err)
	}
	if err := certs.CreateGossipKey(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := parse(t, "--certs-dir", dir, "--gossip", "10.1.2.3:7946"); err != nil || len(cfg.gossipKeys) != 1 || len(cfg.gossipKeys[0]) != 32 {
		t.Errorf("--gossip off loopback with a gossip key: %v (%d keys)", err, len(cfg.gossipKeys))
	}
	if err := os.WriteFile(filepath.Join(dir, certs.GossipKeyFile), []byte("not base64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parse(t, "--certs-dir", dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a broken gossip.key: %v, want an error naming its line", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
