package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/certs"
)

// A secure cluster made with kvd cert alone: 3 nodes with --certs-dir
// gossip with a gossip key, serve TLS and speak mutual TLS to each other
// (a raft keyspace of 3 replicas takes writes, so its peer traffic
// flows); kvctl works with --certs-dir and fails without it; auth is on
// from the founding: a client without certificate or token is refused,
// and a user with read on orders gets but cannot put, before and after a
// node's restart; status says
// TLS is on; the gossip key rotates while the cluster runs (kvctl cluster
// gossip-key); a node killed and restarted rejoins and serves; the peer
// protocol refuses a caller that presents a user's certificate instead of
// a node's, or none.
func TestSecureCluster(t *testing.T) {
	dir, caKey := filepath.Join(t.TempDir(), "certs"), filepath.Join(t.TempDir(), "ca.key")
	for _, args := range [][]string{
		{"cert", "create-ca", "--certs-dir", dir, "--ca-key", caKey},
		{"cert", "create-node", "--certs-dir", dir, "--ca-key", caKey, "127.0.0.1", "localhost"},
		{"cert", "create-client", "--certs-dir", dir, "--ca-key", caKey, "root"},
		{"cert", "create-gossip-key", "--certs-dir", dir},
	} {
		if out, err := exec.Command(bin.kvd, args...).CombinedOutput(); err != nil {
			t.Fatalf("kvd %v: %v\n%s", args, err, out)
		}
	}
	nodes := startCluster(t, 3, "--certs-dir", dir)
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "sec", "--mode", "raft", "--replicas", "3", "--ranges", "2")
	n1.must(0, "-k", "sec", "put", "phone", "sold to alice")
	if got := strings.TrimSpace(nodes[2].must(0, "-k", "sec", "get", "phone")); got != "sold to alice" {
		t.Fatalf("get through n3 = %q", got)
	}

	// Authentication is on from the founding: a client with neither a
	// certificate nor a token is refused (kvctl signs in with root's
	// certificate unless told another user).
	if code, _, errOut := n1.kvctl("", "--user", "nobody", "-k", "sec", "get", "phone"); code != 1 || !strings.Contains(errOut, "authentication is on") {
		t.Errorf("a client without certificate or token: exit %d, want 1 saying authentication is on:\n%s", code, errOut)
	}
	// Root turns auth off and on again with its client certificate alone.
	n1.must(0, "auth", "disable")
	waitFor(t, "an anonymous get with auth off", func() bool {
		code, _, _ := nodes[1].kvctl("", "--user", "nobody", "-k", "sec", "get", "phone")
		return code == 0
	})
	n1.must(0, "auth", "enable")
	waitFor(t, "an anonymous get refused with auth on again (n2 applies the change a moment later)", func() bool {
		code, _, errOut := nodes[1].kvctl("", "--user", "nobody", "-k", "sec", "get", "phone")
		return code == 1 && strings.Contains(errOut, "authentication is on")
	})
	// A user with read on orders can get but not put, through any node.
	n1.must(0, "keyspace", "create", "orders", "--mode", "raft", "--replicas", "3", "--ranges", "2")
	n1.must(0, "-k", "orders", "put", "phone", "in stock")
	n1.must(0, "role", "add", "reader")
	n1.must(0, "role", "grant", "reader", "orders", "read")
	n1.must(0, "user", "add", "alice", "--new-password", "alice-pw", "--roles", "reader")
	alice := []string{"--user", "alice", "--password", "alice-pw", "-k", "orders"}
	if got := strings.TrimSpace(nodes[2].must(0, append(alice, "get", "phone")...)); got != "in stock" {
		t.Errorf("alice's get through n3 = %q", got)
	}
	if code, _, errOut := nodes[2].kvctl("", append(alice, "put", "phone", "sold to alice")...); code != 1 || !strings.Contains(errOut, "alice needs write on keyspace orders") {
		t.Errorf("alice's put: exit %d, want 1 naming the write permission she lacks:\n%s", code, errOut)
	}
	if code, _, errOut := n1.kvctl("", "--user", "alice", "--password", "wrong", "-k", "orders", "get", "phone"); code != 1 || !strings.Contains(errOut, "wrong user name or password") {
		t.Errorf("a wrong password: exit %d:\n%s", code, errOut)
	}
	if got := strings.TrimSpace(n1.must(0, "-k", "orders", "get", "phone")); got != "in stock" {
		t.Errorf("after alice's refused put, orders/phone = %q", got)
	}

	if out := n1.must(0, "cluster", "status"); !strings.Contains(out, "TLS on, auth on") {
		t.Errorf("kvctl cluster status does not say TLS and auth are on:\n%s", out)
	}
	cl, base := n1.httpClient()
	resp, err := cl.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "TLS on") || !strings.Contains(string(page), "auth on") {
		t.Errorf("the console does not say TLS and auth are on")
	}
	// The console asks every other node for its report over TLS, with the
	// viewer's token.
	waitFor(t, "n1's console to have every node's report", func() bool {
		resp, err := cl.Get(base + "/console.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct {
			Health struct {
				NodesAlive int `json:"nodes_alive"`
				Unreported int `json:"nodes_unreported"`
			} `json:"health"`
		}
		return json.NewDecoder(resp.Body).Decode(&v) == nil && v.Health.NodesAlive == 3 && v.Health.Unreported == 0
	})

	// The gossip key rotates while the cluster runs: install a new key on
	// every node, seal with it, drop the old one; the nodes stay alive to
	// each other, and the restart below reads the new key from gossip.key.
	oldKey, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := oldKey.GossipKeys()
	if err != nil || len(old) != 1 {
		t.Fatalf("gossip.key: %d keys, %v", len(old), err)
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	freshB64, oldB64 := base64.StdEncoding.EncodeToString(fresh), base64.StdEncoding.EncodeToString(old[0])
	for _, step := range [][]string{{"install", freshB64}, {"use", freshB64}, {"remove", oldB64}} {
		out := n1.must(0, append([]string{"cluster", "gossip-key"}, step...)...)
		if strings.Count(out, "\n") != 4 || strings.Contains(out, "FAILED") {
			t.Fatalf("gossip-key %s: want a line per node:\n%s", step[0], out)
		}
	}
	sum := sha256.Sum256(fresh)
	if out := n1.must(0, "cluster", "gossip-key", "list"); strings.Count(out, hex.EncodeToString(sum[:8])) != 3 || strings.Contains(out, ",") {
		t.Fatalf("after the rotation every node should hold the new key alone:\n%s", out)
	}
	time.Sleep(2 * time.Second) // several gossip rounds with the new key
	if out := n1.must(0, "cluster", "members"); strings.Count(out, " alive") != 3 {
		t.Fatalf("after the rotation, members:\n%s", out)
	}

	// A node killed and restarted rejoins over mutual TLS and serves.
	nodes[1].kill()
	n1.must(0, "-k", "sec", "put", "phone", "sold to bob")
	// A gossip key step with a node down says which, and fails.
	if code, out, errOut := n1.kvctl("", "cluster", "gossip-key", "list"); code != 1 || !strings.Contains(out+errOut, "n2") {
		t.Errorf("gossip-key list with n2 down: exit %d, want 1 naming n2:\n%s%s", code, out, errOut)
	}
	nodes[1] = restartKVD(t, nodes[1], "--node-id", "n2", "--zone", "z2", "--join", n1.gossip, "--certs-dir", dir)
	waitFor(t, "n2 to read bob's sale after its restart", func() bool {
		code, out, _ := nodes[1].kvctl("", "-k", "sec", "get", "phone")
		return code == 0 && strings.TrimSpace(out) == "sold to bob"
	})
	// The users and roles survive in meta: alice logs in at the restarted
	// node, and still may not write.
	if got := strings.TrimSpace(nodes[1].must(0, append(alice, "get", "phone")...)); got != "in stock" {
		t.Errorf("alice's get through the restarted n2 = %q", got)
	}
	if code, _, _ := nodes[1].kvctl("", append(alice, "put", "phone", "sold to alice")...); code != 1 {
		t.Errorf("alice's put through the restarted n2: exit %d, want 1", code)
	}

	// Without --certs-dir, kvctl speaks plaintext to a TLS port: refused.
	cmd := exec.Command(bin.kvctl, "--endpoints", n1.addr, "--timeout", "2s", "-k", "sec", "get", "phone")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Errorf("a plaintext kvctl read from a TLS node:\n%s", out.String())
	}

	// A user's certificate does not open the peer protocol.
	b, err := certs.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  string
		cfg  *tls.Config
		code connect.Code
	}{
		{"root's client certificate", b.ClientTLS("root"), connect.CodePermissionDenied},
		{"no certificate", b.ClientTLS(""), connect.CodePermissionDenied},
	} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.cfg}}
		peer := peerv1connect.NewPeerClient(hc, "https://"+n1.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := peer.Acceptors(ctx, connect.NewRequest(&peerv1.AcceptorsRequest{}))
		cancel()
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != c.code {
			t.Errorf("a peer call with %s: %v, want %v", c.who, err, c.code)
		}
	}
}

// A cluster without TLS whose nodes share a cluster secret (kvd cert
// create-cluster-secret): they gossip (encrypted with the key derived
// from it), replicate and forward to each other, while a caller without
// the secret is refused by the peer protocol. Users and auth work as with
// TLS, by password.
func TestClusterSecret(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "cluster.secret")
	if out, err := exec.Command(bin.kvd, "cert", "create-cluster-secret", secret).CombinedOutput(); err != nil {
		t.Fatalf("kvd cert create-cluster-secret: %v\n%s", err, out)
	}
	nodes := startCluster(t, 3, "--cluster-secret-file", secret)
	n1 := nodes[0]
	n1.must(0, "keyspace", "create", "orders", "--mode", "raft", "--replicas", "3", "--ranges", "2")
	n1.must(0, "-k", "orders", "put", "phone", "in stock")
	if got := strings.TrimSpace(nodes[2].must(0, "-k", "orders", "get", "phone")); got != "in stock" {
		t.Fatalf("get through n3 = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := peerv1connect.NewPeerClient(http.DefaultClient, "http://"+n1.addr).Acceptors(ctx, connect.NewRequest(&peerv1.AcceptorsRequest{}))
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "cluster secret") {
		t.Errorf("a peer call without the cluster secret: %v, want PermissionDenied naming the cluster secret", err)
	}

	// Auth by password: root gets one, auth goes on, a reader reads.
	root := []string{"--user", "root", "--password", "root-pw"}
	n1.must(0, "user", "passwd", "root", "--new-password", "root-pw")
	n1.must(0, "role", "add", "reader")
	n1.must(0, "role", "grant", "reader", "orders", "read")
	n1.must(0, "user", "add", "alice", "--new-password", "alice-pw", "--roles", "reader")
	n1.must(0, "auth", "enable")
	if out := nodes[1].must(0, append(root, "cluster", "status")...); !strings.Contains(out, "peers prove the cluster secret), auth on") {
		t.Errorf("kvctl cluster status does not say the peers prove the secret and auth is on:\n%s", out)
	}
	if code, _, errOut := nodes[1].kvctl("", "-k", "orders", "get", "phone"); code != 1 || !strings.Contains(errOut, "authentication is on") {
		t.Errorf("an anonymous get with auth on: exit %d:\n%s", code, errOut)
	}
	alice := []string{"--user", "alice", "--password", "alice-pw", "-k", "orders"}
	if got := strings.TrimSpace(nodes[1].must(0, append(alice, "get", "phone")...)); got != "in stock" {
		t.Errorf("alice's get = %q", got)
	}
	if code, _, errOut := nodes[1].kvctl("", append(alice, "put", "phone", "sold")...); code != 1 || !strings.Contains(errOut, "needs write") {
		t.Errorf("alice's put: exit %d:\n%s", code, errOut)
	}
	nodes[2].must(0, append(root, "-k", "orders", "put", "phone", "sold to root")...)
	nodes[2].must(0, append(root, "auth", "disable")...)
	if got := strings.TrimSpace(nodes[1].must(0, "-k", "orders", "get", "phone")); got != "sold to root" {
		t.Errorf("an anonymous get with auth off again = %q", got)
	}
}
