package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/internal/stack"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/auth"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/quorum"
)

// ServerInfo is what the node says about itself in the API.
type ServerInfo struct {
	NodeName  string // --node-id
	Advertise string // --advertise
	Gossip    string // --gossip
	Version   string // kvd version
	ClusterID string
	// Secure: the listener serves TLS (--certs-dir), and the peer protocol
	// answers only callers presenting a node certificate of the cluster's
	// CA (certs.PeerRole).
	Secure bool
	// TokenTTL is how long the tokens this node mints are accepted
	// (auth.DefaultTokenTTL if 0).
	TokenTTL time.Duration
	// ClusterSecretDigest, if set, is the digest of the cluster secret
	// (kvd --cluster-secret-file, certs.ClusterSecret): the peer protocol
	// answers only requests that carry it (transport.ClusterSecretHeader).
	ClusterSecretDigest string `json:"-"`
	// Canary plants a bug in the checks of callers, for the tests that
	// must catch it (auth_test.go); kvd never sets it.
	Canary AuthCanary `json:"-"`
	// Keyring is the node's gossip keyring, for Admin.GossipKey, and
	// SaveGossipKeys writes its keys where the next start reads them; nil
	// without gossip (tests).
	Keyring        GossipKeyring             `json:"-"`
	SaveGossipKeys func(keys [][]byte) error `json:"-"`
	// PeerHTTPClient fetches the other nodes' console reports
	// (/console/node.json). Nil: a plain HTTP client without TLS, and no
	// reports from the other nodes with TLS.
	PeerHTTPClient *http.Client `json:"-"`
}

// GossipKeyring is what Admin.GossipKey changes (membership.Membership).
type GossipKeyring interface {
	GossipKeys() ([][]byte, error)
	InstallGossipKey(key []byte) error
	UseGossipKey(key []byte) error
	RemoveGossipKey(key []byte) error
}

// Server is the node's HTTP surface, on one listener (DESIGN.md §7): the
// KV and Admin services over Connect, gRPC and gRPC-Web, gRPC health and
// reflection, REST routes for curl, /metrics, /livez, /readyz, the status
// page and /status.json.
type Server struct {
	api      *apiServer
	gatherer prometheus.Gatherer
	health   *grpchealth.StaticChecker
	draining atomic.Bool
	mux      *http.ServeMux
	// peerCtx ends the long-lived peer streams at the end of a drain:
	// http.Server.Shutdown waits for requests to finish, and a peer's
	// Raft stream never does by itself.
	peerCtx   context.Context
	stopPeers context.CancelFunc
	console   consoleState
}

// compressMinBytes is the smallest response message the handlers gzip
// when the client accepts it. Connect's default compresses every message,
// and for the small answers that make up most traffic (a record, an
// acknowledgement) resetting a gzip writer cost more CPU than the rest of
// the request: 16% of a node's CPU under an eventual workload, 1.9k ops/s
// on a 3-node demo.
const compressMinBytes = 8 << 10

// limitBody refuses a request whose body is over max with an error that
// names the limit (Connect's own says only "larger than configured
// max"): at once when the body's length is declared, else once max
// bytes and an envelope's (gRPC's 5-byte frame header) were read. A body
// of unknown length under the limit is read here and handed on whole.
func limitBody(max int) func(path string, h http.Handler) (string, http.Handler) {
	errs := connect.NewErrorWriter()
	tooBig := func(w http.ResponseWriter, r *http.Request, size string) {
		errs.Write(w, r, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"%w: request body is %s bytes, the limit is %d (MaxRequestBytes, kvd --max-request-bytes)", catalog.ErrLimit, size, max)))
	}
	const envelope = 5
	return func(path string, h http.Handler) (string, http.Handler) {
		return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.ContentLength > int64(max)+envelope:
				tooBig(w, r, strconv.FormatInt(r.ContentLength, 10))
				return
			case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
				body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+envelope+1))
				if err != nil {
					errs.Write(w, r, connect.NewError(connect.CodeCanceled, fmt.Errorf("reading the request body: %w", err)))
					return
				}
				if len(body) > max+envelope {
					tooBig(w, r, "over "+strconv.Itoa(max+envelope))
					return
				}
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			}
			h.ServeHTTP(w, r)
		})
	}
}

// NewServer builds the HTTP handler of node. metrics must be the ones the
// node's store uses; gatherer serves /metrics.
func NewServer(node *kv.Node, info ServerInfo, metrics *metrics.Metrics, gatherer prometheus.Gatherer) *Server {
	s := &Server{
		api:      &apiServer{node: node, metrics: metrics, info: info},
		gatherer: gatherer,
		health:   grpchealth.NewStaticChecker(quorumkvv1connect.KVName, quorumkvv1connect.AdminName, quorumkvv1connect.AuthName),
		mux:      http.NewServeMux(),
	}
	s.peerCtx, s.stopPeers = context.WithCancel(context.Background())
	node.SetForwardHandler(s.api.serveForward)
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(node.Limits().MaxRequestBytes), connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(s.api.authInterceptor())}
	s.mux.Handle(limitBody(node.Limits().MaxRequestBytes)(quorumkvv1connect.NewKVHandler(s.api, opts...)))
	s.mux.Handle(limitBody(node.Limits().MaxRequestBytes)(quorumkvv1connect.NewAdminHandler(s.api, opts...)))
	s.mux.Handle(limitBody(node.Limits().MaxRequestBytes)(quorumkvv1connect.NewAuthHandler(s.api, opts...)))
	peerPath, peerHandler := kv.NewPeerService(node, connect.WithCompressMinBytes(compressMinBytes))
	peerErrors := connect.NewErrorWriter()
	s.mux.Handle(peerPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info.Secure && !certs.PeerRole(r.TLS) {
			peerErrors.Write(w, r, connect.NewError(connect.CodePermissionDenied,
				errors.New("the peer protocol is for the cluster's nodes: present a node certificate of the cluster's CA")))
			return
		}
		if d := info.ClusterSecretDigest; d != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(transport.ClusterSecretHeader)), []byte(d)) != 1 {
			peerErrors.Write(w, r, connect.NewError(connect.CodePermissionDenied,
				errors.New("the peer protocol is for the cluster's nodes: this request does not carry the cluster secret (kvd --cluster-secret-file)")))
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		// Canceling the context does not interrupt a read of the request
		// body, where a stream handler waits: closing the body does.
		stop := context.AfterFunc(s.peerCtx, func() {
			cancel()
			r.Body.Close()
		})
		defer stop()
		peerHandler.ServeHTTP(w, r.WithContext(ctx))
	}))
	s.mux.Handle(grpchealth.NewHandler(s.health))
	reflector := grpcreflect.NewStaticReflector(quorumkvv1connect.KVName, quorumkvv1connect.AdminName, quorumkvv1connect.AuthName,
		grpchealth.HealthV1ServiceName)
	s.mux.Handle(grpcreflect.NewHandlerV1(reflector))
	s.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))

	s.mux.HandleFunc("PUT /v1/kv/{keyspace}/{key...}", s.restPut)
	s.mux.HandleFunc("GET /v1/kv/{keyspace}/{key...}", s.restGet)
	s.mux.HandleFunc("DELETE /v1/kv/{keyspace}/{key...}", s.restDelete)
	s.mux.HandleFunc("GET /v1/kv/{keyspace}", s.restScan)
	// Without these, ServeMux answers a PUT or DELETE of /v1/kv/{keyspace}
	// with a redirect to /v1/kv/{keyspace}/ (the {key...} pattern's), which
	// curl does not follow with its body.
	s.mux.HandleFunc("PUT /v1/kv/{keyspace}", missingKey)
	s.mux.HandleFunc("DELETE /v1/kv/{keyspace}", missingKey)

	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /status.json", s.statusJSON)
	s.registerConsole() // GET /, console.go
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stack.Grow() // one copy of a shallow stack, not several deep in Pebble
	if r.TLS != nil {
		r = r.WithContext(context.WithValue(r.Context(), tlsKey{}, r.TLS)) // for authInterceptor
	}
	s.mux.ServeHTTP(w, r)
}

// Drain makes /readyz and gRPC health fail, so load balancers stop
// sending traffic before the node goes (SIGTERM, SPEC.md).
func (s *Server) Drain() {
	s.draining.Store(true)
	s.health.SetStatus(quorumkvv1connect.KVName, grpchealth.StatusNotServing)
	s.health.SetStatus(quorumkvv1connect.AdminName, grpchealth.StatusNotServing)
	s.health.SetStatus(quorumkvv1connect.AuthName, grpchealth.StatusNotServing)
	s.health.SetStatus("", grpchealth.StatusNotServing)
}

// StopPeers ends the peer streams served here, the last step of a drain
// before the HTTP server shuts down.
func (s *Server) StopPeers() { s.stopPeers() }

// ready reports whether the node serves: not draining, its store running,
// the catalog's range has a leader, and this node hears from a quorum of
// the catalog's voters (a node cut off from them cannot create keyspaces,
// learn the catalog, or forward to leaders it does not know).
func (s *Server) ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("draining")
	}
	store := s.api.node.Store()
	status, err := store.RangeStatuses(ctx)
	if err != nil {
		return err
	}
	q, ok, err := store.Reach(ctx, catalog.MetaRangeID)
	if err != nil {
		return err
	}
	if ok && !q.Can(quorum.Phase2) {
		return fmt.Errorf("cannot reach a quorum of the catalog range meta: %w", q.NoQuorum(quorum.Phase2, s.api.nodeName))
	}
	if status[catalog.MetaRangeID].Leader == 0 {
		return errors.New("the catalog range has no leader yet")
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// REST routes: raw values in and out, SPEC.md's statuses and headers.

// httpStatus maps errors like the Connect codes do (SPEC.md: 412, 413,
// 429, 503...).
func httpStatus(err error) int {
	switch transport.ConnectCode(err) {
	case connect.CodeInvalidArgument:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists:
		return http.StatusConflict
	case connect.CodeFailedPrecondition:
		return http.StatusPreconditionFailed
	case connect.CodeResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case connect.CodeUnimplemented:
		return http.StatusNotImplemented
	case connect.CodeCanceled:
		return 499 // client closed the request
	}
	return http.StatusInternalServerError
}

func restError(w http.ResponseWriter, err error) {
	if what := transport.NotFoundWhat(err); what != "" {
		w.Header().Set(transport.NotFoundHeader, what)
	}
	msg := err.Error()
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		msg = cerr.Message() // without the code: the status says it
		for _, k := range []string{transport.QuorumHeader, transport.RetrySafeHeader} {
			if v := cerr.Meta().Get(k); v != "" {
				w.Header().Set(k, v)
			}
		}
	}
	http.Error(w, msg, httpStatus(err))
}

// restContext bounds a REST request: curl sets no deadline.
func restContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

// quorumParams reads ?w= and ?r= (a count, or one, quorum, all) for
// eventual keyspaces; the KV handler refuses them on keyspaces whose
// geometry decides.
func (s *Server) quorumParams(r *http.Request) (*v1.Quorum, error) {
	query := r.URL.Query()
	if !query.Has("w") && !query.Has("r") {
		return nil, nil
	}
	q := &v1.Quorum{}
	for _, p := range []struct {
		name  string
		count *uint32
		level *v1.Level
	}{{"w", &q.W, &q.WLevel}, {"r", &q.R, &q.RLevel}} {
		v := query.Get(p.name)
		if v == "" {
			continue
		}
		if l, ok := levelByName[v]; ok {
			*p.level = l
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: %s=%q: want a count of replicas, or one, quorum or all", catalog.ErrInvalidArgument, p.name, v)
		}
		*p.count = uint32(n)
	}
	return q, nil
}

func (s *Server) restPut(w http.ResponseWriter, r *http.Request) {
	s.restKey(w, r, "put", func(ctx context.Context, keyspace string, key []byte, q *v1.Quorum) error {
		limits := s.api.node.Limits()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limits.MaxValueBytes)))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: value is over %d bytes, the limit (MaxValueBytes)", catalog.ErrLimit, limits.MaxValueBytes)
		}
		if err != nil {
			return err
		}
		idem := r.Header.Get(IdempotencyKeyHeader)
		cas := &v1.CompareAndSwapRequest{Keyspace: keyspace, Key: key, NewValue: body, IdempotencyKey: idem}
		switch ifMatch, ifNone := r.Header.Get("If-Match"), r.Header.Get("If-None-Match"); {
		case ifNone == "*":
			cas.Expect = &v1.CompareAndSwapRequest_ExpectAbsent{ExpectAbsent: true}
		case ifNone != "":
			return fmt.Errorf("%w: If-None-Match supports only *", catalog.ErrInvalidArgument)
		case ifMatch == "*":
			cas.Expect = &v1.CompareAndSwapRequest_ExpectExists{ExpectExists: true}
		case ifMatch != "":
			version, err := etagVersion(ifMatch)
			if err != nil {
				return err
			}
			cas.Expect = &v1.CompareAndSwapRequest_ExpectedVersion{ExpectedVersion: version}
		}
		var version string
		var header http.Header
		if cas.Expect != nil {
			req := connect.NewRequest(cas)
			req.Header().Set(transport.RetryHeader, r.Header.Get(transport.RetryHeader))
			resp, err := s.api.CompareAndSwap(ctx, req)
			if err != nil {
				return err
			}
			version, header = resp.Msg.Version, resp.Header()
		} else {
			resp, err := s.api.Put(ctx, connect.NewRequest(&v1.PutRequest{Keyspace: keyspace, Key: key, Value: body, Quorum: q, IdempotencyKey: idem}))
			if err != nil {
				return err
			}
			version, header = resp.Msg.Version, resp.Header()
		}
		copyRoute(w, header)
		w.Header().Set("ETag", strconv.Quote(version))
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *Server) restGet(w http.ResponseWriter, r *http.Request) {
	s.restKey(w, r, "get", func(ctx context.Context, keyspace string, key []byte, q *v1.Quorum) error {
		resp, err := s.api.Get(ctx, connect.NewRequest(&v1.GetRequest{Keyspace: keyspace, Key: key, Quorum: q}))
		if err != nil {
			return err
		}
		kv := resp.Msg.Kv
		copyRoute(w, resp.Header())
		w.Header().Set("ETag", strconv.Quote(kv.Version))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(kv.Value)
		return nil
	})
}

func (s *Server) restDelete(w http.ResponseWriter, r *http.Request) {
	s.restKey(w, r, "delete", func(ctx context.Context, keyspace string, key []byte, q *v1.Quorum) error {
		del := &v1.DeleteRequest{Keyspace: keyspace, Key: key, Quorum: q, IdempotencyKey: r.Header.Get(IdempotencyKeyHeader)}
		switch ifMatch := r.Header.Get("If-Match"); {
		case r.Header.Get("If-None-Match") != "":
			return fmt.Errorf("%w: a DELETE takes If-Match, not If-None-Match", catalog.ErrInvalidArgument)
		case ifMatch == "*":
			del.Expect = &v1.DeleteRequest_ExpectExists{ExpectExists: true}
		case ifMatch != "":
			version, err := etagVersion(ifMatch)
			if err != nil {
				return err
			}
			del.Expect = &v1.DeleteRequest_ExpectedVersion{ExpectedVersion: version}
		}
		req := connect.NewRequest(del)
		req.Header().Set(transport.RetryHeader, r.Header.Get(transport.RetryHeader))
		resp, err := s.api.Delete(ctx, req)
		if err != nil {
			return err
		}
		copyRoute(w, resp.Header())
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// missingKey answers a PUT or DELETE of a keyspace without a key.
func missingKey(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("missing key: %s /v1/kv/{keyspace}/{key}", r.Method), http.StatusBadRequest)
}

// IdempotencyKeyHeader names a REST write across retries (the API's
// idempotency_key): a PUT or DELETE sent again with the same header is
// applied at most once and answered as the first one was.
const IdempotencyKeyHeader = "Idempotency-Key"

// etagVersion reads the version of an If-Match header: one entity tag,
// quoted as ETag sends it (the quotes may be left out).
func etagVersion(h string) (string, error) {
	v := strings.TrimSpace(h)
	if strings.HasPrefix(v, "W/") {
		return "", fmt.Errorf("%w: If-Match %s: a weak entity tag cannot name a version", catalog.ErrInvalidArgument, h)
	}
	if strings.Contains(v, ",") {
		return "", fmt.Errorf("%w: If-Match %s: give one version (the ETag of a read), or *", catalog.ErrInvalidArgument, h)
	}
	v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
	if v == "" {
		return "", fmt.Errorf("%w: If-Match is empty", catalog.ErrInvalidArgument)
	}
	return v, nil
}

// copyRoute passes the KV handler's LeaderHeader and SpanHeader on to a
// REST answer.
func copyRoute(w http.ResponseWriter, h http.Header) {
	for _, k := range []string{LeaderHeader, SpanHeader} {
		if v := h.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
}

// restKey runs a REST operation on one key through the KV service's
// handler, which forwards it to the node that can serve it, as for any
// client, and records its metrics: it bounds the request's time, reads
// the W/R parameters, and writes the error of a failed operation (fn
// writes the answer of a successful one). A request refused before it
// reached the handler (a bad parameter, an oversized body) is recorded
// here.
func (s *Server) restKey(w http.ResponseWriter, r *http.Request, op string, fn func(ctx context.Context, keyspace string, key []byte, q *v1.Quorum) error) {
	keyspace, key := r.PathValue("keyspace"), []byte(r.PathValue("key"))
	ctx, cancel := restContext(r)
	defer cancel()
	start := time.Now()
	need := catalog.AccessRead
	if r.Method != http.MethodGet {
		need = catalog.AccessWrite
	}
	ctx, err := s.api.restAuthorize(ctx, r, keyspace, need)
	var q *v1.Quorum
	if err == nil {
		q, err = s.quorumParams(r)
	}
	if err == nil {
		err = fn(ctx, keyspace, key, q)
	}
	if err == nil {
		return
	}
	restError(w, err)
	var handled *connect.Error // the handler's errors are all Connect errors
	if !errors.As(err, &handled) {
		s.api.observe(keyspace, op, start, err)
	}
}

// restKV is a key-value pair in JSON: a key or value that is UTF-8 text
// as text (key, value), other bytes in base64 (key_base64, value_base64),
// never both.
type restKV struct {
	Key         string `json:"key,omitempty"`
	KeyBase64   []byte `json:"key_base64,omitempty"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
	Version     string `json:"version"`
}

func (s *Server) restScan(w http.ResponseWriter, r *http.Request) {
	keyspace := r.PathValue("keyspace")
	ctx, cancel := restContext(r)
	defer cancel()
	var err error
	defer func(start time.Time) { s.api.observe(keyspace, "scan", start, err) }(time.Now())
	if ctx, err = s.api.restAuthorize(ctx, r, keyspace, catalog.AccessRead); err != nil {
		restError(w, err)
		return
	}
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 0 {
			err = fmt.Errorf("%w: limit %q: want a count", catalog.ErrInvalidArgument, l)
			restError(w, err)
			return
		}
		if limit > s.api.node.Limits().MaxScanKeys {
			err = fmt.Errorf("%w: limit %d is over the page limit %d (MaxScanKeys); page with start_after", catalog.ErrLimit, limit, s.api.node.Limits().MaxScanKeys)
			restError(w, err)
			return
		}
	}
	kvs, more, err := s.api.node.Scan(ctx, keyspace, []byte(q.Get("prefix")), []byte(q.Get("start_after")), limit)
	if err != nil {
		restError(w, err)
		return
	}
	out := struct {
		KVs  []restKV `json:"kvs"`
		More bool     `json:"more"`
	}{KVs: []restKV{}, More: more}
	for _, kv := range kvs {
		rk := restKV{Version: kv.Version}
		if utf8.Valid(kv.Key) {
			rk.Key = string(kv.Key)
		} else {
			rk.KeyBase64 = kv.Key
		}
		if utf8.Valid(kv.Value) {
			rk.Value = string(kv.Value)
		} else {
			rk.ValueBase64 = kv.Value
		}
		out.KVs = append(out.KVs, rk)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// Status page.

type statusView struct {
	Node ServerInfo
	// AuthEnabled: callers must log in (kv/auth).
	AuthEnabled bool
	Ready       string
	Members     []kv.Member
	Keyspaces   []catalog.KeyspaceDescriptor
	Ranges      []RangeView
	// UnderReplicated counts the ranges (meta aside) with a replica on a
	// node that is not alive; the placement driver moves those replicas.
	UnderReplicated int
	// MovesInFlight counts the leaving replicas: moves whose range has not
	// let the old replica go yet.
	MovesInFlight int
}

type RangeView struct {
	Keyspace string
	ID       uint64
	Span     string
	Replicas string
	Leader   string
	Term     uint64
	Commit   uint64
	Applied  uint64
	// State is this node's replica's role, or "failed"; Error the fault
	// that stopped it, or one it serves despite (RangeStatus).
	State string `json:",omitempty"`
	Error string `json:",omitempty"`
}

func (s *Server) status(ctx context.Context) (statusView, error) {
	v := statusView{Node: s.api.info, Ready: "ready", Members: s.api.node.Members(),
		AuthEnabled: s.api.node.Store().Catalog().Auth.Settings.Enabled}
	if err := s.ready(ctx); err != nil {
		v.Ready = "not ready: " + err.Error()
	}
	status, err := s.api.node.Store().RangeStatuses(ctx)
	if err != nil {
		return v, err
	}
	cat := s.api.node.Store().Catalog()
	for _, name := range sortedKeys(cat.Keyspaces) {
		v.Keyspaces = append(v.Keyspaces, cat.Keyspaces[name])
	}
	add := func(keyspace string, id uint64, span catalog.Span, replicas []string) {
		rv := RangeView{Keyspace: keyspace, ID: id, Span: fmt.Sprintf("[%016x, %016x)", span.Lo, span.Hi)}
		rv.Replicas = strings.Join(replicas, ", ")
		if st, ok := status[id]; ok {
			rv.Term, rv.Commit, rv.Applied, rv.State, rv.Error = st.Term, st.Commit, st.Applied, st.State, st.Error
			if st.Leader != 0 {
				rv.Leader = s.api.nodeName(st.Leader)
			}
		}
		v.Ranges = append(v.Ranges, rv)
	}
	var metaReplicas []string
	for _, id := range status[catalog.MetaRangeID].Voters {
		metaReplicas = append(metaReplicas, s.api.nodeName(id))
	}
	for _, id := range status[catalog.MetaRangeID].Learners {
		metaReplicas = append(metaReplicas, s.api.nodeName(id)+" (learner)")
	}
	add(catalog.MetaKeyspace, catalog.MetaRangeID, catalog.Span{}, metaReplicas)
	gone := map[uint64]string{} // catalog nodes not alive, by ID
	for _, m := range v.Members {
		if m.ID != 0 && m.State != "alive" {
			gone[m.ID] = m.State
		}
	}
	for _, name := range sortedKeys(cat.Ranges) {
		for _, r := range cat.Ranges[name] {
			var names []string
			under := false
			for _, rep := range r.Replicas {
				n := s.api.nodeName(rep.NodeID)
				if state, ok := gone[rep.NodeID]; ok {
					n += " (" + state + ")"
					under = true
				}
				if rep.Filling {
					n += " (filling)"
				}
				names = append(names, n)
			}
			for _, rep := range r.Leaving {
				names = append(names, s.api.nodeName(rep.NodeID)+" (leaving)")
			}
			v.MovesInFlight += len(r.Leaving)
			if under {
				v.UnderReplicated++
			}
			add(name, r.ID, r.Span, names)
		}
	}
	return v, nil
}

func (s *Server) statusJSON(w http.ResponseWriter, r *http.Request) {
	if _, err := s.api.restAuthorize(r.Context(), r, "", auth.AnyUser); err != nil {
		restError(w, err)
		return
	}
	v, err := s.status(r.Context())
	if err != nil {
		restError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}
