package kv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/kv/store"

	"github.com/quorumkv/quorumkv/kv/metrics"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/storage"
)

// newMemDB opens a database on an in-memory file system, closed at the
// end of the test.
func newMemDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// restServer serves a one-node cluster's REST routes.
func restServer(t *testing.T) string {
	t.Helper()
	db := newMemDB(t)
	reg := prometheus.NewRegistry()
	metrics := metrics.NewMetrics(reg)
	n := openNodeWith(t, db, store.StoreConfig{Metrics: metrics})
	t.Cleanup(func() { n.Store().Close() })
	srv := httptest.NewServer(NewServer(n, ServerInfo{NodeName: "n1"}, metrics, reg))
	t.Cleanup(srv.Close)
	return srv.URL
}

// restDo sends method to url with the headers (name, value, ...) and
// body, and returns the status, the ETag and the body.
func restDo(t *testing.T, method, url, body string, headers ...string) (int, string, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), string(b)
}

// A REST DELETE honours If-Match: a stale version or a missing key is 412
// and deletes nothing (it used to ignore the header and delete); * means
// "if it exists", for PUT too (it used to be refused).
func TestRESTConditionalWrites(t *testing.T) {
	base := restServer(t) + "/v1/kv/default/"
	status := func(method, key, body string, headers ...string) int {
		t.Helper()
		var code int
		deadline := 200
		for range deadline { // a fresh node elects itself within a few ticks
			code, _, _ = restDo(t, method, base+key, body, headers...)
			if code != http.StatusServiceUnavailable {
				break
			}
		}
		return code
	}
	if got := status(http.MethodPut, "k", "v1"); got != http.StatusNoContent {
		t.Fatalf("PUT k = %d", got)
	}
	_, etag, _ := restDo(t, http.MethodGet, base+"k", "")
	rangeID, _, _ := strings.Cut(strings.Trim(etag, `"`), ".")
	stale := `"` + rangeID + `.999999"`

	for _, c := range []struct {
		name, method, key string
		headers           []string
		want              int
	}{
		{"delete at a stale version", http.MethodDelete, "k", []string{"If-Match", stale}, http.StatusPreconditionFailed},
		{"delete at another range's version", http.MethodDelete, "k", []string{"If-Match", `"999.999"`}, http.StatusBadRequest},
		{"delete a missing key if it exists", http.MethodDelete, "missing", []string{"If-Match", "*"}, http.StatusPreconditionFailed},
		{"put a missing key if it exists", http.MethodPut, "missing", []string{"If-Match", "*"}, http.StatusPreconditionFailed},
		{"delete with If-None-Match", http.MethodDelete, "k", []string{"If-None-Match", "*"}, http.StatusBadRequest},
		{"delete with two versions", http.MethodDelete, "k", []string{"If-Match", etag + ", " + stale}, http.StatusBadRequest},
	} {
		if got := status(c.method, c.key, "x", c.headers...); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if code, _, body := restDo(t, http.MethodGet, base+"k", ""); code != http.StatusOK || body != "v1" {
		t.Fatalf("after refused deletes, GET k = %d %q; want v1", code, body)
	}
	if got := status(http.MethodPut, "k", "v2", "If-Match", "*"); got != http.StatusNoContent {
		t.Fatalf("PUT If-Match: * of an existing key = %d", got)
	}
	_, etag, _ = restDo(t, http.MethodGet, base+"k", "")
	if got := status(http.MethodDelete, "k", "", "If-Match", etag); got != http.StatusNoContent {
		t.Fatalf("DELETE at the current version = %d", got)
	}
	if code, _, _ := restDo(t, http.MethodGet, base+"k", ""); code != http.StatusNotFound {
		t.Fatalf("GET after the conditional delete = %d, want 404", code)
	}
}

// A REST write sent again with the same Idempotency-Key is applied once:
// the retry is answered with the first one's version and changes nothing.
func TestRESTIdempotencyKey(t *testing.T) {
	base := restServer(t) + "/v1/kv/default/"
	put := func(body string) (int, string) {
		t.Helper()
		for range 200 { // a fresh node elects itself within a few ticks
			code, etag, _ := restDo(t, http.MethodPut, base+"k", body, IdempotencyKeyHeader, "order-17")
			if code != http.StatusServiceUnavailable {
				return code, etag
			}
		}
		t.Fatal("no leader")
		return 0, ""
	}
	code1, etag1 := put("first")
	if code, _, _ := restDo(t, http.MethodPut, base+"k", "other"); code != http.StatusNoContent {
		t.Fatalf("plain PUT = %d", code)
	}
	code2, etag2 := put("first")
	if code1 != http.StatusNoContent || code2 != http.StatusNoContent || etag1 != etag2 {
		t.Fatalf("PUT with the same key twice = %d %s, then %d %s; want the first answer again", code1, etag1, code2, etag2)
	}
	if _, _, body := restDo(t, http.MethodGet, base+"k", ""); body != "other" {
		t.Fatalf("GET after the repeated PUT = %q; want other (the repeat must not apply)", body)
	}
	long := strings.Repeat("x", catalog.MaxIdempotencyKeyBytes+1)
	if code, _, body := restDo(t, http.MethodPut, base+"k", "v", IdempotencyKeyHeader, long); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "MaxIdempotencyKeyBytes") {
		t.Fatalf("PUT with a %d-byte key = %d %q; want 413 naming the limit", len(long), code, body)
	}
}
