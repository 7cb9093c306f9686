package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCluster writes a CA, a node certificate for 127.0.0.1 and localhost,
// and client certificates of root and alice into a new directory; the CA
// key goes to a directory of its own.
func newCluster(t *testing.T) (dir, caKey string) {
	t.Helper()
	dir, caKey = t.TempDir(), filepath.Join(t.TempDir(), "ca.key")
	if err := CreateCA(dir, caKey, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := CreateNode(dir, caKey, []string{"127.0.0.1", "localhost"}, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"root", "alice"} {
		if err := CreateClient(dir, caKey, u, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, caKey
}

func TestCreate(t *testing.T) {
	dir, caKey := newCluster(t)
	ca, err := readCert(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("CA: IsCA %v, valid until %v; want a CA valid about 10 years", ca.IsCA, ca.NotAfter)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	node, err := readCert(filepath.Join(dir, NodeFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := node.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("node certificate for %s: %v", host, err)
		}
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: pool, DNSName: "10.0.0.9"}); err == nil {
		t.Error("the node certificate verifies for a host it was not made for")
	}
	if node.Subject.CommonName != RoleNode {
		t.Errorf("node certificate CN %q, want %q", node.Subject.CommonName, RoleNode)
	}
	crt, key := ClientFiles("alice")
	alice, err := readCert(filepath.Join(dir, crt))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || alice.Subject.CommonName != "alice" {
		t.Errorf("alice's certificate: CN %q, %v", alice.Subject.CommonName, err)
	}
	for _, k := range []string{caKey, filepath.Join(dir, NodeKeyFile), filepath.Join(dir, key)} {
		if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", k, fi.Mode().Perm(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		t.Error("the CA key was written into the certificates directory; it was asked elsewhere")
	}
}

// Nothing is overwritten unless asked, and a refusal names the file and
// the flag; bad input is refused with the rule.
func TestCreateRefusals(t *testing.T) {
	dir, caKey := newCluster(t)
	before, _ := os.ReadFile(filepath.Join(dir, NodeFile))
	err := CreateNode(dir, caKey, []string{"localhost"}, Options{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), NodeFile) || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("a second node certificate: %v, want ErrExists naming the file and --overwrite", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, NodeFile)); string(after) != string(before) {
		t.Error("a refused create changed the node certificate")
	}
	if err := CreateCA(dir, caKey, Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("a second CA: %v, want ErrExists", err)
	}
	if err := CreateNode(dir, caKey, []string{"localhost"}, Options{Overwrite: true}); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	for _, u := range []string{"", "../x", "Root", "node", strings.Repeat("a", 64)} {
		if err := CreateClient(dir, caKey, u, Options{}); err == nil {
			t.Errorf("user %q was accepted", u)
		}
	}
	if err := CreateNode(dir, caKey, nil, Options{Overwrite: true}); err == nil {
		t.Error("a node certificate without hosts was accepted")
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if err := CreateCA(t.TempDir(), other, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := CreateNode(dir, other, []string{"localhost"}, Options{Overwrite: true}); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("signing with another CA's key: %v, want a refusal", err)
	}
}

// serve accepts TLS connections on loopback with cfg and sends each
// connection's state to states.
func serve(t *testing.T, cfg *tls.Config) (string, chan tls.ConnectionState) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	states := make(chan tls.ConnectionState, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() == nil {
					states <- tc.ConnectionState()
					io.WriteString(c, "ok")
				}
			}()
		}
	}()
	return ln.Addr().String(), states
}

func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	cfg = cfg.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := io.ReadAll(c); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// Peers, users and anonymous clients are told apart; a server or a
// client certificate of another CA is refused.
func TestHandshakes(t *testing.T) {
	dir, _ := newCluster(t)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, states := serve(t, b.ServerTLS())
	for _, c := range []struct {
		name      string
		cfg       *tls.Config
		peer      bool
		user      string
		anonymous bool
	}{
		{"a peer", b.PeerTLS(), true, "", false},
		{"alice", b.ClientTLS("alice"), false, "alice", false},
		{"a password user", b.ClientTLS("bob"), false, "", true},
	} {
		if _, err := dial(addr, c.cfg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		st := <-states
		if PeerRole(&st) != c.peer || User(&st) != c.user || (len(st.VerifiedChains) == 0) != c.anonymous {
			t.Errorf("%s: peer %v, user %q, verified chains %d", c.name, PeerRole(&st), User(&st), len(st.VerifiedChains))
		}
	}

	strangerDir, _ := newCluster(t)
	stranger, err := Load(strangerDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, stranger.PeerTLS()); err == nil {
		t.Error("a node of another CA's cluster connected (it should not trust our server, nor we its certificate)")
	}
	// Another CA's client certificate, presented to our server by a
	// client that trusts our CA: the server refuses it.
	mixed := b.ClientTLS("")
	mixed.GetClientCertificate = stranger.PeerTLS().GetClientCertificate
	if _, err := dial(addr, mixed); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
}

// Replacing the files rotates the certificates without a restart.
func TestRotation(t *testing.T) {
	dir, caKey := newCluster(t)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.CheckEvery = 0
	addr, states := serve(t, b.ServerTLS())
	first, err := dial(addr, b.ClientTLS("alice"))
	if err != nil {
		t.Fatal(err)
	}
	<-states
	if err := CreateNode(dir, caKey, []string{"127.0.0.1"}, Options{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	second, err := dial(addr, b.ClientTLS("alice"))
	if err != nil {
		t.Fatal(err)
	}
	<-states
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Error("the server still presents the node certificate it was started with")
	}
	// A half-written file keeps the last good certificate in use.
	if err := os.WriteFile(filepath.Join(dir, NodeFile), []byte("-----BEGIN CERT"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := dial(addr, b.ClientTLS("alice"))
	if err != nil {
		t.Fatalf("a broken node certificate file stopped the server: %v", err)
	}
	<-states
	if third.SerialNumber.Cmp(second.SerialNumber) != 0 || b.Err() == nil {
		t.Errorf("after a broken file: serial changed %v, Err %v; want the last good certificate and an error", third.SerialNumber.Cmp(second.SerialNumber) != 0, b.Err())
	}
}
