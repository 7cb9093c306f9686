package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Bundle is a certificates directory in use. Every handshake asks it for
// the CA pool and the certificate to present, and it reads a file again
// when the file's size or modification time changed (checked at most once
// per CheckEvery), so that replacing the files rotates certificates
// without a restart. A file that fails to load (half written, or
// not matching its key) leaves the one loaded before in use, and Err says
// why until a later check loads it.
type Bundle struct {
	dir string
	// CheckEvery bounds how often the files are looked at; 0 is every
	// handshake (tests).
	CheckEvery time.Duration

	mu      sync.Mutex
	ca      loaded[*x509.CertPool]
	node    loaded[*tls.Certificate]
	clients map[string]*loaded[*tls.Certificate]
	err     error
}

// loaded is one file (or certificate and key pair) as last read.
type loaded[T any] struct {
	val   T
	stamp string // sizes and modification times of the files read
	// checked is when the files were last looked at.
	checked time.Time
}

// due reports whether l's files are to be looked at again, and if so
// notes that they are now.
func (l *loaded[T]) due(every time.Duration) bool {
	now := time.Now()
	if now.Sub(l.checked) < every {
		return false
	}
	l.checked = now
	return true
}

// DefaultCheckEvery is how often a Bundle looks at its files.
const DefaultCheckEvery = 5 * time.Second

// Load opens certificates directory dir: it must hold the CA certificate;
// the node certificate and client certificates are read when first asked
// for (a client machine holds no node certificate).
func Load(dir string) (*Bundle, error) {
	b := &Bundle{dir: dir, CheckEvery: DefaultCheckEvery, clients: map[string]*loaded[*tls.Certificate]{}}
	if err := b.reloadCA(); err != nil {
		return nil, err
	}
	return b, nil
}

// Dir is the certificates directory.
func (b *Bundle) Dir() string { return b.dir }

// Err is the last error reloading a file that had changed, or nil.
func (b *Bundle) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// HasNode reports whether the directory holds a node certificate and key
// that load.
func (b *Bundle) HasNode() error {
	_, err := b.nodeCert()
	return err
}

// pool returns the CA pool, reloaded if its file changed.
func (b *Bundle) pool() *x509.CertPool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ca.due(b.CheckEvery) {
		b.note(b.reloadCALocked())
	}
	return b.ca.val
}

func (b *Bundle) note(err error) {
	if err != nil {
		b.err = err
	}
}

func (b *Bundle) reloadCA() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reloadCALocked()
}

func (b *Bundle) reloadCALocked() error {
	path := filepath.Join(b.dir, CAFile)
	st, err := stamp(path)
	if err != nil {
		return fmt.Errorf("certs: the CA certificate: %w", err)
	}
	if st == b.ca.stamp {
		return nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	b.ca = loaded[*x509.CertPool]{val: pool, stamp: st, checked: time.Now()}
	b.err = nil
	return nil
}

// nodeCert returns the node certificate, reloaded if its files changed.
func (b *Bundle) nodeCert() (*tls.Certificate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pairLocked(&b.node, NodeFile, NodeKeyFile)
}

// clientCert returns user's client certificate, reloaded if its files
// changed.
func (b *Bundle) clientCert(user string) (*tls.Certificate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.clients[user]
	if l == nil {
		l = &loaded[*tls.Certificate]{}
		b.clients[user] = l
	}
	crt, key := ClientFiles(user)
	return b.pairLocked(l, crt, key)
}

// pairLocked loads a certificate and key pair into l if it has none or,
// when due, if its files changed. A failed reload keeps the pair loaded
// before. Locked.
func (b *Bundle) pairLocked(l *loaded[*tls.Certificate], crtFile, keyFile string) (*tls.Certificate, error) {
	if l.val != nil && !l.due(b.CheckEvery) {
		return l.val, nil
	}
	crtPath, keyPath := filepath.Join(b.dir, crtFile), filepath.Join(b.dir, keyFile)
	st1, err1 := stamp(crtPath)
	st2, err2 := stamp(keyPath)
	if err := errors.Join(err1, err2); err != nil {
		if l.val != nil {
			b.note(err)
			return l.val, nil
		}
		return nil, fmt.Errorf("certs: %w", err)
	}
	if st := st1 + "|" + st2; st != l.stamp || l.val == nil {
		pair, err := tls.LoadX509KeyPair(crtPath, keyPath)
		if err != nil {
			err = fmt.Errorf("certs: %s and %s: %w", crtPath, keyPath, err)
			if l.val != nil {
				b.note(err)
				return l.val, nil
			}
			return nil, err
		}
		*l = loaded[*tls.Certificate]{val: &pair, stamp: st, checked: time.Now()}
		b.err = nil
	}
	return l.val, nil
}

// stamp is a file's size and modification time.
func stamp(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano()), nil
}

// ServerTLS is the listener's configuration: it presents the node
// certificate and asks callers for a certificate of the cluster's CA,
// which clients may omit (they may use passwords) and peers may not
// (PeerRole checks, per call). HTTP/2 and HTTP/1.1.
func (b *Bundle) ServerTLS() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := b.nodeCert()
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		c.ClientCAs = b.pool()
		c.ClientAuth = tls.VerifyClientCertIfGiven
		return c, nil
	}
	return base
}

// PeerTLS is a node's configuration for dialing its peers: it presents
// the node certificate and checks the peer's against the CA.
func (b *Bundle) PeerTLS() *tls.Config {
	return b.clientTLS(b.nodeCert)
}

// ClientTLS is a client's configuration: it checks the server's
// certificate against the CA and presents user's client certificate if
// the directory holds one (user "" presents none).
func (b *Bundle) ClientTLS(user string) *tls.Config {
	return b.clientTLS(func() (*tls.Certificate, error) {
		if user == "" {
			return &tls.Certificate{}, nil
		}
		crt, _ := ClientFiles(user)
		if _, err := os.Stat(filepath.Join(b.dir, crt)); errors.Is(err, os.ErrNotExist) {
			return &tls.Certificate{}, nil // a password user
		}
		return b.clientCert(user)
	})
}

// clientTLS checks the server's chain against the CA pool as it is at
// each handshake (crypto/tls reads RootCAs once per Config, so the check
// is done here, by VerifyConnection, for rotation to take effect) and
// presents what cert returns.
func (b *Bundle) clientTLS(cert func() (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		// No NextProtos: the HTTP client offers the protocols it speaks.
		MinVersion: tls.VersionTLS12,
		// Verified by VerifyConnection below, against the current pool:
		// not skipped.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("certs: the server presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: b.pool(), DNSName: cs.ServerName, Intermediates: x509.NewCertPool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() },
	}
}

// PeerRole reports whether a connection's caller presented a node
// certificate of the cluster's CA: a verified chain whose leaf names
// RoleNode.
func PeerRole(cs *tls.ConnectionState) bool {
	return cs != nil && len(cs.VerifiedChains) > 0 && cs.VerifiedChains[0][0].Subject.CommonName == RoleNode
}

// User returns the user a connection's client certificate names ("" if
// it presented none, or a node's).
func User(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return ""
	}
	if cn := cs.VerifiedChains[0][0].Subject.CommonName; cn != RoleNode {
		return cn
	}
	return ""
}
