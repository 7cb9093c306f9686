package certs

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A cluster secret is what proves a peer in a cluster without TLS
// (kvd --insecure): every node reads the same file (kvd
// --cluster-secret-file), sends a digest of it with every request to
// another node, and answers the peer protocol only to requests that carry
// it. It also keys gossip's encryption. It travels, like everything
// without TLS, in the clear (as a digest): whoever can watch the network
// can replay it. It keeps out those who can only reach the port.

// Bounds of a cluster secret's text.
const (
	minSecretBytes = 16
	maxSecretBytes = 4096
)

// CreateClusterSecret writes a new random cluster secret (32 bytes in
// base64) to path.
func CreateClusterSecret(path string, o Options) error {
	if err := o.free(path); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return writeFile(path, []byte(rand.Text()+rand.Text()+"\n"), 0o600)
}

// ClusterSecret is a cluster secret, read by ReadClusterSecret.
type ClusterSecret struct{ text []byte }

// ReadClusterSecret reads the cluster secret of path: its text, without
// surrounding white space, of 16 to 4096 bytes.
func ReadClusterSecret(path string) (*ClusterSecret, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	if n := len(text); n < minSecretBytes || n > maxSecretBytes {
		return nil, fmt.Errorf("certs: cluster secret %s: want %d to %d bytes of text, not %d (kvd cert create-cluster-secret writes one)",
			path, minSecretBytes, maxSecretBytes, n)
	}
	return &ClusterSecret{text: []byte(text)}, nil
}

// Digest is what a node sends to prove it holds the secret: the hex
// SHA-256 of the secret under a fixed label, so the secret itself never
// travels.
func (s *ClusterSecret) Digest() string {
	sum := sha256.Sum256(append([]byte("quorumkv peer secret\x00"), s.text...))
	return hex.EncodeToString(sum[:])
}

// GossipKey is the gossip encryption key derived from the secret (HKDF-
// SHA256), the same on every node that holds it.
func (s *ClusterSecret) GossipKey() []byte {
	key, err := hkdf.Key(sha256.New, s.text, nil, "quorumkv gossip key", 32)
	if err != nil {
		panic(err) // 32 bytes of SHA-256's HKDF never fail
	}
	return key
}

// String hides the secret from logs and %v.
func (s *ClusterSecret) String() string { return "cluster secret (hidden)" }
