package certs

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GossipKeyFile holds the keys that encrypt gossip (membership.Config.Keys),
// one base64 key per line: the first seals every message, any of them
// opens one. Every node of a cluster needs the same file in its
// certificates directory.
const GossipKeyFile = "gossip.key"

// CreateGossipKey writes a gossip key file of one new random 32-byte key
// into dir.
func CreateGossipKey(dir string, o Options) error {
	path := filepath.Join(dir, GossipKeyFile)
	if err := o.free(path); err != nil {
		return err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// GossipKeys returns the keys of dir's gossip key file, the sealing one
// first, or none if dir holds no such file.
func (b *Bundle) GossipKeys() ([][]byte, error) {
	path := filepath.Join(b.dir, GossipKeyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			return nil, fmt.Errorf("certs: %s line %d: want a base64 key of 16, 24 or 32 bytes", path, i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("certs: %s holds no key", path)
	}
	return keys, nil
}

// WriteGossipKeys replaces dir's gossip key file with keys, the sealing
// one first (a running node's keyring after a rotation step).
func WriteGossipKeys(dir string, keys [][]byte) error {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return writeFile(filepath.Join(dir, GossipKeyFile), []byte(b.String()), 0o600)
}
