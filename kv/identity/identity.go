package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
)

// A node's identity is chosen once, at its very first start, and kept in
// its data dir: a random UUID that names this data dir's node to the
// catalog, and a random secret that proves it. A node's name (--node-id)
// and numeric ID do not identify it: a node whose data dir was lost comes
// back under the same name with an empty log and HardState, and must not
// be taken for the node that voted and acknowledged under that name (it
// would allow two leaders in one term and lose committed entries). With a
// new UUID it joins as a new node, with a new ID; the old ID stays in the
// catalog, dead.
//
// The catalog keeps each node's UUID and the SHA-256 of its secret. A
// request to change a known node's address, zone or weight must carry
// the secret, so nobody else on the network can redirect a node's
// traffic. The secret never enters meta's log: the node that proposes
// the change (meta's leader) puts its hash there.

// Identity is who this node is.
type Identity struct {
	// UUID is a random (version 4) UUID in canonical form.
	UUID string
	// Secret is SecretBytes random bytes. It leaves the node only in its
	// own Join requests.
	Secret []byte
	// Name is the --node-id the data dir was created with; the node
	// refuses to start under another.
	Name string
	// NodeID and ClusterID are what the node was given when it founded or
	// joined a cluster: 0 and "" before.
	NodeID    uint64
	ClusterID string
}

// SecretBytes is the length of a node's secret.
const SecretBytes = 32

// SecretHash is the hex SHA-256 of the identity's secret, as the catalog
// keeps it.
func (id Identity) SecretHash() string { return HashSecret(id.Secret) }

func HashSecret(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

// Errors of a data dir that is not this node's to start.
var (
	// ErrWrongNode: the data dir belongs to a node of another name.
	ErrWrongNode = errors.New("kv: the data dir belongs to another node")
	// ErrNoIdentity: the data dir belongs to a cluster but holds no
	// identity (an older kvd wrote it).
	ErrNoIdentity = errors.New("kv: the data dir has no node identity")
	// ErrOtherCluster: the node and the one it talks to belong to
	// different clusters.
	ErrOtherCluster = errors.New("kv: another cluster")
)

// identityRecord is the identity as stored under storage.IdentityKey.
type identityRecord struct {
	UUID   string `json:"uuid"`
	Secret []byte `json:"secret"`
	Name   string `json:"name"`
}

// Open returns the identity kept in db, checked against name
// (the node's --node-id). In a new data dir (no identity, no node ID) it
// chooses one and writes it, synced, before the node founds or joins a
// cluster. It refuses a data dir created under another name
// (ErrWrongNode), and one that belongs to a cluster but holds no identity
// (ErrNoIdentity).
func Open(db *storage.DB, name string) (Identity, error) {
	return openIdentity(db, name, rand.Reader)
}

// openIdentity is Open drawing a new identity from rnd.
func openIdentity(db *storage.DB, name string, rnd io.Reader) (Identity, error) {
	if name == "" {
		return Identity{}, errors.New("kv: a node needs a name (--node-id)")
	}
	id, found, err := loadIdentity(db)
	if err != nil {
		return Identity{}, err
	}
	if !found {
		if id.NodeID != 0 {
			return Identity{}, fmt.Errorf("%w: it holds node %d of cluster %s, written by an older kvd that kept no identity, "+
				"and this kvd cannot tell it from a node whose data was lost: start it with the kvd that wrote it, "+
				"or start this kvd on an empty data dir to join the cluster as a new node", ErrNoIdentity, id.NodeID, id.ClusterID)
		}
		fresh, err := New(name, rnd)
		if err != nil {
			return Identity{}, err
		}
		if err := Save(db, fresh); err != nil {
			return Identity{}, err
		}
		return fresh, nil
	}
	if id.Name != name {
		return Identity{}, fmt.Errorf("%w: it was created by node %q, and this one is started as %q (--node-id): "+
			"start it with --node-id %q, or start %q on an empty data dir to join the cluster as a new node",
			ErrWrongNode, id.Name, name, id.Name, name)
	}
	return id, nil
}

// New draws a new identity named name from rnd.
func New(name string, rnd io.Reader) (Identity, error) {
	var u [16]byte
	secret := make([]byte, SecretBytes)
	if _, err := io.ReadFull(rnd, u[:]); err != nil {
		return Identity{}, fmt.Errorf("kv: drawing a node UUID: %w", err)
	}
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return Identity{}, fmt.Errorf("kv: drawing a node secret: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4: random
	u[8] = u[8]&0x3f | 0x80 // variant 10: RFC 4122
	return Identity{UUID: formatUUID(u), Secret: secret, Name: name}, nil
}

// Save writes id's UUID, secret and name, synced.
func Save(db *storage.DB, id Identity) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(storage.IdentityKey(), catalog.MustJSON(identityRecord{UUID: id.UUID, Secret: id.Secret, Name: id.Name})); err != nil {
		return err
	}
	return b.Commit(true)
}

// loadIdentity reads the identity, node ID and cluster ID from db; found
// says whether an identity record is there (the node ID and cluster ID
// are returned either way).
func loadIdentity(db *storage.DB) (id Identity, found bool, err error) {
	if id.NodeID, err = loadNodeID(db); err != nil {
		return Identity{}, false, err
	}
	switch b, err := db.Get(storage.ClusterIDKey()); {
	case err == nil:
		id.ClusterID = string(b)
	case !errors.Is(err, storage.ErrNotFound):
		return Identity{}, false, err
	}
	raw, err := db.Get(storage.IdentityKey())
	if errors.Is(err, storage.ErrNotFound) {
		return id, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	var rec identityRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return Identity{}, false, fmt.Errorf("%w: node identity: %v", codec.ErrCorrupt, err)
	}
	if !catalog.ValidUUID(rec.UUID) || len(rec.Secret) != SecretBytes || rec.Name == "" {
		return Identity{}, false, fmt.Errorf("%w: node identity: uuid %q, %d-byte secret, name %q", codec.ErrCorrupt, rec.UUID, len(rec.Secret), rec.Name)
	}
	id.UUID, id.Secret, id.Name = rec.UUID, rec.Secret, rec.Name
	return id, true, nil
}

func formatUUID(u [16]byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return string(buf[:])
}

func loadNodeID(db *storage.DB) (uint64, error) {
	b, err := db.Get(storage.NodeIDKey())
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: node ID of %d bytes", codec.ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// IsMember reports whether the database belongs to a cluster already.
func IsMember(db *storage.DB) (bool, error) {
	id, err := loadNodeID(db)
	return id != 0, err
}

// SaveJoin records the node ID and cluster a joining node was given, so
// that OpenStore starts it as a member. The node got them for its
// identity (JoinCluster), which the data dir must hold already.
func SaveJoin(db *storage.DB, nodeID uint64, clusterID string) error {
	switch _, found, err := loadIdentity(db); {
	case err != nil:
		return err
	case !found:
		return errors.New("kv: a node joins under the identity in its data dir, and this one has none (OpenIdentity)")
	}
	b := db.NewBatch()
	defer b.Close()
	var idb [8]byte
	binary.BigEndian.PutUint64(idb[:], nodeID)
	if err := errors.Join(b.Set(storage.NodeIDKey(), idb[:]), b.Set(storage.ClusterIDKey(), []byte(clusterID))); err != nil {
		return err
	}
	return b.Commit(true)
}
