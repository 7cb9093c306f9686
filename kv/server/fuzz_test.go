package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The REST routes parse a path (keyspace and key), query parameters and
// condition headers from anyone: FuzzREST sends fuzzed ones to a
// one-node cluster's handler and requires an answer that is not a server
// error, and no panic. Its seeds run as a plain test; `go test -fuzz
// FuzzREST ./kv/server/` searches further.
func FuzzREST(f *testing.F) {
	for _, s := range []struct{ method, path, query, ifMatch, ifNone, body string }{
		{"PUT", "default/k", "", "", "", "v"},
		{"PUT", "default/k", "w=2", `"1.5"`, "", "v"},
		{"PUT", "default/k", "", "", "*", "v"},
		{"GET", "default/k", "r=1", "", "", ""},
		{"DELETE", "default/k", "", `"x"`, "", ""},
		{"GET", "default", "prefix=k&limit=10", "", "", ""},
		{"GET", "nope/%zz", "limit=-1", "", "", ""},
		{"PUT", "default/" + strings.Repeat("k", 5000), "", `W/"1.2"`, "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.ifMatch, s.ifNone, s.body)
	}
	_, h := serveOneNode(f, ServerInfo{NodeName: "n1"})
	f.Fuzz(func(t *testing.T, method, path, query, ifMatch, ifNone, body string) {
		switch method {
		case "GET", "PUT", "DELETE", "POST", "HEAD":
		default:
			method = "GET"
		}
		target := "/v1/kv/" + path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(method, "http://n1"+target, strings.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		if ifNone != "" {
			req.Header.Set("If-None-Match", ifNone)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("%s %s (If-Match %q, If-None-Match %q): %d %.200s", method, target, ifMatch, ifNone, rec.Code, rec.Body.String())
		}
	})
}
