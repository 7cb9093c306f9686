package server

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/auth"
	"github.com/quorumkv/quorumkv/kv/catalog"
)

// The console (GET /): the cluster as this node sees it, with live
// figures from every node's own metrics. The page is rendered by Go
// templates, complete without JavaScript; console.js refetches its live
// part (/console/live) every two seconds and swaps it in. Routes:
//
//	GET /                   the page
//	GET /console/live       the page's live part, an HTML fragment
//	GET /console.json       the same view as JSON
//	GET /console/node.json  this node's own report: its replicas and figures
//	GET /console/console.js, /console/console.css
//
// They take no input beyond the path. Everything shown is escaped by
// html/template, and the page's Content-Security-Policy allows no inline
// script or style and nothing from another origin.

//go:embed console
var consoleFS embed.FS

var consoleTemplates = template.Must(template.New("console").Funcs(template.FuncMap{
	"rate":    formatRate,
	"seconds": formatSeconds,
	"join":    strings.Join,
}).ParseFS(consoleFS, "console/console.html"))

// consoleCSP allows the page's own script and style sheet only.
const consoleCSP = "default-src 'self'; frame-ancestors 'none'"

// peerReportTimeout bounds the fetch of another node's report: a node
// that does not answer in time is shown as such, and the page does not
// wait for it.
const peerReportTimeout = time.Second

// maxPeerReportBytes bounds a peer's report; it holds one entry per
// replica of the node, a few hundred bytes each.
const maxPeerReportBytes = 8 << 20

// replicaBehindEntries: a replica whose applied index is more than this
// many entries behind the highest commit index any replica of its range
// reports is shown as behind. The nodes' reports are taken a few
// milliseconds apart, so under load replicas differ by a few entries
// without being behind.
const replicaBehindEntries = 64

// NodeReport is one node's own view: its replicas and its figures. A
// node builds its own; the node serving the console fetches the others'.
type NodeReport struct {
	ID       uint64 `json:"id"`
	Node     string `json:"node"`
	AtUnixMs int64  `json:"at_unix_ms"`
	Ready    string `json:"ready"`
	// Keyspaces are the node's figures by keyspace, Total their sum.
	Keyspaces map[string]Figures `json:"keyspaces"`
	Total     Figures            `json:"total"`
	// Ranges are the node's replicas by range ID.
	Ranges map[uint64]ReplicaReport `json:"ranges"`
	// Error says why the report could not be had, when it could not
	// (set by the node that fetched it).
	Error string `json:"error,omitempty"`
}

// ReplicaReport is a node's replica of one consensus range.
type ReplicaReport struct {
	State   string `json:"state"`
	Leader  string `json:"leader,omitempty"`
	Term    uint64 `json:"term"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	Error   string `json:"error,omitempty"`
}

// ConsoleView is what the console shows.
type ConsoleView struct {
	Viewed        string         `json:"viewed"`
	ClusterID     string         `json:"cluster_id"`
	Version       string         `json:"version"`
	Advertise     string         `json:"advertise"`
	TLS           bool           `json:"tls"`
	ClusterSecret bool           `json:"cluster_secret"`
	AuthEnabled   bool           `json:"auth_enabled"`
	Ready         string         `json:"ready"`
	At            string         `json:"at"`
	Health        Health         `json:"health"`
	Members       []kv.Member    `json:"members"`
	Nodes         []NodeReport   `json:"nodes"`
	Keyspaces     []KeyspaceView `json:"keyspaces"`
	// Columns are the range map's nodes: the catalog's, by ID.
	Columns []string   `json:"columns"`
	Ranges  []RangeRow `json:"ranges"`
	// MovesInFlight counts replicas leaving their ranges.
	MovesInFlight int `json:"moves_in_flight"`
	// BehindEntries is replicaBehindEntries, for the page to say.
	BehindEntries int `json:"behind_entries"`
}

// Health is the one line at the top.
type Health struct {
	OK              bool   `json:"ok"`
	Line            string `json:"line"`
	Nodes           int    `json:"nodes"`
	NodesAlive      int    `json:"nodes_alive"`
	ConsensusRanges int    `json:"consensus_ranges"`
	RangesLed       int    `json:"ranges_with_leader"`
	UnderReplicated int    `json:"under_replicated"`
	ReplicasBehind  int    `json:"replicas_behind"`
	Unreported      int    `json:"nodes_unreported"`
}

// KeyspaceView is a keyspace with its figures and geometry.
type KeyspaceView struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Replicas int    `json:"replicas"`
	Quorum   string `json:"quorum"`
	// W and R are an eventual keyspace's default quorums; "—" for raft
	// and paxos, whose geometry decides (see Geometry).
	W      string `json:"w"`
	R      string `json:"r"`
	Ranges int    `json:"ranges"`
	// Total sums the nodes' figures; PerNode has each node's.
	Total    Figures       `json:"total"`
	PerNode  []NodeFigures `json:"per_node"`
	Geometry GeometryView  `json:"geometry"`
}

// NodeFigures are one node's figures for a keyspace.
type NodeFigures struct {
	Node string `json:"node"`
	Figures
}

// RangeRow is a row of the range map.
type RangeRow struct {
	Keyspace string   `json:"keyspace"`
	ID       uint64   `json:"id"`
	Mode     string   `json:"mode"`
	Leader   string   `json:"leader"`
	Term     uint64   `json:"term"`
	Cells    []Cell   `json:"cells"`
	Problems []string `json:"problems,omitempty"`
}

// Cell is one node's part in one range: no replica, or its replica.
type Cell struct {
	Replica bool   `json:"replica"`
	Text    string `json:"text,omitempty"`
	Class   string `json:"class,omitempty"`
	Title   string `json:"title,omitempty"`
	Lag     uint64 `json:"lag,omitempty"`
}

// consoleState is the Server's part for the console.
type consoleState struct {
	sampler sampler
	proofs  proofCache
	peers   *http.Client
}

func (s *Server) registerConsole() {
	s.console.sampler.gatherer = s.gatherer
	s.console.proofs.m = map[string]GeometryView{}
	s.console.peers = s.api.info.PeerHTTPClient
	if s.console.peers == nil && !s.api.info.Secure {
		s.console.peers = &http.Client{Timeout: peerReportTimeout}
	}
	s.mux.HandleFunc("GET /{$}", s.consolePage("page"))
	s.mux.HandleFunc("GET /console/live", s.consolePage("live"))
	s.mux.HandleFunc("GET /console.json", s.consoleJSON())
	s.mux.HandleFunc("GET /console/node.json", s.nodeReportJSON)
	for _, f := range []struct{ name, ctype string }{{"console.js", "text/javascript; charset=utf-8"}, {"console.css", "text/css; charset=utf-8"}} {
		body, err := consoleFS.ReadFile("console/" + f.name)
		if err != nil {
			panic(err) // embedded at build time
		}
		s.mux.HandleFunc("GET /console/"+f.name, func(w http.ResponseWriter, _ *http.Request) {
			consoleHeaders(w, f.ctype)
			w.Write(body)
		})
	}
}

func consoleHeaders(w http.ResponseWriter, ctype string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) consolePage(name string) http.HandlerFunc {
	return s.withConsoleView(func(w http.ResponseWriter, v ConsoleView) {
		consoleHeaders(w, "text/html; charset=utf-8")
		consoleTemplates.ExecuteTemplate(w, name, v)
	})
}

func (s *Server) consoleJSON() http.HandlerFunc {
	return s.withConsoleView(func(w http.ResponseWriter, v ConsoleView) {
		consoleHeaders(w, "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
}

// withConsoleView checks the caller, builds the console's view with the
// caller's credentials (for the other nodes' reports) and hands it to
// render.
func (s *Server) withConsoleView(render func(http.ResponseWriter, ConsoleView)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.api.restAuthorize(r.Context(), r, "", auth.AnyUser); err != nil {
			restError(w, err)
			return
		}
		v, err := s.consoleView(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			restError(w, err)
			return
		}
		render(w, v)
	}
}

func (s *Server) nodeReportJSON(w http.ResponseWriter, r *http.Request) {
	if _, err := s.api.restAuthorize(r.Context(), r, "", auth.AnyUser); err != nil {
		restError(w, err)
		return
	}
	rep, err := s.nodeReport(r.Context())
	if err != nil {
		restError(w, err)
		return
	}
	consoleHeaders(w, "application/json")
	json.NewEncoder(w).Encode(rep)
}

// nodeReport is this node's own report.
func (s *Server) nodeReport(ctx context.Context) (NodeReport, error) {
	store := s.api.node.Store()
	rep := NodeReport{ID: store.NodeID(), Node: s.api.info.NodeName, Ready: "ready", Ranges: map[uint64]ReplicaReport{}}
	if err := s.ready(ctx); err != nil {
		rep.Ready = "not ready: " + err.Error()
	}
	status, err := store.RangeStatuses(ctx)
	if err != nil {
		return rep, err
	}
	for id, st := range status {
		rr := ReplicaReport{State: st.State, Term: st.Term, Commit: st.Commit, Applied: st.Applied, Error: st.Error}
		if st.Leader != 0 {
			rr.Leader = s.api.nodeName(st.Leader)
		}
		rep.Ranges[id] = rr
	}
	now := time.Now()
	rep.AtUnixMs = now.UnixMilli()
	rep.Keyspaces, rep.Total, err = s.console.sampler.figures(now)
	return rep, err
}

// reports returns the report of every catalog node, by ID: this node's
// own, the live others' fetched with the viewer's credentials, and for
// the rest why there is none.
func (s *Server) reports(ctx context.Context, members []kv.Member, authorization string) map[uint64]NodeReport {
	self := s.api.node.Store().NodeID()
	out := map[uint64]NodeReport{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		if m.ID == 0 {
			continue
		}
		if m.ID == self {
			rep, err := s.nodeReport(ctx)
			if err != nil {
				rep.Error = err.Error()
			}
			out[m.ID] = rep
			continue
		}
		if m.State != "alive" {
			out[m.ID] = NodeReport{ID: m.ID, Node: m.Name, Error: "not asked: gossip says it is " + m.State}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := s.fetchReport(ctx, m, authorization)
			if err != nil {
				rep = NodeReport{Error: err.Error()}
			}
			rep.ID, rep.Node = m.ID, m.Name // the catalog's, not the peer's word
			mu.Lock()
			out[m.ID] = rep
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// fetchReport asks node m for its report over HTTP, with the viewer's
// credentials, within peerReportTimeout.
func (s *Server) fetchReport(ctx context.Context, m kv.Member, authorization string) (NodeReport, error) {
	var rep NodeReport
	if s.console.peers == nil {
		return rep, fmt.Errorf("not asked: this node has no HTTP client for its peers over TLS")
	}
	addr, ok := s.api.node.Store().NodeAddr(m.ID)
	if !ok {
		return rep, fmt.Errorf("not asked: no known address")
	}
	scheme := "http://"
	if s.api.info.Secure {
		scheme = "https://"
	}
	ctx, cancel := context.WithTimeout(ctx, peerReportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+"/console/node.json", nil)
	if err != nil {
		return rep, err
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := s.console.peers.Do(req)
	if err != nil {
		return rep, fmt.Errorf("no answer from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerReportBytes+1))
	if err != nil {
		return rep, fmt.Errorf("reading its report: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("it answered %s: %.200s", resp.Status, strings.TrimSpace(string(body)))
	}
	if len(body) > maxPeerReportBytes {
		return rep, fmt.Errorf("its report is over %d bytes", maxPeerReportBytes)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("its report does not decode: %w", err)
	}
	return rep, nil
}

// consoleView builds the console's view from the catalog, this node's
// state and every node's report.
func (s *Server) consoleView(ctx context.Context, authorization string) (ConsoleView, error) {
	info := s.api.info
	store := s.api.node.Store()
	cat := store.Catalog()
	v := ConsoleView{Viewed: info.NodeName, ClusterID: info.ClusterID, Version: info.Version, Advertise: info.Advertise,
		TLS: info.Secure, ClusterSecret: info.ClusterSecretDigest != "", AuthEnabled: cat.Auth.Settings.Enabled,
		Ready: "ready", At: time.Now().UTC().Format("15:04:05 UTC"), Members: s.api.node.Members(),
		BehindEntries: replicaBehindEntries}
	if err := s.ready(ctx); err != nil {
		v.Ready = "not ready: " + err.Error()
	}
	status, err := store.RangeStatuses(ctx)
	if err != nil {
		return v, err
	}
	reports := s.reports(ctx, v.Members, authorization)

	// Columns: the catalog's nodes, by ID.
	var ids []uint64
	alive := map[uint64]string{}
	for _, m := range v.Members {
		if m.ID == 0 {
			continue
		}
		ids = append(ids, m.ID)
		alive[m.ID] = m.State
		if m.State == "removed" {
			continue
		}
		v.Health.Nodes++
		if m.State == "alive" {
			v.Health.NodesAlive++
		}
		rep := reports[m.ID]
		if rep.Error != "" && m.State == "alive" {
			v.Health.Unreported++
		}
	}
	slices.Sort(ids)
	col := map[uint64]int{}
	for i, id := range ids {
		col[id] = i
		v.Columns = append(v.Columns, s.api.nodeName(id))
		v.Nodes = append(v.Nodes, reports[id])
	}

	// Keyspaces.
	for _, name := range sortedKeys(cat.Keyspaces) {
		ks := cat.Keyspaces[name]
		kvw := KeyspaceView{Name: name, Mode: string(ks.Mode), Replicas: ks.Replicas, Quorum: ks.Quorum, W: "—", R: "—", Ranges: len(cat.Ranges[name])}
		if ks.Mode == catalog.ModeEventual && ks.W > 0 {
			kvw.W, kvw.R = strconv.Itoa(ks.W), strconv.Itoa(ks.R)
		}
		var per []Figures
		for _, id := range ids {
			if f, ok := reports[id].Keyspaces[name]; ok {
				kvw.PerNode = append(kvw.PerNode, NodeFigures{Node: s.api.nodeName(id), Figures: f})
				per = append(per, f)
			}
		}
		kvw.Total = sumFigures(per)
		if rs := cat.Ranges[name]; len(rs) > 0 {
			kvw.Geometry = s.geometry(ks, *rs[0])
		}
		v.Keyspaces = append(v.Keyspaces, kvw)
	}

	// The range map: meta, then every keyspace's ranges.
	row := func(keyspace string, mode catalog.Mode, id uint64, replicas []uint64, notes map[uint64]string) {
		rr := RangeRow{Keyspace: keyspace, ID: id, Mode: string(mode), Cells: make([]Cell, len(ids))}
		consensus := mode != catalog.ModeEventual
		var maxCommit uint64
		for _, n := range replicas {
			if st, ok := reports[n].Ranges[id]; ok {
				maxCommit = max(maxCommit, st.Commit)
				if st.Term > rr.Term {
					rr.Term = st.Term
				}
				if st.Leader != "" && st.State != "failed" {
					rr.Leader = st.Leader
				}
			}
		}
		under := false
		for _, n := range replicas {
			c := Cell{Replica: true, Text: "replica", Class: "replica"}
			name := s.api.nodeName(n)
			rep := reports[n]
			st, ok := rep.Ranges[id]
			switch {
			case alive[n] != "alive" && alive[n] != "":
				c.Text, c.Class = alive[n], "bad"
				under = true
				rr.Problems = append(rr.Problems, fmt.Sprintf("replica on %s, which is %s", name, alive[n]))
			case !consensus:
				c.Title = "a replica of an eventual range: any node coordinates its reads and writes"
			case rep.Error != "":
				c.Text, c.Class, c.Title = "?", "unknown", "no report from "+name+": "+rep.Error
			case !ok:
				c.Text, c.Class = "missing", "bad"
				rr.Problems = append(rr.Problems, fmt.Sprintf("%s runs no replica of it", name))
			case st.State == "failed":
				c.Text, c.Class, c.Title = "failed", "bad", st.Error
				rr.Problems = append(rr.Problems, fmt.Sprintf("%s's replica failed: %s", name, st.Error))
			default:
				c.Text, c.Class = roleText(st.State), st.State
				c.Text += " t" + strconv.FormatUint(st.Term, 10)
				if st.Applied < maxCommit {
					c.Lag = maxCommit - st.Applied
					c.Text += " −" + strconv.FormatUint(c.Lag, 10)
				}
				c.Title = fmt.Sprintf("%s on %s: term %d, commit %d, applied %d", st.State, name, st.Term, st.Commit, st.Applied)
				if st.Error != "" {
					c.Title += "; " + st.Error
				}
				if c.Lag > replicaBehindEntries {
					c.Class += " behind"
					v.Health.ReplicasBehind++
					rr.Problems = append(rr.Problems, fmt.Sprintf("%s is %d entries behind", name, c.Lag))
				}
			}
			if note := notes[n]; note != "" {
				c.Text += " (" + note + ")"
			}
			if i, ok := col[n]; ok {
				rr.Cells[i] = c
			}
		}
		if under {
			v.Health.UnderReplicated++
		}
		if consensus {
			v.Health.ConsensusRanges++
			if rr.Leader != "" {
				v.Health.RangesLed++
			} else {
				rr.Problems = append([]string{"no leader"}, rr.Problems...)
			}
		}
		v.Ranges = append(v.Ranges, rr)
	}
	meta := status[catalog.MetaRangeID]
	metaNotes := map[uint64]string{}
	for _, l := range meta.Learners {
		metaNotes[l] = "learner"
	}
	row(catalog.MetaKeyspace, catalog.ModeRaft, catalog.MetaRangeID, append(slices.Clone(meta.Voters), meta.Learners...), metaNotes)
	for _, name := range sortedKeys(cat.Ranges) {
		mode := cat.Keyspaces[name].Mode
		for _, r := range cat.Ranges[name] {
			var replicas []uint64
			notes := map[uint64]string{}
			for _, rep := range r.Replicas {
				replicas = append(replicas, rep.NodeID)
				if rep.Filling {
					notes[rep.NodeID] = "filling"
				}
			}
			for _, rep := range r.Leaving {
				replicas = append(replicas, rep.NodeID)
				notes[rep.NodeID] = "leaving"
			}
			v.MovesInFlight += len(r.Leaving)
			if mode == "" {
				mode = r.Mode
			}
			row(name, mode, r.ID, replicas, notes)
		}
	}
	v.Health.OK = v.Ready == "ready" && v.Health.NodesAlive == v.Health.Nodes && v.Health.RangesLed == v.Health.ConsensusRanges &&
		v.Health.UnderReplicated == 0 && v.Health.ReplicasBehind == 0 && v.Health.Unreported == 0
	v.Health.Line = healthLine(v.Health, v.Ready)
	return v, nil
}

func roleText(state string) string {
	switch state {
	case "leader":
		return "L"
	case "follower":
		return "F"
	case "candidate", "pre-candidate":
		return "C"
	}
	return state
}

func healthLine(h Health, ready string) string {
	word := "healthy"
	if !h.OK {
		word = "unhealthy"
	}
	line := fmt.Sprintf("%s: %d/%d nodes alive, %d/%d ranges with a leader, %d under-replicated", word,
		h.NodesAlive, h.Nodes, h.RangesLed, h.ConsensusRanges, h.UnderReplicated)
	if h.ReplicasBehind > 0 {
		line += fmt.Sprintf(", %d replicas behind", h.ReplicasBehind)
	}
	if h.Unreported > 0 {
		line += fmt.Sprintf(", %d live nodes did not report", h.Unreported)
	}
	if ready != "ready" {
		line += "; this node is " + ready
	}
	return line
}

// sumFigures adds nodes' figures: rates and totals add up, the latency
// quantiles are those of the nodes' histograms merged.
func sumFigures(per []Figures) Figures {
	var out Figures
	var count float64
	for _, f := range per {
		out.TotalRequests += f.TotalRequests
		out.TotalErrors += f.TotalErrors
		if !f.Known {
			continue
		}
		out.Known = true
		out.WindowSeconds = max(out.WindowSeconds, f.WindowSeconds)
		out.RequestsPerSec += f.RequestsPerSec
		out.ErrorsPerSec += f.ErrorsPerSec
		out.ReadsPerSec += f.ReadsPerSec
		out.StaleReadsPerSec += f.StaleReadsPerSec
		if len(f.Bounds) > 0 && len(f.Bounds) == len(f.Deltas) {
			if out.Bounds == nil {
				out.Bounds, out.Deltas = f.Bounds, make([]float64, len(f.Deltas))
			}
			if slices.Equal(out.Bounds, f.Bounds) {
				for i, d := range f.Deltas {
					out.Deltas[i] += d
				}
				count += f.WindowRequests
			}
		}
	}
	out.WindowRequests = count
	out.P50Seconds = quantile(0.5, out.Bounds, out.Deltas, count)
	out.P99Seconds = quantile(0.99, out.Bounds, out.Deltas, count)
	out.Bounds, out.Deltas = nil, nil
	return out
}

// formatRate shows a rate per second, or "—" when it is not known.
func formatRate(f Figures, v float64) string {
	if !f.Known {
		return "—"
	}
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// formatSeconds shows a latency, or "—" when there is none to show.
func formatSeconds(f Figures, v float64) string {
	if !f.Known || v == 0 {
		return "—"
	}
	return time.Duration(v * float64(time.Second)).Round(10 * time.Microsecond).String()
}

// Window says what the figures cover, for a title.
func (f Figures) Window() string {
	if !f.Known {
		return "no earlier sample to compare with yet: rates show from the next update"
	}
	return fmt.Sprintf("over the last %.1f s", f.WindowSeconds)
}
