package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// File names in a certificates directory.
const (
	CAFile      = "ca.crt"
	CAKeyFile   = "ca.key"
	NodeFile    = "node.crt"
	NodeKeyFile = "node.key"
)

// RoleNode is the Common Name of every node certificate: the peer
// protocol accepts only callers presenting one.
const RoleNode = "node"

// Lifetimes (CockroachDB's): a CA outlives the certificates it signs.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultCertLifetime = 5 * 365 * 24 * time.Hour
)

// ErrExists: a file to be written exists already, and overwriting was not
// asked for; nothing was written.
var ErrExists = errors.New("certs: file exists")

// ClientFiles returns the certificate and key file names of user's client
// certificate.
func ClientFiles(user string) (crt, key string) {
	return "client." + user + ".crt", "client." + user + ".key"
}

// UserName is what a client certificate's user may be called: the names
// kvctl user add takes (kv/catalog.CheckUserName), and nothing that could
// escape the directory.
var UserName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Options are the choices every create call takes.
type Options struct {
	// Lifetime of the certificate; the defaults above if 0.
	Lifetime time.Duration
	// Overwrite replaces files that exist; otherwise their presence is
	// ErrExists, and nothing is written.
	Overwrite bool
	// Now is the time certificates start being valid (time.Now if zero;
	// tests set it).
	Now time.Time
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// CreateCA writes a new CA: its certificate into certsDir (CAFile) and its
// key to caKey.
func CreateCA(certsDir, caKey string, o Options) error {
	crtPath := filepath.Join(certsDir, CAFile)
	if err := o.free(crtPath, caKey); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl, err := template(pkix.Name{CommonName: "quorumkv CA", Organization: []string{"quorumkv"}}, o, DefaultCALifetime)
	if err != nil {
		return err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(certsDir, 0o755); err != nil {
		return err
	}
	if err := writeKey(caKey, key); err != nil {
		return err
	}
	return writePEM(crtPath, "CERTIFICATE", der, 0o644)
}

// CreateNode writes certsDir's node certificate (NodeFile, NodeKeyFile),
// signed by the CA of certsDir and caKey, for hosts: DNS names and IP
// addresses, the ones clients and peers dial the node at (the TLS
// handshake checks them). It is valid as a server and as a client (a node
// dials its peers with it) and names RoleNode.
func CreateNode(certsDir, caKey string, hosts []string, o Options) error {
	if len(hosts) == 0 {
		return errors.New("certs: a node certificate needs at least one host name or address (what clients and peers dial)")
	}
	tmpl, err := template(pkix.Name{CommonName: RoleNode, Organization: []string{"quorumkv"}}, o, DefaultCertLifetime)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return sign(certsDir, caKey, filepath.Join(certsDir, NodeFile), filepath.Join(certsDir, NodeKeyFile), tmpl, o)
}

// CreateClient writes certsDir's client certificate of user
// (ClientFiles), signed by the CA of certsDir and caKey: its Common Name
// is the user, and it is valid as a client only.
func CreateClient(certsDir, caKey, user string, o Options) error {
	if !UserName.MatchString(user) {
		return fmt.Errorf("certs: user name %q: want %s", user, UserName)
	}
	if user == RoleNode {
		return fmt.Errorf("certs: %q is the nodes' role, not a user name", user)
	}
	tmpl, err := template(pkix.Name{CommonName: user, Organization: []string{"quorumkv"}}, o, DefaultCertLifetime)
	if err != nil {
		return err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	crt, key := ClientFiles(user)
	return sign(certsDir, caKey, filepath.Join(certsDir, crt), filepath.Join(certsDir, key), tmpl, o)
}

// sign writes a new key and tmpl signed by the CA to crtPath and keyPath.
func sign(certsDir, caKey, crtPath, keyPath string, tmpl *x509.Certificate, o Options) error {
	if err := o.free(crtPath, keyPath); err != nil {
		return err
	}
	ca, err := readCert(filepath.Join(certsDir, CAFile))
	if err != nil {
		return fmt.Errorf("certs: the CA certificate (kvd cert create-ca writes it): %w", err)
	}
	signer, err := readKey(caKey)
	if err != nil {
		return fmt.Errorf("certs: the CA key: %w", err)
	}
	if !publicKeysEqual(ca.PublicKey, signer.Public()) {
		return fmt.Errorf("certs: the CA key %s does not belong to the CA certificate %s", caKey, filepath.Join(certsDir, CAFile))
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter // a certificate never outlives its CA
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), signer)
	if err != nil {
		return err
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writePEM(crtPath, "CERTIFICATE", der, 0o644)
}

// template is a certificate valid from o's now (less a minute, for clocks
// a little apart) for o's lifetime or def.
func template(subject pkix.Name, o Options, def time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	life := o.Lifetime
	if life == 0 {
		life = def
	}
	if life < 0 {
		return nil, fmt.Errorf("certs: lifetime %v is negative", life)
	}
	now := o.now()
	return &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(life),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, nil
}

// free returns ErrExists, naming the file, if one of paths exists and o
// does not overwrite.
func (o Options) free(paths ...string) error {
	if o.Overwrite {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%w: %s (pass --overwrite to replace it)", ErrExists, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// writePEM writes one PEM block to path (writeFile).
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// writeFile writes data to path through a temporary file renamed into
// place, so a reader never sees half a file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: a %T cannot sign", path, k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
