package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/identity"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// joinTestNode does for a test what kvd does for a node that joins: it
// gives db an identity named self.Name, has leader register it, and saves
// the ID and cluster it was given. It returns the ID.
func joinTestNode(t *testing.T, ctx context.Context, leader *Node, db *storage.DB, self catalog.NodeDescriptor) uint64 {
	t.Helper()
	ident, err := identity.Open(db, self.Name)
	if err != nil {
		t.Fatal(err)
	}
	self.UUID = ident.UUID
	id, err := kvtest.Retry(t, func() (uint64, error) {
		return leader.registerNode(ctx, newJoinRequest(self, ident.Secret, ""), false)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.SaveJoin(db, id, leader.store.ClusterID()); err != nil {
		t.Fatal(err)
	}
	return id
}

func memDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// setKeys writes key, value, ... to db.
func setKeys(t *testing.T, db *storage.DB, kvs ...[]byte) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	for i := 0; i < len(kvs); i += 2 {
		if err := b.Set(kvs[i], kvs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// A data dir gets its identity at its first start and keeps it; it is
// refused under another name, and when it belongs to a cluster without
// an identity.
func TestOpenIdentity(t *testing.T) {
	db := memDB(t)
	first, err := identity.Open(db, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !catalog.ValidUUID(first.UUID) || len(first.Secret) != identity.SecretBytes || first.Name != "n1" || first.NodeID != 0 || first.ClusterID != "" {
		t.Fatalf("a new identity: %+v", first)
	}
	again, err := identity.Open(db, "n1")
	if err != nil || again.UUID != first.UUID || !bytes.Equal(again.Secret, first.Secret) {
		t.Fatalf("reopened: %+v, %v; want %+v", again, err, first)
	}
	other, err := identity.Open(memDB(t), "n1")
	if err != nil || other.UUID == first.UUID || bytes.Equal(other.Secret, first.Secret) {
		t.Fatalf("two data dirs drew %s and %s", first.UUID, other.UUID)
	}

	_, err = identity.Open(db, "n2")
	if !errors.Is(err, identity.ErrWrongNode) || !strings.Contains(err.Error(), `"n1"`) || !strings.Contains(err.Error(), `"n2"`) {
		t.Fatalf("under another name: %v, want ErrWrongNode naming n1 and n2", err)
	}

	// A node ID without an identity: written by an older kvd.
	old := memDB(t)
	var idb [8]byte
	binary.BigEndian.PutUint64(idb[:], 3)
	setKeys(t, old, storage.NodeIDKey(), idb[:], storage.ClusterIDKey(), []byte("c0ffee"))
	if _, err := identity.Open(old, "n3"); !errors.Is(err, identity.ErrNoIdentity) || !strings.Contains(err.Error(), "node 3 of cluster c0ffee") {
		t.Fatalf("a member's data dir without identity: %v, want ErrNoIdentity", err)
	}
	if err := identity.SaveJoin(memDB(t), 2, "c0ffee"); err == nil {
		t.Fatal("SaveJoin into a data dir without identity was accepted")
	}

	corrupt := memDB(t)
	setKeys(t, corrupt, storage.IdentityKey(), []byte(`{"uuid":"x","secret":"AA==","name":"n1"}`))
	if _, err := identity.Open(corrupt, "n1"); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("a corrupt identity: %v", err)
	}
}

// A store refuses a data dir under another name: no second catalog entry
// (a phantom learner in meta) for one data dir.
func TestStoreRefusesRename(t *testing.T) {
	db := memDB(t)
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Self: catalog.NodeDescriptor{Name: "n1", Addr: "a:1"}}
	s, err := store.OpenStore(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Self.Name = "renamed"
	if s, err := store.OpenStore(db, cfg, nil, true); !errors.Is(err, identity.ErrWrongNode) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("OpenStore under another name: %v, want ErrWrongNode", err)
	}
}

func TestCatalogAddNode(t *testing.T) {
	const (
		uuidA = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
		uuidB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	)
	secretA, secretB := bytes.Repeat([]byte{1}, identity.SecretBytes), bytes.Repeat([]byte{2}, identity.SecretBytes)
	n1 := catalog.NodeDescriptor{Name: "n1", Addr: "10.0.0.1:7070", Zone: "z1", Weight: 1, UUID: uuidA, SecretHash: identity.HashSecret(secretA)}
	with := func(f func(*catalog.NodeDescriptor)) *catalog.NodeDescriptor {
		d := n1
		f(&d)
		return &d
	}
	for _, tc := range []struct {
		name string
		op   catalog.CatalogOp
		// wantErr, if set, must be in the error and the catalog unchanged.
		wantErr error
		wantID  uint64
		// want is what the catalog then holds (n1 is node 1).
		want map[uint64]catalog.NodeDescriptor
	}{
		{
			name: "a new UUID under an old name is a new node",
			op: catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) {
				d.UUID, d.SecretHash, d.Addr = uuidB, identity.HashSecret(secretB), "10.0.0.9:7070"
			})},
			wantID: 2,
			want: map[uint64]catalog.NodeDescriptor{1: *with(func(d *catalog.NodeDescriptor) { d.ID = 1 }),
				2: *with(func(d *catalog.NodeDescriptor) {
					d.ID, d.UUID, d.SecretHash, d.Addr = 2, uuidB, identity.HashSecret(secretB), "10.0.0.9:7070"
				})},
		},
		{
			name:    "a known UUID with a wrong secret is refused",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.SecretHash, d.Addr = identity.HashSecret(secretB), "10.6.6.6:7070" })},
			wantErr: catalog.ErrIdentity,
		},
		{
			name:    "an announcement with a wrong secret is refused",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.SecretHash, d.Addr = identity.HashSecret(secretB), "10.6.6.6:7070" }), UpdateOnly: true},
			wantErr: catalog.ErrIdentity,
		},
		{
			name: "a known UUID with its secret moves",
			op: catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) {
				d.Addr, d.Gossip, d.Zone, d.Weight = "10.0.0.2:7070", "10.0.0.2:7946", "z2", 3
			})},
			wantID: 1,
			want: map[uint64]catalog.NodeDescriptor{1: *with(func(d *catalog.NodeDescriptor) {
				d.ID, d.Addr, d.Gossip, d.Zone, d.Weight = 1, "10.0.0.2:7070", "10.0.0.2:7946", "z2", 3
			})},
		},
		{
			name:   "a retried join gets its ID again",
			op:     catalog.CatalogOp{AddNode: with(func(*catalog.NodeDescriptor) {})},
			wantID: 1,
			want:   map[uint64]catalog.NodeDescriptor{1: *with(func(d *catalog.NodeDescriptor) { d.ID = 1 })},
		},
		{
			name:    "an announcement of an unknown UUID is refused",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.UUID, d.SecretHash = uuidB, identity.HashSecret(secretB) }), UpdateOnly: true},
			wantErr: catalog.ErrIdentity,
		},
		{
			name:    "a known UUID under another name is refused",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.Name = "n2" })},
			wantErr: catalog.ErrInvalidArgument,
		},
		{
			name:    "no UUID",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.UUID = "" })},
			wantErr: catalog.ErrInvalidArgument,
		},
		{
			name:    "an upper-case UUID",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.UUID = strings.ToUpper(uuidB) })},
			wantErr: catalog.ErrInvalidArgument,
		},
		{
			name:    "no secret hash",
			op:      catalog.CatalogOp{AddNode: with(func(d *catalog.NodeDescriptor) { d.UUID, d.SecretHash = uuidB, "" })},
			wantErr: catalog.ErrInvalidArgument,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := catalog.NewCatalog()
			if _, id, err := c.Apply(&catalog.CatalogOp{AddNode: &n1}); err != nil || id != 1 {
				t.Fatalf("registering n1: %d, %v", id, err)
			}
			before := c.Nodes[1]
			writes, id, err := c.Apply(&tc.op)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || len(writes) != 0 || len(c.Nodes) != 1 || c.Nodes[1] != before || c.NextNodeID != 2 {
					t.Fatalf("%v, %d writes, nodes %v, next ID %d; want %v and nothing changed", err, len(writes), c.Nodes, c.NextNodeID, tc.wantErr)
				}
				return
			}
			if err != nil || id != tc.wantID {
				t.Fatalf("ID %d, %v; want %d", id, err, tc.wantID)
			}
			if len(c.Nodes) != len(tc.want) {
				t.Fatalf("nodes %v, want %v", c.Nodes, tc.want)
			}
			for id, want := range tc.want {
				if c.Nodes[id] != want {
					t.Errorf("node %d: %+v, want %+v", id, c.Nodes[id], want)
				}
			}
			// What apply wrote loads back as the same catalog.
			loaded := catalog.NewCatalog()
			for _, w := range writes {
				if err := loaded.Load(w.Key, w.Value); err != nil {
					t.Fatal(err)
				}
			}
			for id := range loaded.Nodes {
				if loaded.Nodes[id] != c.Nodes[id] {
					t.Errorf("node %d written as %+v, applied as %+v", id, loaded.Nodes[id], c.Nodes[id])
				}
			}
		})
	}
}

// Nobody but a node itself can change its catalog entry through the Join
// RPC: a forger with another UUID joins as a new node, one with the
// node's UUID and a wrong secret is refused, one of another cluster too,
// and none of them moves the node. The node itself, with its secret, can.
// The secret never enters meta's log.
func TestJoinForgery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := memDB(t)
	n := openNode(t, db)
	t.Cleanup(func() { n.Store().Close() })
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "default", []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err) // meta and default have leaders
	}
	server := &peerServer{node: n}
	join := func(req *peerv1.JoinRequest) (uint64, error) {
		resp, err := server.Join(ctx, connect.NewRequest(req))
		if err != nil {
			return 0, err
		}
		return resp.Msg.NodeId, nil
	}
	self := n.store.Identity
	n1 := n.store.Catalog().Nodes[1]
	forged := func(f func(*peerv1.JoinRequest)) *peerv1.JoinRequest {
		req := &peerv1.JoinRequest{NodeName: "n1", Address: "10.6.6.6:7070", Zone: "z1", Weight: 1, NodeUuid: self.UUID,
			Secret: bytes.Repeat([]byte{6}, identity.SecretBytes)}
		f(req)
		return req
	}
	for _, tc := range []struct {
		name string
		req  *peerv1.JoinRequest
		code connect.Code
	}{
		{"n1's UUID, a wrong secret", forged(func(*peerv1.JoinRequest) {}), connect.CodePermissionDenied},
		{"n1's UUID, a wrong secret, as a member", forged(func(r *peerv1.JoinRequest) { r.ClusterId = n.store.ClusterID() }), connect.CodePermissionDenied},
		{"n1's UUID, its secret, another cluster", forged(func(r *peerv1.JoinRequest) { r.Secret, r.ClusterId = self.Secret, "0123456789abcdef" }),
			connect.CodeFailedPrecondition},
		{"no UUID", forged(func(r *peerv1.JoinRequest) { r.NodeUuid = "" }), connect.CodeInvalidArgument},
		{"a short secret", forged(func(r *peerv1.JoinRequest) { r.Secret = self.Secret[:16] }), connect.CodeInvalidArgument},
		{"a huge name", forged(func(r *peerv1.JoinRequest) { r.NodeName = strings.Repeat("n", 1<<20) }), connect.CodeResourceExhausted},
		{"a huge UUID", forged(func(r *peerv1.JoinRequest) { r.NodeUuid = strings.Repeat("6", 1<<20) }), connect.CodeResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := join(tc.req)
			if connect.CodeOf(err) != tc.code {
				t.Fatalf("Join: node %d, %v; want %v", id, err, tc.code)
			}
			if cat := n.store.Catalog(); len(cat.Nodes) != 1 || cat.Nodes[1] != n1 {
				t.Fatalf("the catalog changed: %v", cat.Nodes)
			}
		})
	}

	// Another UUID under n1's name is another node: n1 stays where it is.
	id, err := join(forged(func(r *peerv1.JoinRequest) { r.NodeUuid = "66666666-6666-4666-8666-666666666666" }))
	if err != nil || id != 2 {
		t.Fatalf("a new UUID under n1's name: node %d, %v; want node 2", id, err)
	}
	if got := n.store.Catalog().Nodes[1]; got != n1 {
		t.Fatalf("n1 after a new node took its name: %+v, want %+v", got, n1)
	}

	// n1 itself moves.
	id, err = join(forged(func(r *peerv1.JoinRequest) { r.Secret, r.ClusterId = self.Secret, n.store.ClusterID() }))
	if err != nil || id != 1 || n.store.Catalog().Nodes[1].Addr != "10.6.6.6:7070" {
		t.Fatalf("n1 with its secret: node %d, %v, address %s", id, err, n.store.Catalog().Nodes[1].Addr)
	}

	// meta's log holds the secret's hash, not the secret.
	var entries, hashes int
	it, err := db.NewIter(storage.RangeLogSpan(catalog.MetaRangeID))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			t.Fatal(err)
		}
		entries++
		if bytes.Contains(v, self.Secret) {
			t.Fatalf("meta's log holds n1's secret: %q", v)
		}
		if bytes.Contains(v, []byte(self.SecretHash())) {
			hashes++
		}
	}
	if hashes < 2 {
		t.Fatalf("%d of meta's %d log entries hold n1's secret hash, want its registration and its move", hashes, entries)
	}
}

// Members shows the catalog's nodes in the gossip state of their
// identity: a node that lost its data dir and came back under its name is
// a new node, alive, and its old ID is dead.
func TestMembersByIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := memDB(t)
	var gossip []Member
	cfg := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Self: catalog.NodeDescriptor{Name: "n1", Addr: "a:1", Zone: "z1", Weight: 1}}
	st, err := store.OpenStore(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n, err := NewNode(st, NodeConfig{Members: func() []Member { return gossip }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	uuid := func(c byte) string {
		return strings.Repeat(string(c), 8) + "-" + strings.Repeat(string(c), 4) + "-4" + strings.Repeat(string(c), 3) + "-8" +
			strings.Repeat(string(c), 3) + "-" + strings.Repeat(string(c), 12)
	}
	register := func(name, uuid string) uint64 {
		id, err := kvtest.Retry(t, func() (uint64, error) {
			return n.registerNode(ctx, &peerv1.JoinRequest{NodeName: name, Address: name + ":1", NodeUuid: uuid,
				Secret: bytes.Repeat([]byte(name), identity.SecretBytes/2)}, false)
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// n2 joins, loses its data dir and joins again; n3 has not joined yet.
	if id := register("n2", uuid('b')); id != 2 {
		t.Fatalf("n2 got ID %d", id)
	}
	if id := register("n2", uuid('c')); id != 3 {
		t.Fatalf("n2 back with a new UUID got ID %d", id)
	}
	gossip = []Member{
		{Name: "n1", UUID: st.Identity.UUID, State: "alive", Version: "v1"},
		{Name: "n2", UUID: uuid('c'), State: "alive", Version: "v1"},
		{Name: "n3", UUID: uuid('d'), Addr: "n3:1", State: "alive", Version: "v1"},
	}
	var got []string
	for _, m := range n.Members() {
		got = append(got, fmt.Sprintf("%s/%s/%s#%d", m.Name, m.UUID[:1], m.State, m.ID))
	}
	want := []string{"n1/" + st.Identity.UUID[:1] + "/alive#1", "n2/b/dead#2", "n2/c/alive#3", "n3/d/alive#0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("members %v, want %v", got, want)
	}
	// Gossip that has not heard of n2 says nothing about it.
	gossip = gossip[:1]
	if m := n.Members(); m[1].State != "unknown" || m[2].State != "unknown" {
		t.Fatalf("members unknown to gossip: %+v", m)
	}
}
