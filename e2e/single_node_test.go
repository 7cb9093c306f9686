package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestSingleNode is SPEC.md on one real kvd: kvctl's commands and exit
// codes, the REST routes, metrics and status, a clean SIGTERM, and a
// restart on the same data dir that keeps everything.
func TestSingleNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k := startKVD(t, dir)

	k.must(0, "put", "phone", "for sale")
	if out := k.must(0, "get", "phone"); out != "for sale" {
		t.Fatalf("get = %q", out)
	}
	// The flash sale: alice buys, bob is told who did.
	k.must(0, "cas", "phone", "sold to alice", "--expect", "for sale")
	if out := k.must(4, "cas", "phone", "sold to bob", "--expect", "for sale"); !strings.Contains(out, `holds "sold to alice"`) {
		t.Fatalf("bob's failed cas says %q", out)
	}
	k.must(3, "get", "nothing")
	if code, _, _ := k.kvctl("from stdin", "put", "piped", "-"); code != 0 {
		t.Fatal("put from stdin failed")
	}
	if out := k.must(0, "get", "piped"); out != "from stdin" {
		t.Fatalf("get piped = %q", out)
	}
	if out := k.must(0, "-o", "json", "get", "phone"); !strings.Contains(out, `"value_base64": "c29sZCB0byBhbGljZQ=="`) {
		t.Fatalf("json get = %s", out)
	}
	if out := k.must(0, "scan", "--prefix", "p"); out != "phone\tsold to alice\npiped\tfrom stdin\n" {
		t.Fatalf("scan = %q", out)
	}

	// Keyspaces: created through the catalog, with the geometry proven.
	k.must(0, "keyspace", "create", "orders", "--mode", "raft", "--replicas", "1", "--ranges", "4")
	k.must(0, "-k", "orders", "put", "o1", "x")
	if out := k.must(1, "keyspace", "create", "wide", "--mode", "raft", "--replicas", "3"); !strings.Contains(out, "3 replicas need 3 live nodes") {
		t.Fatalf("N=3 on one node: %s", out)
	}
	if out := k.must(1, "keyspace", "create", "Bad!", "--mode", "raft", "--replicas", "1"); !strings.Contains(out, "keyspace name") {
		t.Fatalf("bad name: %s", out)
	}
	if out := k.must(0, "keyspace", "list"); !strings.Contains(out, "orders") || !strings.Contains(out, "default") {
		t.Fatalf("keyspace list = %s", out)
	}
	k.must(0, "keyspace", "drop", "orders", "--force")
	// Exit 3 says the key is absent; a missing keyspace is an error.
	if out := k.must(1, "-k", "orders", "get", "o1"); !strings.Contains(out, `no such keyspace: "orders"`) {
		t.Fatalf("get in a dropped keyspace: %s", out)
	}

	// Limits: refused with the limit named, nothing written.
	big := strings.Repeat("x", 1<<20+1)
	if code, _, errOut := k.kvctl(big, "put", "big", "-"); code != 1 || !strings.Contains(errOut, "MaxValueBytes") {
		t.Fatalf("oversized put: exit %d, %s", code, errOut)
	}
	k.must(3, "get", "big")

	// REST for curl.
	base := "http://" + k.addr
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/kv/default/a%2Fb", strings.NewReader("rest value"))
	resp := do(t, req, http.StatusNoContent)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("PUT returned no ETag")
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/kv/default/a%2Fb", nil)
	if body := readBody(t, do(t, req, http.StatusOK)); body != "rest value" {
		t.Fatalf("GET = %q", body)
	}
	req, _ = http.NewRequest(http.MethodPut, base+"/v1/kv/default/a%2Fb", strings.NewReader("v2"))
	req.Header.Set("If-Match", `"0.0"`)
	do(t, req, http.StatusBadRequest) // a version of another range
	req, _ = http.NewRequest(http.MethodPut, base+"/v1/kv/default/a%2Fb", strings.NewReader("v2"))
	req.Header.Set("If-Match", etag)
	do(t, req, http.StatusNoContent)
	req, _ = http.NewRequest(http.MethodPut, base+"/v1/kv/default/a%2Fb", strings.NewReader("v3"))
	req.Header.Set("If-Match", etag) // now stale
	do(t, req, http.StatusPreconditionFailed)
	req, _ = http.NewRequest(http.MethodPut, base+"/v1/kv/default/phone", strings.NewReader("x"))
	req.Header.Set("If-None-Match", "*")
	do(t, req, http.StatusPreconditionFailed)
	req, _ = http.NewRequest(http.MethodPut, base+"/v1/kv/default/big", strings.NewReader(big))
	do(t, req, http.StatusRequestEntityTooLarge)
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/kv/default?prefix=a", nil)
	if body := readBody(t, do(t, req, http.StatusOK)); !strings.Contains(body, `"key":"a/b","value":"v2"`) {
		t.Fatalf("REST scan = %s", body)
	}
	req, _ = http.NewRequest(http.MethodDelete, base+"/v1/kv/default/a%2Fb", nil)
	do(t, req, http.StatusNoContent)
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/kv/default/a%2Fb", nil)
	do(t, req, http.StatusNotFound)

	// Operators' view.
	req, _ = http.NewRequest(http.MethodGet, base+"/metrics", nil)
	metrics := readBody(t, do(t, req, http.StatusOK))
	for _, m := range []string{"quorumkv_build_info", `quorumkv_request_duration_seconds_count{keyspace="default",mode="raft",operation="cas",result="failed_precondition"}`,
		"quorumkv_pebble_wal_sync_duration_seconds_count", "quorumkv_consensus_proposals_total", "quorumkv_store_synced_rounds_total"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/", nil)
	if page := readBody(t, do(t, req, http.StatusOK)); !strings.Contains(page, "<h2>Ranges</h2>") {
		t.Errorf("status page: %s", page)
	}
	if out := k.must(0, "cluster", "ranges"); strings.Count(out, "\ndefault") != 8 {
		t.Errorf("cluster ranges should list 8 default ranges:\n%s", out)
	}

	// SIGTERM drains and exits 0; a restart keeps the data.
	k.stop()
	k = startKVD(t, dir)
	if out := k.must(0, "get", "phone"); out != "sold to alice" {
		t.Fatalf("after restart: %q", out)
	}
	if out := k.must(0, "keyspace", "list"); strings.Contains(out, "orders") {
		t.Fatalf("dropped keyspace is back: %s", out)
	}
}

func do(t *testing.T, req *http.Request, want int) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d, want %d: %s", req.Method, req.URL, resp.StatusCode, want, body)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
