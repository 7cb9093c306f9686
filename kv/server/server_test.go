package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// restServer serves a one-node cluster's REST routes.
func restServer(t *testing.T) string {
	t.Helper()
	_, h := serveOneNode(t, ServerInfo{NodeName: "n1"})
	srv := httptest.NewServer(h)
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

// A paxos range that outgrew MaxSnapshotBytes (256 MiB, then: here
// 2 KB) stopped the node, and then kept it from restarting. Snapshots now
// stream, so it compacts and restarts whatever its size. A range whose
// stored state is corrupt still starts failed, says why, and the node
// opens and its other ranges serve.
func TestPaxosRangeRestartsAndFailedRangeReported(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := store.StoreConfig{LogTruncateEntries: 8, LogKeepEntries: 2}
	n := openNodeWith(t, db, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "px", Mode: catalog.ModePaxos, Replicas: 1, Ranges: 1}); err != nil {
		t.Fatal(err)
	}
	rangeID := n.Store().Catalog().Ranges["px"][0].ID
	for i := range 40 {
		if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "px", fmt.Appendf(nil, "big%02d", i), make([]byte, 1000)) }); err != nil {
			t.Fatal(err)
		}
	}
	if slot := snapshotSlot(t, n, rangeID); slot == 0 {
		t.Fatal("the log was never compacted")
	}
	restart := func() {
		t.Helper()
		if err := n.Store().Close(); err != nil {
			t.Errorf("the store stopped: %v", err)
		}
		n.Close()
		n = openNodeWith(t, db, cfg) // fails the test if OpenStore fails
	}
	restart()
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "px", []byte("k"), []byte("v")) }); err != nil {
		t.Fatalf("a write to the range after a restart: %v", err)
	}

	// Now corrupt its acceptor state.
	if err := n.Store().Close(); err != nil {
		t.Errorf("the store stopped: %v", err)
	}
	n.Close()
	b := db.NewBatch()
	if err := errors.Join(b.Set(storage.HardStateKey(rangeID), []byte{0xff}), b.Commit(true)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	reg := prometheus.NewRegistry()
	cfg.Metrics = metrics.NewMetrics(reg)
	n = openNodeWith(t, db, cfg)
	defer n.Store().Close()
	if _, err := n.Put(ctx, "px", []byte("k"), []byte("v")); !errors.As(err, new(*store.RangeFailedError)) {
		t.Errorf("a write to the failed range: %v", err)
	}
	if _, err := kvtest.Retry(t, func() (string, error) { return n.Put(ctx, "default", []byte("k"), []byte("v")) }); err != nil {
		t.Errorf("a write to another range: %v", err)
	}
	st, _ := n.Store().RangeStatuses(ctx)
	why := st[rangeID].Error
	if st[rangeID].State != store.StateFailed || !strings.Contains(why, "open failed") {
		t.Errorf("after the restart the range says %+v, want why it could not open", st[rangeID])
	}

	// Every report shows it: the status page, /status.json, the metrics,
	// Admin ListRanges; and a REST request for it is a 503 that says why.
	srv := NewServer(n, ServerInfo{NodeName: "n1"}, cfg.Metrics, reg)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var view struct{ Ranges []RangeView }
	_, _, body := restDo(t, "GET", hs.URL+"/status.json", "")
	if err := json.Unmarshal([]byte(body), &view); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rv := range view.Ranges {
		if rv.ID == rangeID {
			found = rv.State == store.StateFailed && rv.Error == why
		} else if rv.Error != "" {
			t.Errorf("/status.json: range %d reports %q", rv.ID, rv.Error)
		}
	}
	if !found {
		t.Errorf("/status.json does not report range %d failed: %s", rangeID, body)
	}
	if _, _, page := restDo(t, "GET", hs.URL+"/", ""); !strings.Contains(page, ">failed</td>") || !strings.Contains(page, "replica failed: "+html.EscapeString(why)+"</td>") {
		t.Errorf("the status page does not show the failed range:\n%s", page)
	}
	_, _, metrics := restDo(t, "GET", hs.URL+"/metrics", "")
	for _, want := range []string{"quorumkv_ranges_failed 1\n", `quorumkv_range_faults_total{kind="open"} 1` + "\n", `quorumkv_range_faults_total{kind="apply"} 0` + "\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	ranges, err := srv.api.Ranges(ctx, "px")
	if err != nil || len(ranges) != 1 || ranges[0].Error != why {
		t.Errorf("ListRanges = %v, %v; want the range's error", ranges, err)
	}
	if code, _, body := restDo(t, "PUT", hs.URL+"/v1/kv/px/k", "v"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopped on this node") {
		t.Errorf("REST PUT to the failed range: %d %s", code, body)
	}
}

// A Connect request whose body is over MaxRequestBytes is refused, with
// ResourceExhausted naming the limit and its value, whether it declares
// its length (refused before it is read) or not (chunked: refused once
// the limit was read); one under it is served either way.
func TestRequestBodyLimitNamed(t *testing.T) {
	base := restServer(t)
	limit := catalog.DefaultLimits().MaxRequestBytes
	for _, c := range []struct {
		size    int
		chunked bool
	}{{limit + 6, false}, {100, false}, {limit + 6, true}, {100, true}, {limit - 100, true}} {
		body := `{"keyspace":"default","key":"` + base64.StdEncoding.EncodeToString([]byte("k")) + `","value":"` +
			base64.StdEncoding.EncodeToString([]byte(strings.Repeat("v", min(max(c.size-200, 1)*3/4, 700<<10)))) + `"}` // the rest is padding: the value stays under MaxValueBytes
		body += strings.Repeat(" ", max(c.size-len(body), 0))
		var code int
		var resp string
		if c.chunked {
			code, resp = postChunked(t, base+"/quorumkv.v1.KV/Put", body)
		} else {
			code, _, resp = restDo(t, http.MethodPost, base+"/quorumkv.v1.KV/Put", body, "Content-Type", "application/json")
		}
		switch {
		case c.size > limit && (code == http.StatusOK || !strings.Contains(resp, "MaxRequestBytes") || !strings.Contains(resp, strconv.Itoa(limit))):
			t.Errorf("a %d-byte Put: %d %.200s; want refused naming MaxRequestBytes and %d", len(body), code, resp, limit)
		case c.size <= limit && code != http.StatusOK:
			t.Errorf("a %d-byte Put (chunked %t): %d %.200s; want served", len(body), c.chunked, code, resp)
		}
	}
}

// postChunked posts a JSON body without declaring its length.
func postChunked(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(body))) // not a *strings.Reader: no length
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if req.ContentLength != 0 {
		t.Fatalf("the request declares %d bytes", req.ContentLength)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A REST scan writes a key or value that is UTF-8 as text, and any other
// in base64 under key_base64 or value_base64: bytes that are not UTF-8
// came out garbled (replaced by U+FFFD) as JSON strings.
func TestRESTScanEncodesBytesThatAreNotText(t *testing.T) {
	base := restServer(t) + "/v1/kv/default"
	binary := "k\xff\xfe"
	for _, kv := range [][2]string{{"text", "v"}, {binary, "v\xff"}} {
		for range 200 { // a fresh node elects itself within a few ticks
			if code, _, _ := restDo(t, http.MethodPut, base+"/"+url.PathEscape(kv[0]), kv[1]); code != http.StatusServiceUnavailable {
				break
			}
		}
	}
	code, _, body := restDo(t, http.MethodGet, base+"?prefix=", "")
	if code != http.StatusOK {
		t.Fatalf("scan = %d %s", code, body)
	}
	var out struct {
		KVs []map[string]any `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"text":   {"key": "text", "value": "v"},
		"binary": {"key_base64": base64.StdEncoding.EncodeToString([]byte(binary)), "value_base64": base64.StdEncoding.EncodeToString([]byte("v\xff"))},
	}
	if len(out.KVs) != 2 {
		t.Fatalf("scan = %s, want 2 keys", body)
	}
	for _, got := range out.KVs {
		name := "text"
		if _, ok := got["key"]; !ok {
			name = "binary"
		}
		for field, v := range want[name] {
			if got[field] != v {
				t.Errorf("%s key: %s = %v, want %v (%s)", name, field, got[field], v, body)
			}
		}
		if len(got) != len(want[name])+1 { // and version
			t.Errorf("%s key: fields %v, want %v and version", name, got, want[name])
		}
	}
}

// A request another node forwarded here is counted as forwarded, not as
// a request of this node's clients: each client request is counted once,
// in quorumkv_request_duration_seconds, by the node it was sent to. A
// leader counted every request forwarded to it, and its "not the leader
// now" answers during leader changes as errors, which the console showed
// on healthy clusters.
func TestForwardedRequestsCountedApart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewMetrics(reg)
	n := openNodeWith(t, kvtest.NewMemDB(t), store.StoreConfig{Metrics: m})
	t.Cleanup(func() { n.Store().Close() })
	srv := httptest.NewServer(NewServer(n, ServerInfo{NodeName: "n1"}, m, reg))
	t.Cleanup(srv.Close)
	kvc := quorumkvv1connect.NewKVClient(http.DefaultClient, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	put := func(forwarded bool) {
		t.Helper()
		req := connect.NewRequest(&v1.PutRequest{Keyspace: "default", Key: []byte("k"), Value: []byte("v")})
		if forwarded {
			req.Header().Set(kv.ForwardedHeader, "1")
		}
		for ctx.Err() == nil { // a fresh node elects itself within a few ticks
			if _, err := kvc.Put(ctx, req); err == nil {
				return
			} else if connect.CodeOf(err) != connect.CodeUnavailable {
				t.Fatal(err)
			}
		}
		t.Fatal(ctx.Err())
	}
	// The histogram's samples, over every series (a fresh node may answer
	// Unavailable first).
	samples := func() uint64 {
		var total uint64
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "quorumkv_request_duration_seconds" {
				for _, m := range mf.GetMetric() {
					total += m.GetHistogram().GetSampleCount()
				}
			}
		}
		return total
	}
	put(false)
	before := samples()
	put(true)
	put(true)
	if before == 0 || samples() != before {
		t.Errorf("request durations: %d samples after the client's put, %d after two forwarded ones; want them unchanged", before, samples())
	}
	if got := testutil.ToFloat64(m.ForwardedRequests.WithLabelValues("default", "put", "ok")); got != 2 {
		t.Errorf("forwarded puts counted %v, want 2", got)
	}
}
