package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/quorum"
)

// apiServer implements the KV and Admin services on a Node.
type apiServer struct {
	node    *kv.Node
	metrics *metrics.Metrics
	info    ServerInfo
	// leaderHints caches, for ranges with no replica here, the node that
	// last served a forwarded request (rangeID -> node ID).
	leaderHints sync.Map
	// catchUps shares the catalog catch-ups of refused callers (auth.go).
	catchUps catchUps
}

var (
	_ quorumkvv1connect.KVHandler    = (*apiServer)(nil)
	_ quorumkvv1connect.AdminHandler = (*apiServer)(nil)
)

// withForwarding runs a KV request locally and, when this node cannot
// serve it, on the node that can: the range's leader if known, else each
// replica of the range in turn, skipping a node not heard from lately
// (store.Silent: down, paused or cut off, where an attempt would wait out
// forwardAttemptTimeout). A request that was itself forwarded is not
// forwarded again. servedBy is the node that served it.
//
// It tries again, with backoff, up to failoverWait (less if the request's
// deadline is nearer):
//   - while the range has no leader (an election is in progress, or no
//     node could be reached): as etcd does, a request spans a leader change
//     instead of failing with Unavailable, which matters to clients that do
//     not retry (curl). When this node cannot hear from enough replicas to
//     elect a leader, no election will end soon: it answers Unavailable at
//     once, naming the quorum it lacks (NoQuorumError);
//   - for requests safe to repeat (reads, and writes with an idempotency
//     key in keyspaces that dedup them, kv/store/dedup.go, which every attempt
//     carries), after an attempt whose outcome is unknown: the leader
//     stepped down before the write was applied, the connection to it
//     broke, or it did not answer within forwardAttemptTimeout (a leader
//     cut off by a partition answers nothing until it steps down). So a
//     request fails over to the new leader instead of waiting out its
//     deadline on the old one; if a write cannot find out in time, it
//     answers that the outcome is unknown.
//
// Only the node the client called waits and retries; a forwarded request
// is answered at once.
func withForwarding[Req, Resp any](ctx context.Context, a *apiServer, req *connect.Request[Req], keyspace string, key []byte,
	repeat repeatable, local func() (*Resp, error),
	rpc func(quorumkvv1connect.KVClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, uint64, error) {
	if req.Header().Get(kv.ForwardedHeader) != "" {
		resp, err := local()
		return resp, a.node.Store().NodeID(), err
	}
	give := time.Now().Add(failoverWait)
	if d, ok := ctx.Deadline(); ok && d.Add(-leaderWaitMargin).Before(give) {
		give = d.Add(-leaderWaitMargin) // leave time to answer before the client gives up
	}
	backoff := 5 * time.Millisecond
	var uncertain error // the last attempt whose write may have been applied
	for {
		resp, servedBy, next, err := forwardOnce(ctx, a, req, keyspace, key, local, rpc)
		switch {
		case next == attemptDone && (err == nil || uncertain == nil || !errors.Is(err, store.ErrUnavailable) && transport.ConnectCode(err) != connect.CodeUnavailable):
			return resp, servedBy, err
		case next == attemptDone:
			// Nothing was written by this attempt, but an earlier one may
			// have been applied.
			return nil, 0, outcomeUnknown(fmt.Errorf("%w; then: %w", uncertain, err))
		case next == attemptUncertain && repeat == onceOnly:
			return nil, 0, err
		case next == attemptUncertain && repeat == dedupWrite:
			uncertain = err
		}
		if time.Now().Add(backoff).After(give) || ctx.Err() != nil {
			switch {
			case uncertain != nil:
				return nil, 0, outcomeUnknown(uncertain)
			case next == attemptUncertain: // a read, which changed nothing
				return nil, 0, fmt.Errorf("%w: %s", store.ErrUnavailable, errText(err))
			}
			return nil, 0, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// repeatable says whether a request may be sent again after an attempt
// whose outcome is unknown.
type repeatable int

const (
	// onceOnly: a write that would be applied again: never repeated
	// once it may have reached a leader.
	onceOnly repeatable = iota
	// dedupWrite: a write the range applies at most once per idempotency
	// key (kv/store/dedup.go).
	dedupWrite
	// readOnly: a read, which changes nothing.
	readOnly
)

// repeatWrite is dedupWrite when dedup says the keyspace dedups writes.
func repeatWrite(dedup bool) repeatable {
	if dedup {
		return dedupWrite
	}
	return onceOnly
}

// outcomeUnknown is the answer to a request whose write was sent and may
// have been applied, after err: what the attempts found.
func outcomeUnknown(err error) error {
	text := strings.TrimPrefix(errText(err), store.ErrOutcomeUnknown.Error()+": ")
	return connect.NewError(connect.CodeUnknown, fmt.Errorf("%w: %s", store.ErrOutcomeUnknown, text))
}

// errText is err's message, without the code of a Connect error (another
// node's words, which this node answers under a code of its own).
func errText(err error) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) && error(cerr) == err {
		return cerr.Message()
	}
	return err.Error()
}

// failoverWait bounds how long withForwarding tries again: after a leader
// dies or is cut off, it steps down or its followers notice within 1 to
// 2 s at the default tick (an election timeout, randomized), and they
// elect a new one in a round or two more. leaderWaitMargin is what it
// leaves of the request's deadline, to answer in time.
// forwardAttemptTimeout bounds one forwarded attempt: a leader cut off by
// a partition never answers, and a healthy one answers in milliseconds.
// Too low repeats slow but healthy writes (harmless: they carry their
// idempotency key); too high keeps a request on a dead leader longer.
const (
	failoverWait          = 5 * time.Second
	leaderWaitMargin      = 100 * time.Millisecond
	forwardAttemptTimeout = 2 * time.Second
)

// attemptOutcome says what one attempt of withForwarding leaves to do.
type attemptOutcome int

const (
	// attemptDone: the answer (a result or an error) is final.
	attemptDone attemptOutcome = iota
	// attemptNoLeader: no node served, because the range has no leader
	// that could be reached; nothing was written; trying later may work.
	attemptNoLeader
	// attemptUncertain: the request was handed to a leader and its outcome
	// is unknown: a write may or may not have been applied.
	attemptUncertain
)

// forwardOnce is one attempt of withForwarding.
func forwardOnce[Req, Resp any](ctx context.Context, a *apiServer, req *connect.Request[Req], keyspace string, key []byte,
	local func() (*Resp, error),
	rpc func(quorumkvv1connect.KVClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (_ *Resp, servedBy uint64, _ attemptOutcome, _ error) {
	n := a.node
	self := n.Store().NodeID()
	resp, err := local()
	switch {
	case err == nil:
		return resp, self, attemptDone, nil
	case errors.Is(err, store.ErrOutcomeUnknown):
		return nil, 0, attemptUncertain, err
	}
	var targets []uint64
	var rangeID uint64 // set when this node knows no leader of the range
	var nl *store.NotLeaderError
	switch {
	case errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != self:
		targets = []uint64{nl.Leader}
	case errors.Is(err, store.ErrNoReplicaHere), errors.As(err, &nl) && nl.Leader == 0:
		// No replica here, or this one knows no leader (it may be cut
		// off from it): the other replicas, the one that served last
		// time (the leader, most likely) first.
		r, rerr := n.Route(keyspace, key)
		if rerr != nil {
			return nil, 0, attemptDone, rerr
		}
		rangeID = r.ID
		if q, ok, qerr := n.Store().Reach(ctx, r.ID); qerr == nil && ok && !q.Can(quorum.Phase1) {
			return nil, 0, attemptDone, q.NoQuorum(quorum.Phase1, a.nodeName)
		}
		hint, _ := a.leaderHints.Load(r.ID)
		if hint != nil && hint.(uint64) != self {
			targets = append(targets, hint.(uint64))
		}
		for _, rep := range r.Replicas {
			if rep.NodeID != self && (hint == nil || rep.NodeID != hint.(uint64)) {
				targets = append(targets, rep.NodeID)
			}
		}
	default:
		return nil, 0, attemptDone, err
	}
	var noQuorum error // a replica's answer that it cannot reach a quorum
	down := 0          // targets whose dial failed
	for _, t := range targets {
		if n.Store().Silent(t) {
			// Down, paused or cut off (kv/store/silent.go): the request
			// would wait out forwardAttemptTimeout there. Not sent:
			// nothing happened.
			err = fmt.Errorf("%w: not forwarded to node %d: not heard from for over %v (down, paused or cut off)",
				store.ErrUnavailable, t, n.Store().SilentAfter())
			down++
			continue
		}
		actx, cancel := context.WithTimeout(ctx, forwardAttemptTimeout)
		resp, ferr := forwardKV(actx, n, t, req.Msg, rpc)
		cancel()
		switch {
		case ferr == nil:
			if rangeID != 0 {
				a.leaderHints.Store(rangeID, t)
			}
			return resp, t, attemptDone, nil
		case dialFailed(ferr):
			err, down = ferr, down+1 // nothing happened there: try the next
		case connect.IsWireError(ferr) && connect.CodeOf(ferr) == connect.CodeUnavailable:
			err = ferr // the target said nothing was written
			if transport.QuorumLost(ferr) {
				noQuorum = ferr
			}
		case connect.IsWireError(ferr) && connect.CodeOf(ferr) == connect.CodeUnknown:
			return nil, 0, attemptUncertain, ferr // the target's own "outcome unknown"
		case connect.IsWireError(ferr):
			return nil, 0, attemptDone, ferr // the target's own answer
		default:
			// The connection failed, or the target did not answer in
			// time, after the request may have left: the write may have
			// been applied.
			return nil, 0, attemptUncertain, connect.NewError(connect.CodeUnknown,
				fmt.Errorf("%w: node %d did not answer (%v): a write may have been applied", store.ErrOutcomeUnknown, t, ferr))
		}
	}
	if noQuorum != nil && down+1 >= len(targets) {
		// Every replica is down or says it cannot reach a quorum: no
		// election will end soon.
		return nil, 0, attemptDone, noQuorum
	}
	// Every target was down or without a leader: nothing was written. A
	// range whose only replica is this node's, stopped by a fault, will
	// not elect one: no use waiting.
	var failed *store.RangeFailedError
	if len(targets) == 0 && errors.As(err, &failed) {
		return nil, 0, attemptDone, err
	}
	return nil, 0, attemptNoLeader, err
}

// dialFailed: the request never left.
func dialFailed(err error) bool {
	var op *net.OpError
	_, notSent := errors.AsType[*transport.NotSentError](err)
	return notSent || errors.As(err, &op) && op.Op == "dial"
}

// Response headers of a KV request on a raft or paxos keyspace, for
// clients that route requests themselves: the address of the node that
// served it, the range's leader, and the range's span of the hash space
// (xxhash64 of the key) as two 16-digit hex numbers, lo-hi, hi 0 meaning
// 2^64. A client that sends the next request for a key in the span there
// saves the forwarding hop; a stale choice is only slower, as that node
// forwards. Eventual keyspaces have no leader: any node coordinates.
const (
	LeaderHeader = "Quorumkv-Leader"
	SpanHeader   = "Quorumkv-Span"
)

// routed sets resp's LeaderHeader and SpanHeader.
func routed[T any](a *apiServer, resp *connect.Response[T], keyspace string, key []byte, servedBy uint64) *connect.Response[T] {
	cat := a.node.Store().Catalog()
	ks, ok := cat.Keyspaces[keyspace]
	node, known := cat.Nodes[servedBy]
	if !ok || !kv.Served(ks.Mode) || !known || node.Addr == "" || len(cat.Spans[keyspace]) == 0 {
		return resp
	}
	spans := cat.Spans[keyspace]
	span := spans[catalog.SpanIndex(spans, catalog.HashKey(key))]
	resp.Header().Set(LeaderHeader, node.Addr)
	resp.Header().Set(SpanHeader, fmt.Sprintf("%016x-%016x", span.Lo, span.Hi))
	return resp
}

// observeKV records a KV request's duration and result, or, for a
// request another node forwarded here, counts it as forwarded: a request
// is counted once in RequestDuration, by the node the client called, so
// that a leader's answers to requests sent elsewhere (among them "not the
// leader now" during a leader change, which the sender retries) do not
// show as requests, or errors, of its own.
func (a *apiServer) observeKV(req connect.AnyRequest, keyspace, op string, start time.Time, err error) {
	if req.Header().Get(kv.ForwardedHeader) == "" {
		a.observe(keyspace, op, start, err)
		return
	}
	result := "ok"
	if err != nil {
		result = transport.ConnectCode(err).String()
	}
	label, _ := a.keyspaceLabels(keyspace)
	a.metrics.ForwardedRequests.WithLabelValues(label, op, result).Inc()
}

// keyspaceLabels are keyspace's metric label, and its mode's. A keyspace
// the catalog does not know is labelled as such, not by its name: the
// name comes from the request, and any client could otherwise create a
// series per name it makes up, or panic the handler with one that is not
// UTF-8 (found by FuzzREST).
func (a *apiServer) keyspaceLabels(keyspace string) (label, mode string) {
	if ks, ok := a.node.Store().Catalog().Keyspaces[keyspace]; ok {
		return keyspace, string(ks.Mode)
	}
	return unknownKeyspaceLabel, "unknown"
}

// observe records a request's duration and result.
func (a *apiServer) observe(keyspace, op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = transport.ConnectCode(err).String()
	}
	label, mode := a.keyspaceLabels(keyspace)
	a.metrics.RequestDuration.WithLabelValues(label, op, mode, result).Observe(time.Since(start).Seconds())
}

// unknownKeyspaceLabel is the keyspace label of requests for a keyspace
// the catalog does not have (no keyspace name can be it: names start with
// a letter or digit).
const unknownKeyspaceLabel = "(unknown)"

// checkOverridable refuses W/R overrides on keyspaces whose geometry
// decides their quorums (raft, paxos). An unknown keyspace passes: the
// operation itself says it is unknown.
func (a *apiServer) checkOverridable(keyspace string) error {
	ks, ok := a.node.Store().Catalog().Keyspaces[keyspace]
	if !ok || ks.Mode == catalog.ModeEventual {
		return nil
	}
	return fmt.Errorf("%w: keyspace %s: w and r apply to eventual keyspaces; a %s keyspace's geometry decides its quorums", catalog.ErrInvalidArgument, keyspace, ks.Mode)
}

var (
	levelNames  = map[v1.Level]string{v1.Level_LEVEL_ONE: "one", v1.Level_LEVEL_QUORUM: "quorum", v1.Level_LEVEL_ALL: "all"}
	levelByName = func() map[string]v1.Level {
		m := make(map[string]v1.Level, len(levelNames))
		for l, name := range levelNames {
			m[name] = l
		}
		return m
	}()
)

// quorumOverride reads a request's W/R for an eventual keyspace.
func (a *apiServer) quorumOverride(keyspace string, q *v1.Quorum) (catalog.QuorumOverride, error) {
	if q == nil || (q.W == 0 && q.R == 0 && q.WLevel == v1.Level_LEVEL_UNSPECIFIED && q.RLevel == v1.Level_LEVEL_UNSPECIFIED) {
		return catalog.QuorumOverride{}, nil
	}
	if err := a.checkOverridable(keyspace); err != nil {
		return catalog.QuorumOverride{}, err
	}
	o := catalog.QuorumOverride{W: int(q.W), R: int(q.R)}
	for _, l := range []struct {
		level v1.Level
		name  *string
	}{{q.WLevel, &o.WLevel}, {q.RLevel, &o.RLevel}} {
		if l.level == v1.Level_LEVEL_UNSPECIFIED {
			continue
		}
		name, ok := levelNames[l.level]
		if !ok {
			return catalog.QuorumOverride{}, fmt.Errorf("%w: quorum level %v: want one, quorum or all", catalog.ErrInvalidArgument, l.level)
		}
		*l.name = name
	}
	return o, nil
}

func (a *apiServer) Put(ctx context.Context, req *connect.Request[v1.PutRequest]) (_ *connect.Response[v1.PutResponse], err error) {
	m := req.Msg
	defer func(start time.Time) { a.observeKV(req, m.Keyspace, "put", start, err) }(time.Now())
	q, err := a.quorumOverride(m.Keyspace, m.Quorum)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	dedup := a.dedups(m.Keyspace)
	ensureIdempotencyKey(&m.IdempotencyKey)
	resp, servedBy, err := withForwarding(ctx, a, req, m.Keyspace, m.Key, repeatWrite(dedup), func() (*v1.PutResponse, error) {
		version, err := a.node.PutWith(ctx, m.Keyspace, m.Key, m.Value, catalog.WriteOptions{Quorum: q, IdempotencyKey: []byte(m.IdempotencyKey)})
		return &v1.PutResponse{Version: version}, err
	}, quorumkvv1connect.KVClient.Put)
	if err != nil {
		return nil, transport.WriteError(err, dedup)
	}
	return routed(a, connect.NewResponse(resp), m.Keyspace, m.Key, servedBy), nil
}

func (a *apiServer) Get(ctx context.Context, req *connect.Request[v1.GetRequest]) (_ *connect.Response[v1.GetResponse], err error) {
	m := req.Msg
	defer func(start time.Time) { a.observeKV(req, m.Keyspace, "get", start, err) }(time.Now())
	q, err := a.quorumOverride(m.Keyspace, m.Quorum)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp, servedBy, err := withForwarding(ctx, a, req, m.Keyspace, m.Key, readOnly, func() (*v1.GetResponse, error) {
		kv, err := a.node.GetWith(ctx, m.Keyspace, m.Key, q)
		return &v1.GetResponse{Kv: &v1.KeyValue{Key: kv.Key, Value: kv.Value, Version: kv.Version}}, err
	}, quorumkvv1connect.KVClient.Get)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return routed(a, connect.NewResponse(resp), m.Keyspace, m.Key, servedBy), nil
}

func (a *apiServer) Delete(ctx context.Context, req *connect.Request[v1.DeleteRequest]) (_ *connect.Response[v1.DeleteResponse], err error) {
	m := req.Msg
	defer func(start time.Time) { a.observeKV(req, m.Keyspace, "delete", start, err) }(time.Now())
	q, err := a.quorumOverride(m.Keyspace, m.Quorum)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	var expect *catalog.Expect
	switch e := m.Expect.(type) {
	case *v1.DeleteRequest_ExpectedValue:
		expect = &catalog.Expect{Value: e.ExpectedValue}
	case *v1.DeleteRequest_ExpectedVersion:
		expect, err = &catalog.Expect{Version: e.ExpectedVersion}, checkExpectedVersion(e.ExpectedVersion)
	case *v1.DeleteRequest_ExpectExists:
		expect, err = &catalog.Expect{Exists: true}, checkFlag("expect_exists", e.ExpectExists)
	}
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	dedup := a.dedups(m.Keyspace)
	ensureIdempotencyKey(&m.IdempotencyKey)
	resp, servedBy, err := withForwarding(ctx, a, req, m.Keyspace, m.Key, repeatWrite(dedup), func() (*v1.DeleteResponse, error) {
		existed, err := a.node.DeleteWith(ctx, m.Keyspace, m.Key, expect,
			catalog.WriteOptions{Quorum: q, IdempotencyKey: []byte(m.IdempotencyKey), Retry: req.Header().Get(transport.RetryHeader) == "true"})
		return &v1.DeleteResponse{Existed: existed}, err
	}, quorumkvv1connect.KVClient.Delete)
	if err != nil {
		return nil, transport.WriteError(err, dedup || expect != nil)
	}
	return routed(a, connect.NewResponse(resp), m.Keyspace, m.Key, servedBy), nil
}

func (a *apiServer) Scan(ctx context.Context, req *connect.Request[v1.ScanRequest]) (_ *connect.Response[v1.ScanResponse], err error) {
	m := req.Msg
	defer func(start time.Time) { a.observe(m.Keyspace, "scan", start, err) }(time.Now())
	if int(m.Limit) > a.node.Limits().MaxScanKeys {
		err = fmt.Errorf("%w: scan limit %d is over the page limit %d (MaxScanKeys); page with start_after", catalog.ErrLimit, m.Limit, a.node.Limits().MaxScanKeys)
		return nil, transport.ToConnect(err)
	}
	kvs, more, err := a.node.Scan(ctx, m.Keyspace, m.Prefix, m.StartAfter, int(m.Limit))
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp := &v1.ScanResponse{More: more}
	for _, kv := range kvs {
		resp.Kvs = append(resp.Kvs, &v1.KeyValue{Key: kv.Key, Value: kv.Value, Version: kv.Version})
	}
	return connect.NewResponse(resp), nil
}

func (a *apiServer) CompareAndSwap(ctx context.Context, req *connect.Request[v1.CompareAndSwapRequest]) (_ *connect.Response[v1.CompareAndSwapResponse], err error) {
	m := req.Msg
	defer func(start time.Time) { a.observeKV(req, m.Keyspace, "cas", start, err) }(time.Now())
	var expect catalog.Expect
	switch e := m.Expect.(type) {
	case *v1.CompareAndSwapRequest_ExpectAbsent:
		expect.Absent, err = true, checkFlag("expect_absent", e.ExpectAbsent)
	case *v1.CompareAndSwapRequest_ExpectExists:
		expect.Exists, err = true, checkFlag("expect_exists", e.ExpectExists)
	case *v1.CompareAndSwapRequest_ExpectedValue:
		expect.Value = e.ExpectedValue
	case *v1.CompareAndSwapRequest_ExpectedVersion:
		expect.Version, err = e.ExpectedVersion, checkExpectedVersion(e.ExpectedVersion)
	default:
		err = fmt.Errorf("%w: compare-and-swap needs a condition: expected_value, expect_absent, expect_exists or expected_version", catalog.ErrInvalidArgument)
	}
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	dedup := a.dedups(m.Keyspace)
	ensureIdempotencyKey(&m.IdempotencyKey)
	resp, servedBy, err := withForwarding(ctx, a, req, m.Keyspace, m.Key, repeatWrite(dedup), func() (*v1.CompareAndSwapResponse, error) {
		version, err := a.node.CompareAndSwapWith(ctx, m.Keyspace, m.Key, expect, m.NewValue,
			catalog.WriteOptions{IdempotencyKey: []byte(m.IdempotencyKey), Retry: req.Header().Get(transport.RetryHeader) == "true"})
		return &v1.CompareAndSwapResponse{Version: version}, err
	}, quorumkvv1connect.KVClient.CompareAndSwap)
	if err != nil {
		// Compare-and-swap is applied at most once per idempotency key in
		// every mode (kv/eventual/eventual_cas.go).
		return nil, transport.WriteError(err, true)
	}
	return routed(a, connect.NewResponse(resp), m.Keyspace, m.Key, servedBy), nil
}

// dedups reports whether writes to keyspace are applied at most once per
// idempotency key: raft and paxos keyspaces (kv/store/dedup.go). Eventual
// keyspaces apply plain writes again (a new version; last writer wins)
// and dedup compare-and-swap alone.
func (a *apiServer) dedups(keyspace string) bool {
	ks, ok := a.node.Store().Catalog().Keyspaces[keyspace]
	return ok && kv.Served(ks.Mode)
}

// ensureIdempotencyKey gives a write without an idempotency key one made
// here, before it is forwarded: this node's own retries and fail-overs
// (withForwarding) then apply it at most once. A client that retries on
// its own must send its own key.
func ensureIdempotencyKey(k *string) {
	if *k == "" {
		*k = "kvd-" + rand.Text()
	}
}

// checkFlag refuses a condition flag set to false: a oneof's bool case
// means the condition only when true.
func checkFlag(name string, v bool) error {
	if !v {
		return fmt.Errorf("%w: %s must be true when set", catalog.ErrInvalidArgument, name)
	}
	return nil
}

func checkExpectedVersion(v string) error {
	if v == "" {
		return fmt.Errorf("%w: expected_version is empty", catalog.ErrInvalidArgument)
	}
	return nil
}

// Admin.

// metaLeaderElsewhere says whether err is meta's "not the leader" naming
// another node, for a request that was not forwarded already: catalog
// changes are proposed by meta's leader, the placement driver.
func (a *apiServer) metaLeaderElsewhere(h http.Header, err error) (uint64, bool) {
	var nl *store.NotLeaderError
	ok := errors.As(err, &nl) && nl.RangeID == catalog.MetaRangeID && nl.Leader != 0 &&
		nl.Leader != a.node.Store().NodeID() && h.Get(kv.ForwardedHeader) == ""
	return nl.LeaderOr0(), ok
}

var modeToProto = map[catalog.Mode]v1.Mode{catalog.ModeEventual: v1.Mode_MODE_EVENTUAL, catalog.ModeRaft: v1.Mode_MODE_RAFT, catalog.ModePaxos: v1.Mode_MODE_PAXOS}

func keyspaceToProto(ks catalog.KeyspaceDescriptor) *v1.Keyspace {
	return &v1.Keyspace{
		Name: ks.Name, Mode: modeToProto[ks.Mode], Replicas: uint32(ks.Replicas), Quorum: ks.Quorum,
		W: uint32(ks.W), R: uint32(ks.R), Ranges: uint32(ks.Ranges), SloppyQuorum: ks.SloppyQuorum, Version: ks.ID,
		NoReadLease: ks.NoReadLease,
	}
}

func (a *apiServer) CreateKeyspace(ctx context.Context, req *connect.Request[v1.CreateKeyspaceRequest]) (*connect.Response[v1.CreateKeyspaceResponse], error) {
	k := req.Msg.GetKeyspace()
	if k == nil {
		return nil, transport.ToConnect(fmt.Errorf("%w: keyspace is missing", catalog.ErrInvalidArgument))
	}
	var mode catalog.Mode
	for m, p := range modeToProto {
		if p == k.Mode {
			mode = m
		}
	}
	if mode == "" {
		return nil, transport.ToConnect(fmt.Errorf("%w: keyspace %s: mode is missing: want eventual, raft or paxos", catalog.ErrInvalidArgument, k.Name))
	}
	d := catalog.KeyspaceDescriptor{
		Name: k.Name, Mode: mode, Replicas: int(k.Replicas), Quorum: k.Quorum,
		W: int(k.W), R: int(k.R), Ranges: int(k.Ranges), SloppyQuorum: k.SloppyQuorum,
		NoReadLease: k.NoReadLease,
	}
	return atMetaLeader(ctx, a, req, quorumkvv1connect.AdminClient.CreateKeyspace, func() (*v1.CreateKeyspaceResponse, error) {
		created, err := a.node.CreateKeyspace(ctx, d)
		return &v1.CreateKeyspaceResponse{Keyspace: keyspaceToProto(created)}, err
	})
}

func (a *apiServer) ListKeyspaces(ctx context.Context, _ *connect.Request[v1.ListKeyspacesRequest]) (*connect.Response[v1.ListKeyspacesResponse], error) {
	return connect.NewResponse(&v1.ListKeyspacesResponse{Keyspaces: a.keyspaces()}), nil
}

func (a *apiServer) keyspaces() []*v1.Keyspace {
	cat := a.node.Store().Catalog()
	var out []*v1.Keyspace
	for _, name := range sortedKeys(cat.Keyspaces) {
		out = append(out, keyspaceToProto(cat.Keyspaces[name]))
	}
	return out
}

func (a *apiServer) DescribeKeyspace(ctx context.Context, req *connect.Request[v1.DescribeKeyspaceRequest]) (*connect.Response[v1.DescribeKeyspaceResponse], error) {
	if err := a.node.AwaitKeyspace(ctx, req.Msg.Name); err != nil {
		return nil, transport.ToConnect(err)
	}
	ks := a.node.Store().Catalog().Keyspaces[req.Msg.Name]
	ranges, err := a.Ranges(ctx, ks.Name)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&v1.DescribeKeyspaceResponse{Keyspace: keyspaceToProto(ks), Ranges: ranges}), nil
}

func (a *apiServer) DrainNode(ctx context.Context, req *connect.Request[v1.DrainNodeRequest]) (*connect.Response[v1.DrainNodeResponse], error) {
	id := req.Msg.Id
	if id == a.node.Store().NodeID() {
		moved, kept := a.node.Drain(ctx)
		return connect.NewResponse(&v1.DrainNodeResponse{Moved: uint32(moved), Kept: uint32(kept)}), nil
	}
	nd, ok := a.node.Store().Catalog().Nodes[id]
	switch {
	case !ok:
		return nil, transport.ToConnect(fmt.Errorf("%w: node %d is not in the catalog (kvctl cluster members lists them)", catalog.ErrInvalidArgument, id))
	case req.Header().Get(kv.ForwardedHeader) != "":
		return nil, transport.ToConnect(fmt.Errorf("%w: a drain of node %d reached node %d: a forwarded request is not forwarded again",
			store.ErrUnavailable, id, a.node.Store().NodeID()))
	}
	// The node itself drains: the request goes to it.
	addr, ok := a.node.Store().NodeAddr(id)
	if !ok {
		return nil, transport.ToConnect(fmt.Errorf("%w: node %d (%s) has no known address", store.ErrUnavailable, id, nd.Name))
	}
	fwd := connect.NewRequest(req.Msg)
	fwd.Header().Set(kv.ForwardedHeader, "1")
	resp, err := a.node.Peers().AdminClient(addr).DrainNode(ctx, fwd)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(resp.Msg), nil
}

func (a *apiServer) RemoveNode(ctx context.Context, req *connect.Request[v1.RemoveNodeRequest]) (*connect.Response[v1.RemoveNodeResponse], error) {
	return atMetaLeader(ctx, a, req, quorumkvv1connect.AdminClient.RemoveNode, func() (*v1.RemoveNodeResponse, error) {
		return &v1.RemoveNodeResponse{}, a.node.RemoveNode(ctx, req.Msg.Id)
	})
}

func (a *apiServer) DecommissionNode(ctx context.Context, req *connect.Request[v1.DecommissionNodeRequest]) (*connect.Response[v1.DecommissionNodeResponse], error) {
	return atMetaLeader(ctx, a, req, quorumkvv1connect.AdminClient.DecommissionNode, func() (*v1.DecommissionNodeResponse, error) {
		return &v1.DecommissionNodeResponse{}, a.node.Decommission(ctx, req.Msg.Id)
	})
}

func (a *apiServer) Rebalance(ctx context.Context, req *connect.Request[v1.RebalanceRequest]) (*connect.Response[v1.RebalanceResponse], error) {
	return atMetaLeader(ctx, a, req, quorumkvv1connect.AdminClient.Rebalance, func() (*v1.RebalanceResponse, error) {
		moves, inFlight, err := a.node.Rebalance(ctx, req.Msg.DryRun)
		resp := &v1.RebalanceResponse{InFlight: uint32(inFlight)}
		for _, m := range moves {
			resp.Moves = append(resp.Moves, &v1.ReplicaMove{Keyspace: m.Keyspace, RangeId: m.Range, From: m.From, To: m.To.NodeID, Reason: m.Reason})
		}
		return resp, err
	})
}

// atMetaLeader answers req with local's answer, or, when local found that
// meta's leader is another node (and req was not forwarded already), with
// that node's answer to req.
func atMetaLeader[Req, Resp any](ctx context.Context, a *apiServer, req *connect.Request[Req],
	rpc func(quorumkvv1connect.AdminClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
	local func() (*Resp, error)) (*connect.Response[Resp], error) {
	return atMetaLeaderVia(ctx, a, req, a.node.Peers().AdminClient, rpc, local)
}

// atMetaLeaderVia is atMetaLeader for a service whose client at an
// address client returns.
func atMetaLeaderVia[C, Req, Resp any](ctx context.Context, a *apiServer, req *connect.Request[Req], client func(addr string) C,
	rpc func(C, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
	local func() (*Resp, error)) (*connect.Response[Resp], error) {
	resp, err := local()
	if leader, ok := a.metaLeaderElsewhere(req.Header(), err); ok {
		resp, err = forwardTo(ctx, a.node, leader, "meta's leader", client, req.Msg, rpc)
	}
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(resp), nil
}

func (a *apiServer) DropKeyspace(ctx context.Context, req *connect.Request[v1.DropKeyspaceRequest]) (*connect.Response[v1.DropKeyspaceResponse], error) {
	return atMetaLeader(ctx, a, req, quorumkvv1connect.AdminClient.DropKeyspace, func() (*v1.DropKeyspaceResponse, error) {
		return &v1.DropKeyspaceResponse{}, a.node.DropKeyspace(ctx, req.Msg.Name)
	})
}

func (a *apiServer) ListMembers(ctx context.Context, _ *connect.Request[v1.ListMembersRequest]) (*connect.Response[v1.ListMembersResponse], error) {
	return connect.NewResponse(&v1.ListMembersResponse{Members: a.members()}), nil
}

var memberStates = map[string]v1.MemberState{"alive": v1.MemberState_MEMBER_STATE_ALIVE, "dead": v1.MemberState_MEMBER_STATE_DEAD, "left": v1.MemberState_MEMBER_STATE_LEFT,
	"removed": v1.MemberState_MEMBER_STATE_REMOVED}

// members lists the catalog's nodes with their gossip state by identity,
// then the nodes gossip knows that the catalog does not (id 0); see
// Node.Members. A state gossip cannot tell is MEMBER_STATE_UNSPECIFIED.
func (a *apiServer) members() []*v1.Member {
	var out []*v1.Member
	for _, m := range a.node.Members() {
		out = append(out, &v1.Member{NodeId: m.Name, Address: m.Addr, GossipAddress: m.GossipAddr, Zone: m.Zone,
			Weight: uint32(m.Weight), Version: m.Version, State: memberStates[m.State], Id: m.ID, Uuid: m.UUID,
			Decommissioning: m.Decommissioning, Replicas: uint32(m.Replicas)})
	}
	return out
}

func (a *apiServer) ListRanges(ctx context.Context, req *connect.Request[v1.ListRangesRequest]) (*connect.Response[v1.ListRangesResponse], error) {
	name := req.Msg.Keyspace
	if name != "" {
		if err := a.node.AwaitKeyspace(ctx, name); err != nil {
			return nil, transport.ToConnect(err)
		}
	}
	ranges, err := a.Ranges(ctx, name)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&v1.ListRangesResponse{Ranges: ranges}), nil
}

// Ranges describes the ranges of keyspace (all when ""), with this node's
// view of their leaders and terms.
func (a *apiServer) Ranges(ctx context.Context, keyspace string) ([]*v1.Range, error) {
	status, err := a.node.Store().RangeStatuses(ctx)
	if err != nil {
		return nil, err
	}
	cat := a.node.Store().Catalog()
	var out []*v1.Range
	for _, name := range sortedKeys(cat.Ranges) {
		if keyspace != "" && name != keyspace {
			continue
		}
		for _, r := range cat.Ranges[name] {
			pr := &v1.Range{Keyspace: name, RangeId: r.ID, HashLo: r.Span.Lo, HashHi: r.Span.Hi}
			for _, rep := range r.Replicas {
				pr.Replicas = append(pr.Replicas, &v1.Replica{NodeId: a.nodeName(rep.NodeID), Filling: rep.Filling})
			}
			for _, rep := range r.Leaving {
				pr.Replicas = append(pr.Replicas, &v1.Replica{NodeId: a.nodeName(rep.NodeID), Leaving: true})
			}
			if st, ok := status[r.ID]; ok {
				if st.Leader != 0 {
					pr.Leader = a.nodeName(st.Leader)
				}
				pr.Term, pr.CommitIndex, pr.Error = st.Term, st.Commit, st.Error
			}
			out = append(out, pr)
		}
	}
	return out, nil
}

// nodeName shows a node ID as the node's name (its --node-id), with the
// ID after a '#' when another node of the catalog has that name too (a
// node that lost its data dir rejoined as a new node under its old name).
func (a *apiServer) nodeName(id uint64) string {
	nodes := a.node.Store().Catalog().Nodes
	n, ok := nodes[id]
	if !ok {
		return "node-" + strconv.FormatUint(id, 10)
	}
	for other, o := range nodes {
		if other != id && o.Name == n.Name {
			return n.Name + "#" + strconv.FormatUint(id, 10)
		}
	}
	return n.Name
}

func (a *apiServer) Status(ctx context.Context, _ *connect.Request[v1.StatusRequest]) (*connect.Response[v1.StatusResponse], error) {
	status, err := a.node.Store().RangeStatuses(ctx)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp := &v1.StatusResponse{
		NodeId: a.info.NodeName, ClusterId: a.info.ClusterID, Version: a.info.Version,
		Members: a.members(), Keyspaces: a.keyspaces(), LocalRanges: uint32(len(status)), Tls: a.info.Secure,
		AuthEnabled: a.node.Store().Catalog().Auth.Settings.Enabled, ClusterSecret: a.info.ClusterSecretDigest != "",
	}
	for id, st := range status {
		if st.State == "leader" {
			resp.LocalLeaders++
		}
		if id == catalog.MetaRangeID && st.Leader != 0 {
			resp.MetaLeader = a.nodeName(st.Leader)
		}
	}
	return connect.NewResponse(resp), nil
}

// forwardKV sends a KV request to the node that leads the key's range:
// on the Records stream to it (forward.go), or as a unary KV call to a
// node that takes no forwarded calls there.
func forwardKV[Req, Resp any](ctx context.Context, n *kv.Node, leader uint64, req *Req,
	rpc func(quorumkvv1connect.KVClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	if resp, ok, err := forwardOnStream[Resp](ctx, n, leader, req); ok {
		return resp, err
	}
	return forwardTo(ctx, n, leader, "the leader", n.Peers().KVClient, req, rpc)
}

// forwardTo sends a request to node to, named what in errors, with the
// client of the service at its address, marked forwarded.
func forwardTo[C, Req, Resp any](ctx context.Context, n *kv.Node, to uint64, what string, client func(addr string) C, req *Req,
	rpc func(C, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, ok := n.Store().NodeAddr(to)
	if !ok {
		return nil, fmt.Errorf("%w: %s, node %d, has no known address", store.ErrUnavailable, what, to)
	}
	r := connect.NewRequest(req)
	r.Header().Set(kv.ForwardedHeader, "1")
	resp, err := rpc(client(addr), ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// GossipKey changes this node's gossip keyring (admin.proto) and saves
// the keys where the next start reads them.
func (a *apiServer) GossipKey(ctx context.Context, req *connect.Request[v1.GossipKeyRequest]) (*connect.Response[v1.GossipKeyResponse], error) {
	g := a.info.Keyring
	if g == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this node runs no gossip"))
	}
	key := req.Msg.Key
	if req.Msg.Op != v1.GossipKeyOp_GOSSIP_KEY_OP_LIST {
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("a gossip key is 16, 24 or 32 bytes, not %d", n))
		}
	}
	var err error
	switch req.Msg.Op {
	case v1.GossipKeyOp_GOSSIP_KEY_OP_LIST:
	case v1.GossipKeyOp_GOSSIP_KEY_OP_INSTALL:
		err = g.InstallGossipKey(key)
	case v1.GossipKeyOp_GOSSIP_KEY_OP_USE:
		err = g.UseGossipKey(key)
	case v1.GossipKeyOp_GOSSIP_KEY_OP_REMOVE:
		err = g.RemoveGossipKey(key)
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("gossip key operation %v: want list, install, use or remove", req.Msg.Op))
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	keys, err := g.GossipKeys()
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	if req.Msg.Op != v1.GossipKeyOp_GOSSIP_KEY_OP_LIST && a.info.SaveGossipKeys != nil {
		if err := a.info.SaveGossipKeys(keys); err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("the keyring changed, but saving it failed (a restart would use the old keys): %w", err))
		}
	}
	resp := &v1.GossipKeyResponse{NodeId: a.info.NodeName}
	for _, k := range keys {
		sum := sha256.Sum256(k)
		resp.Fingerprints = append(resp.Fingerprints, hex.EncodeToString(sum[:8]))
	}
	return connect.NewResponse(resp), nil
}
