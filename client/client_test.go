package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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
}

func (s *scripted) Put(_ context.Context, req *connect.Request[v1.PutRequest]) (*connect.Response[v1.PutResponse], error) {
	if s.calls.Add(1) <= s.unavailable {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("no leader for range 3"))
	}
	if s.putErr != nil {
		return nil, s.putErr
	}
	return connect.NewResponse(&v1.PutResponse{Version: "v" + string(req.Msg.Value)}), nil
}

func (s *scripted) Get(context.Context, *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	return nil, connect.NewError(connect.CodeNotFound, errors.New("key not found"))
}

func (s *scripted) CompareAndSwap(context.Context, *connect.Request[v1.CompareAndSwapRequest]) (*connect.Response[v1.CompareAndSwapResponse], error) {
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the key holds another value"))
}

func serve(t *testing.T, h *scripted) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(quorumkvv1connect.NewKVHandler(h))
	srv := httptest.NewUnstartedServer(mux)
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
	c := newClient(t, false, deadEndpoint(t), deadEndpoint(t))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Put(ctx, "ks", []byte("k"), []byte("1"), Quorum{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put to dead endpoints = %v, want the deadline", err)
	}
}
