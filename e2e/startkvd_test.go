package e2e

import (
	"net"
	"path/filepath"
	"testing"
)

// A port taken between freeAddr's look and kvd's bind does not fail the
// test that starts a new node: startKVD starts it again on new addresses.
func TestStartKVDRetriesATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pickAddr = func(t testing.TB) string {
		picks++
		if picks == 1 {
			return taken.Addr().String() // the API address of the first try
		}
		return freeAddr(t)
	}
	defer func() { pickAddr = freeAddr }()
	k := startKVD(t, filepath.Join(t.TempDir(), "n1"))
	if k.addr == taken.Addr().String() || picks != 4 {
		t.Fatalf("node serving on %s after %d picks; want a second try on new addresses (4 picks), not %s", k.addr, picks, taken.Addr())
	}
	k.must(0, "cluster", "status")
}
