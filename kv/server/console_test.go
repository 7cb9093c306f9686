package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/quorum"
)

// consoleGet fetches path and fails on anything but 200.
func consoleGet(t *testing.T, url string) (http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b.String())
	}
	return resp.Header, b.String()
}

// The console of a one-node cluster: served with a CSP that allows no
// inline script and nothing from elsewhere, it shows the health line,
// the members, each keyspace with its live figures (computed from the
// node's own metrics between two looks a second apart), "—" for the W
// and R of a raft keyspace and the numbers of an eventual one, the
// geometry's picture with its proof, and the range map with the leader.
// Every name on it is escaped.
func TestConsolePage(t *testing.T) {
	ctx := context.Background()
	n, srv := serveOneNode(t, ServerInfo{NodeName: `n1<script>alert(1)</script>`, Version: "v-test"})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	if _, err := n.CreateKeyspace(ctx, catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 1, W: 1, R: 1, Ranges: 2}); err != nil {
		t.Fatal(err)
	}
	put := func(ks string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _, body := restDo(t, "PUT", hs.URL+"/v1/kv/"+ks+"/k", "v")
			if code == http.StatusNoContent {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("PUT %s/k: %d %s", ks, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	put("default")
	put("ev")
	consoleGet(t, hs.URL+"/console.json") // the first sample
	time.Sleep(rateWindowMin + 100*time.Millisecond)
	for range 20 {
		put("default")
	}
	restDo(t, "GET", hs.URL+"/v1/kv/ev/k", "")

	h, page := consoleGet(t, hs.URL+"/")
	if got := h.Get("Content-Security-Policy"); got != consoleCSP || !strings.HasPrefix(got, "default-src 'self'") {
		t.Errorf("CSP %q", got)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("headers %v", h)
	}
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "n1&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the node's name is not escaped")
	}
	if strings.Contains(page, "style=") || regexp.MustCompile(`<script>`).MatchString(page) {
		t.Errorf("the page has inline style or script, which its CSP refuses")
	}
	for _, want := range []string{
		`<p id="health" class="ok">healthy: 1/1 nodes alive, 9/9 ranges with a leader, 0 under-replicated</p>`,
		`<script src="/console/console.js" defer></script>`,
		`<h2>Ranges</h2>`,
		`<td>default</td><td>raft</td><td>1</td><td>majority</td><td>—</td><td>—</td><td>8</td>`,
		`<td>ev</td><td>eventual</td><td>1</td><td>majority</td><td>1</td><td>1</td><td>2</td>`,
		`tolerates 0 failures (phase 1: 0, phase 2: 0)`,
		`<rect class="zone"`,
		`<circle class="voter q1 q2"`,
		`class="cell leader"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the console lacks %s", want)
		}
	}
	// default's rate: 20 puts or more over a window of 1 to 10 s.
	m := regexp.MustCompile(`<tr class="keyspace" data-keyspace="default">.*?<td class="rps" title="over the last ([0-9.]+) s">([0-9.]+)</td>`).FindStringSubmatch(page)
	if m == nil || m[2] == "0" {
		t.Errorf("no live rate for default: %v\n%s", m, page)
	}
	if !strings.Contains(page, "<td>0 of ") {
		t.Errorf("ev's stale reads are not shown as 0 of its reads")
	}

	_, live := consoleGet(t, hs.URL+"/console/live")
	if !strings.HasPrefix(live, `<main id="live"`) || strings.Contains(live, "<html") {
		t.Errorf("/console/live is not the live part alone: %.200s", live)
	}
	_, js := consoleGet(t, hs.URL+"/console/console.js")
	if !strings.Contains(js, "/console/live") {
		t.Errorf("console.js does not fetch /console/live")
	}
	h, _ = consoleGet(t, hs.URL+"/console/console.css")
	if !strings.HasPrefix(h.Get("Content-Type"), "text/css") {
		t.Errorf("console.css: %v", h)
	}

	_, body := consoleGet(t, hs.URL+"/console.json")
	var v ConsoleView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Health.OK || len(v.Nodes) != 1 || v.Nodes[0].Error != "" || len(v.Keyspaces) != 2 || v.Keyspaces[0].W != "—" || v.Keyspaces[1].W != "1" {
		t.Errorf("console.json: %+v", v)
	}
	if g := v.Keyspaces[0].Geometry; g.Proof == "" || !g.Safe || len(g.Phase1) != 1 || len(g.Phase2) != 1 {
		t.Errorf("default's geometry: %+v", g)
	}
}

// A PUT or DELETE of a keyspace without a key is a 400 that says what is
// missing, not ServeMux's redirect to the {key...} pattern's path.
func TestRESTMissingKey(t *testing.T) {
	base := restServer(t)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, base+"/v1/kv/default", strings.NewReader("v"))
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		want := "missing key: " + method + " /v1/kv/{keyspace}/{key}\n"
		if resp.StatusCode != http.StatusBadRequest || b.String() != want {
			t.Errorf("%s /v1/kv/default: %s %q, want 400 %q", method, resp.Status, b.String(), want)
		}
	}
}

// The picture of a zones geometry: one box per zone, the example
// phase-1 quorum one node in every zone, the phase-2 one a whole zone,
// and the proof the one kvctl quorum check prints.
func TestConsoleGeometry(t *testing.T) {
	l, err := quorum.ParseNodeList("a@east,b@east,c@west,d@west,e@north,f@north")
	if err != nil {
		t.Fatal(err)
	}
	r := catalog.RangeDescriptor{ID: 7, Geometry: "zones"}
	for _, n := range l.Nodes {
		r.Replicas = append(r.Replicas, catalog.ReplicaDescriptor{NodeID: n.ID, Zone: n.Zone, Weight: n.Weight})
	}
	g := proveGeometry(catalog.KeyspaceDescriptor{Mode: catalog.ModePaxos}, r, l.Nodes, l.Name)
	if g.Error != "" || len(g.SVG.Zones) != 3 || len(g.SVG.Nodes) != 6 {
		t.Fatalf("geometry %+v", g)
	}
	q1, q2 := 0, 0
	for _, n := range g.SVG.Nodes {
		if strings.Contains(n.Class, "q1") {
			q1++
		}
		if strings.Contains(n.Class, "q2") {
			q2++
		}
	}
	if q1 != 3 || q2 != 2 || len(g.Phase1) != 3 || len(g.Phase2) != 2 {
		t.Errorf("highlighted %d phase-1 and %d phase-2 voters (%v, %v), want 3 and 2", q1, q2, g.Phase1, g.Phase2)
	}
	sys, _ := quorum.Parse("zones", l.Nodes)
	rep, _ := quorum.Prove(sys)
	var want strings.Builder
	rep.WriteText(&want, l.Name, []quorum.Protocol{quorum.Paxos})
	if g.Proof != want.String() || g.Tolerates != rep.Tolerates() || !g.Safe {
		t.Errorf("proof:\n%s\nwant:\n%s", g.Proof, want.String())
	}
}

func TestQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.002, 0.004}
	for _, c := range []struct {
		q          float64
		cumulative []float64
		count      float64
		want       float64
	}{
		{0.5, []float64{0, 0, 0}, 0, 0},
		{0.5, []float64{10, 10, 10}, 10, 0.0005},      // inside the first bucket, from 0
		{0.5, []float64{0, 10, 10}, 10, 0.0015},       // halfway through the second
		{0.99, []float64{0, 0, 0}, 10, 0.004},         // all above the last bound
		{0.99, []float64{50, 100, 100}, 100, 0.00198}, // 99th of 100 in the second
	} {
		if got := quantile(c.q, bounds, c.cumulative, c.count); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("quantile(%v, %v, %v) = %v, want %v", c.q, c.cumulative, c.count, got, c.want)
		}
	}
}
