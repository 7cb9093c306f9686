package store_test

import (
	"sync"
	"testing"

	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
)

// NodeAddr prefers the address a node advertises now over the catalog's,
// which is the one the node announced last (issue 12: a cluster restarted
// at new ports finds itself again).
func TestNodeAddrPrefersAdvertised(t *testing.T) {
	var advertised sync.Map // UUID -> address
	s := kvtest.OpenStore(t, kvtest.NewMemDB(t), store.StoreConfig{
		Advertised: func(uuid string) (string, bool) {
			a, ok := advertised.Load(uuid)
			if !ok {
				return "", false
			}
			return a.(string), true
		},
	})
	defer s.Close()
	self := s.NodeID()
	if addr, ok := s.NodeAddr(self); !ok || addr != "127.0.0.1:1" {
		t.Fatalf("NodeAddr without an advertised address = %q, %v; want the catalog's 127.0.0.1:1", addr, ok)
	}
	advertised.Store(s.Catalog().Nodes[self].UUID, "127.0.0.1:2")
	if addr, ok := s.NodeAddr(self); !ok || addr != "127.0.0.1:2" {
		t.Fatalf("NodeAddr with an advertised address = %q, %v; want 127.0.0.1:2", addr, ok)
	}
	if addr, ok := s.NodeAddr(self + 100); ok {
		t.Fatalf("NodeAddr of a node the catalog does not know = %q", addr)
	}
}
