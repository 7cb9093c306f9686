package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// scripted is a KV server whose answers the test chooses: the client's
// retry rules are about what goes over the wire, so they are tested
// against a real HTTP/2 server rather than a mocked interface.
type scripted struct {
	quorumkvv1connect.UnimplementedKVHandler
	calls       atomic.Int32
	unavailable int32 // answer Unavailable to the first calls
	putErr      error // then answer Put with this
	// leader, if set, is named as the range's leader in Put's answers,
	// for a range spanning the whole hash space.
	leader atomic.Pointer[string]
	// putErrs, if set, answer the first Puts after the Unavailable ones,
	// in turn (nil: break the connection instead of answering).
	putErrs []func() error
	// keys are the idempotency keys of the Puts received, and retries
	// their Quorumkv-Retry headers.
	keys    []string
	retries []string
	mu      sync.Mutex
	// broken, if set, closes the clients' connections.
	broken func()
	// getHangs: Get answers nothing until the request's deadline.
	getHangs bool
}

func (s *scripted) Put(ctx context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	s.mu.Lock()
	s.keys = append(s.keys, req.Msg.IdempotencyKey)
	s.retries = append(s.retries, req.Header().Get(retryHeader))
	var next func() error
	if len(s.putErrs) > 0 && s.calls.Load() >= s.unavailable {
		next, s.putErrs = s.putErrs[0], s.putErrs[1:]
	}
	s.mu.Unlock()
	if s.calls.Add(1) <= s.unavailable {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("no leader for range 3"))
	}
	if next != nil {
		if err := next(); err != nil {
			return nil, err
		}
		s.broken()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.putErr != nil {
		return nil, s.putErr
	}
	resp := connect.NewResponse(&v1.PutResponse{Version: "v" + string(req.Msg.Value)})
	if l := s.leader.Load(); l != nil {
		resp.Header().Set(leaderHeader, *l)
		resp.Header().Set(spanHeader, "0000000000000000-0000000000000000")
	}
	return resp, nil
}

func (s *scripted) Get(ctx context.Context, _ *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	if s.getHangs {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, connect.NewError(connect.CodeNotFound, errors.New("key not found"))
}

func (s *scripted) CompareAndSwap(context.Context, *connect.Request[v1.CompareAndSwapRequest]) (*connect.Response[v1.CompareAndSwapResponse], error) {
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the key holds another value"))
}

// seen returns the idempotency keys and retry headers of the Puts so far.
func (s *scripted) seen() (keys, retries []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys), slices.Clone(s.retries)
}

func serve(t *testing.T, h *scripted) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(quorumkvv1connect.NewKVHandler(h))
	srv := httptest.NewUnstartedServer(mux)
	h.broken = srv.CloseClientConnections
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// deadEndpoint is an address nothing listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newClient(t *testing.T, grpc bool, endpoints ...string) *Client {
	c, err := New(Config{Endpoints: endpoints, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, GRPC: grpc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetriesUnavailableAndDeadEndpoints(t *testing.T) {
	for _, grpc := range []bool{false, true} {
		h := &scripted{unavailable: 2}
		c := newClient(t, grpc, deadEndpoint(t), serve(t, h))
		v, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{})
		if err != nil || v != "v1" {
			t.Fatalf("grpc=%v: Put = %q, %v", grpc, v, err)
		}
		if got := h.calls.Load(); got != 3 {
			t.Errorf("grpc=%v: server saw %d calls, want 2 refused and 1 served", grpc, got)
		}
	}
}

func TestDoesNotRetryUncertainOutcomes(t *testing.T) {
	h := &scripted{putErr: connect.NewError(connect.CodeDeadlineExceeded, errors.New("commit not confirmed in time"))}
	c := newClient(t, false, serve(t, h))
	if _, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{}); connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("Put = %v, want DeadlineExceeded", err)
	}
	if got := h.calls.Load(); got != 1 {
		t.Errorf("an uncertain write was sent %d times", got)
	}
}

func TestSentinels(t *testing.T) {
	c := newClient(t, false, serve(t, &scripted{}))
	if _, err := c.Get(context.Background(), "ks", []byte("k"), Quorum{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get = %v, want ErrNotFound", err)
	}
	_, err := c.CompareAndSwap(context.Background(), "ks", []byte("k"), Expect{Absent: true}, []byte("x"))
	if !errors.Is(err, ErrConditionFailed) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("CompareAndSwap = %v, want ErrConditionFailed", err)
	}
}

func TestGivesUpAtTheDeadline(t *testing.T) {
	c := newClient(t, false, deadEndpoint(t), serve(t, &scripted{getHangs: true}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "ks", []byte("k"), Quorum{})
	// The client's deadline, or the server's answer that the request's
	// deadline passed: either way, not before it.
	if !errors.Is(err, context.DeadlineExceeded) && connect.CodeOf(err) != connect.CodeDeadlineExceeded || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("Get from a dead and a silent endpoint = %v after %v, want the deadline", err, time.Since(start))
	}
}

// When every endpoint in turn refuses the connection, the client gives up
// at once, naming each, instead of waiting out its deadline; the endpoints
// are still tried in order.
func TestGivesUpAtOnceWhenEveryEndpointRefuses(t *testing.T) {
	dead1, dead2 := deadEndpoint(t), deadEndpoint(t)
	c, err := New(Config{Endpoints: []string{dead1, dead2}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Get(context.Background(), "ks", []byte("k"), Quorum{})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Get took %v with every endpoint refusing", took)
	}
	if !errors.Is(err, ErrNoNode) || !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want ErrNoNode for refused connections", err)
	}
	msg := err.Error()
	if i, j := strings.Index(msg, dead1), strings.Index(msg, dead2); i < 0 || j < i || !strings.Contains(msg, "connection refused") {
		t.Errorf("the error does not name %s then %s, refused: %v", dead1, dead2, err)
	}
	// One that serves, after the dead one: served.
	c = newClient(t, false, dead1, serve(t, &scripted{}))
	if _, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{}); err != nil {
		t.Errorf("Put via a dead then a live endpoint = %v", err)
	}
}

// A read that no node answers before the deadline is not an unknown
// outcome: nothing was written, and the error does not say a write may
// have been applied.
func TestReadTimeoutIsNotAnUnknownOutcome(t *testing.T) {
	c := newClient(t, false, serve(t, &scripted{getHangs: true}))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "ks", []byte("k"), Quorum{})
	deadline := errors.Is(err, ErrNoNode) || connect.CodeOf(err) == connect.CodeDeadlineExceeded
	if err == nil || errors.Is(err, ErrOutcomeUnknown) || strings.Contains(err.Error(), "write") || !deadline {
		t.Fatalf("Get from a node that never answers = %v; want the deadline or ErrNoNode, not an unknown outcome", err)
	}
}

// A node's answer names the range's leader: the next requests for keys
// of the range go there first; a leader that cannot serve is forgotten.
func TestSendsToTheLeaderItLearned(t *testing.T) {
	follower, leader := &scripted{}, &scripted{}
	fAddr, lAddr := serve(t, follower), serve(t, leader)
	follower.leader.Store(&lAddr) // it forwarded to the leader
	leader.leader.Store(&lAddr)
	c := newClient(t, false, fAddr, lAddr)
	ctx := context.Background()
	for i := range 5 {
		if _, err := c.Put(ctx, "ks", []byte{byte('a' + i)}, []byte("1"), Quorum{}); err != nil {
			t.Fatal(err)
		}
	}
	if f, l := follower.calls.Load(), leader.calls.Load(); f != 1 || l != 4 {
		t.Fatalf("follower served %d puts, leader %d; want 1 (before the client knew) and 4", f, l)
	}
	// The leader loses its leadership; the follower, now leader, serves.
	leader.unavailable = leader.calls.Load() + 1
	follower.leader.Store(&fAddr)
	for range 3 {
		if _, err := c.Put(ctx, "ks", []byte("k"), []byte("1"), Quorum{}); err != nil {
			t.Fatal(err)
		}
	}
	if f, l := follower.calls.Load(), leader.calls.Load(); f != 4 || l != 5 {
		t.Fatalf("after the change: follower served %d puts in all, old leader %d; want 4 and 5 (one refused)", f, l)
	}
}

func TestRoutes(t *testing.T) {
	rs := newRoutes([]string{"a:1", "http://b:2", "c:3"})
	header := func(leader, span string) http.Header {
		h := http.Header{}
		h.Set(leaderHeader, leader)
		h.Set(spanHeader, span)
		return h
	}
	rs.learn("ks", header("b:2", "0000000000000000-8000000000000000"))
	rs.learn("ks", header("c:3", "8000000000000000-0000000000000000"))
	rs.learn("ks", header("z:9", "0000000000000000-1000000000000000"))    // not an endpoint
	rs.learn("ks", header("a:1", "9000000000000000-8000000000000000"))    // hi below lo
	rs.learn("other", header("a:1", "0000000000000000-0000000000000000")) // its own keyspace
	for _, c := range []struct {
		h    uint64
		want int
	}{{0, 1}, {0x7fffffffffffffff, 1}, {0x8000000000000000, 2}, {^uint64(0), 2}} {
		if got, ok := rs.lookup("ks", c.h); !ok || got != c.want {
			t.Errorf("lookup(%x) = %d, %v; want %d", c.h, got, ok, c.want)
		}
	}
	// A split range: the new span replaces what it overlaps.
	rs.learn("ks", header("a:1", "4000000000000000-c000000000000000"))
	for _, c := range []struct {
		h    uint64
		want int
		ok   bool
	}{{0, 0, false}, {0x4000000000000000, 0, true}, {0xbfffffffffffffff, 0, true}, {0xc000000000000000, 0, false}} {
		if got, ok := rs.lookup("ks", c.h); ok != c.ok || got != c.want {
			t.Errorf("after the split, lookup(%x) = %d, %v; want %d, %v", c.h, got, ok, c.want, c.ok)
		}
	}
	rs.forget("ks", 0x5000000000000000)
	if _, ok := rs.lookup("ks", 0x5000000000000000); ok {
		t.Error("a forgotten span is still used")
	}
	if got, ok := rs.lookup("other", 42); !ok || got != 0 {
		t.Errorf("other keyspace: %d, %v", got, ok)
	}
}

// An outcome the server says is unknown but safe to retry is retried with
// the same idempotency key; one it does not mark is returned at once, as
// ErrOutcomeUnknown.
func TestRetriesUnknownOutcomesMarkedSafe(t *testing.T) {
	unknown := func(safe bool) func() error {
		return func() error {
			err := connect.NewError(connect.CodeUnknown, errors.New("outcome unknown: the leader stepped down"))
			if safe {
				err.Meta().Set(retrySafeHeader, "true")
			}
			return err
		}
	}
	h := &scripted{putErrs: []func() error{unknown(true), unknown(true)}}
	c := newClient(t, false, serve(t, h))
	if v, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{}); err != nil || v != "v1" {
		t.Fatalf("Put = %q, %v; want it retried until served", v, err)
	}
	keys, retries := h.seen()
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("idempotency keys of the attempts = %q; want one key, sent three times", keys)
	}
	if retries[0] != "" || retries[1] != "true" || retries[2] != "true" {
		t.Fatalf("Quorumkv-Retry headers of the attempts = %q; want none on the first, true on the retries", retries)
	}
	h = &scripted{putErrs: []func() error{unknown(false)}}
	c = newClient(t, false, serve(t, h))
	if _, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{}); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Put = %v; want ErrOutcomeUnknown, not retried", err)
	}
	if keys, _ := h.seen(); len(keys) != 1 {
		t.Fatalf("an unknown outcome not marked safe was sent %d times", len(keys))
	}
	// Two writes have two keys.
	if _, err := c.Put(context.Background(), "ks", []byte("k"), []byte("2"), Quorum{}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := h.seen(); keys[1] == keys[0] {
		t.Fatalf("two writes share the idempotency key %q", keys[0])
	}
}

// A connection that breaks after a write left is retried only in a
// keyspace known to dedup writes (its answers named a leader); elsewhere
// the outcome is unknown.
func TestRetriesBrokenConnectionsOnlyWhereDeduplicated(t *testing.T) {
	brk := func() error { return nil }
	h := &scripted{putErrs: []func() error{brk}}
	c := newClient(t, false, serve(t, h))
	if _, err := c.Put(context.Background(), "ev", []byte("k"), []byte("1"), Quorum{}); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Put in a keyspace not known to dedup = %v; want ErrOutcomeUnknown", err)
	}
	if keys, _ := h.seen(); len(keys) != 1 {
		t.Fatalf("sent %d times; want once", len(keys))
	}

	h = &scripted{}
	addr := serve(t, h)
	h.leader.Store(&addr)
	c = newClient(t, false, addr)
	if _, err := c.Put(context.Background(), "rk", []byte("k"), []byte("1"), Quorum{}); err != nil { // learns that rk dedups
		t.Fatal(err)
	}
	h.mu.Lock()
	h.putErrs = []func() error{brk}
	h.mu.Unlock()
	if v, err := c.Put(context.Background(), "rk", []byte("k"), []byte("2"), Quorum{}); err != nil || v != "v2" {
		t.Fatalf("Put in a keyspace that dedups, connection broken once = %q, %v; want it retried", v, err)
	}
	if keys, _ := h.seen(); len(keys) != 3 || keys[1] != keys[2] {
		t.Fatalf("idempotency keys = %q; want the retry to reuse the second write's key", keys)
	}
}

// When every endpoint is down or says it cannot reach a quorum, the client
// answers at once with the node's words, rather than at its deadline.
func TestQuorumLostAnswersAtOnce(t *testing.T) {
	lost := connect.NewError(connect.CodeUnavailable, errors.New("range 3 cannot elect a leader: an election needs any 2 of 3 voters; this node hears from 1 of 3"))
	lost.Meta().Set(quorumHeader, "lost")
	h := &scripted{putErr: lost}
	c := newClient(t, false, serve(t, h), deadEndpoint(t))
	start := time.Now()
	_, err := c.Put(context.Background(), "ks", []byte("k"), []byte("1"), Quorum{})
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "hears from 1 of 3") {
		t.Fatalf("Put = %v; want the node's Unavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("answered after %v; want at once", d)
	}
}

// Spread: requests whose leader the client does not know (here: no
// answer names one, as in an eventual keyspace) start at an endpoint
// chosen by the key's hash, each key always the same one; without Spread,
// all go to the first endpoint.
func TestSpreadsKeysWithoutALeaderOverEndpoints(t *testing.T) {
	for _, spread := range []bool{false, true} {
		servers := []*scripted{{}, {}, {}}
		var addrs []string
		for _, s := range servers {
			addrs = append(addrs, serve(t, s))
		}
		c, err := New(Config{Endpoints: addrs, Spread: spread})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		const keys = 300
		for range 2 {
			for i := range keys {
				if _, err := c.Put(ctx, "ev", []byte{byte(i), byte(i >> 8)}, []byte("1"), Quorum{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var calls []int32
		for _, s := range servers {
			calls = append(calls, s.calls.Load())
		}
		if !spread {
			if calls[0] != 2*keys {
				t.Errorf("without Spread: puts per endpoint %v; want all %d on the first", calls, 2*keys)
			}
			continue
		}
		for i, n := range calls {
			// 600 puts over 3 endpoints: 200 each on average; a hash that
			// spreads keeps each well within 100..300, and each key on one
			// endpoint makes every count even.
			if n < 100 || n > 300 || n%2 != 0 {
				t.Errorf("with Spread: puts per endpoint %v; endpoint %d is not one of three even shares of the keys", calls, i)
			}
		}
	}
}
