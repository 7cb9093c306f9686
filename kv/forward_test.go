package kv

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// oldRecords serves the Records stream as a kvd from before ForwardCall
// did: a call of a kind it does not know is answered with an error, and
// nothing runs.
type oldRecords struct {
	peerv1connect.UnimplementedPeerHandler
}

func (oldRecords) Records(ctx context.Context, bs *connect.BidiStream[peerv1.RecordsRequest, peerv1.RecordsResponse]) error {
	for {
		req, err := bs.Receive()
		if err != nil {
			return nil
		}
		resp := &peerv1.RecordsResponse{}
		for _, c := range req.Calls {
			resp.Answers = append(resp.Answers, &peerv1.RecordAnswer{Id: c.Id, Answer: &peerv1.RecordAnswer_Error{
				Error: &peerv1.RecordError{Code: uint32(connect.CodeInvalidArgument), Message: "record call: unknown kind <nil>"}}})
		}
		if err := bs.Send(resp); err != nil {
			return err
		}
	}
}

// A forwarded request goes on the Records stream to a node that takes it
// there, and the forwarding node falls back to the unary KV call
// (ErrForwardUnary) for one that serves no Records stream or does not
// know forwarded calls on it, neither of which ran it.
func TestForwardOnRecordsStream(t *testing.T) {
	n, _ := recordStreamNode(t)
	var mu sync.Mutex
	var served []string
	n.SetForwardHandler(func(ctx context.Context, call *peerv1.ForwardCall) *peerv1.ForwardAnswer {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 10*time.Second {
			return ForwardError(connect.NewError(connect.CodeInternal, errors.New("served without the caller's deadline")))
		}
		mu.Lock()
		served = append(served, string(call.GetPut().GetKey()))
		mu.Unlock()
		return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Put{Put: &v1.PutResponse{Version: "1"}}}
	})
	current, _ := servePeer(t, n, nil)
	noRecords, _ := servePeer(t, n, servedElsewhere(http.NotFoundHandler()))
	_, oldHandler := peerv1connect.NewPeerHandler(oldRecords{})
	old, _ := servePeer(t, n, servedElsewhere(oldHandler))
	rs := transport.NewRecordStreams(transport.NewPeers(transport.H2CClient()))
	defer rs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(key string) *peerv1.ForwardCall {
		return &peerv1.ForwardCall{Request: &peerv1.ForwardCall_Put{Put: &v1.PutRequest{Keyspace: "ks", Key: []byte(key)}}}
	}

	ans, err := forwardOn(ctx, rs, 1, current, put("a"))
	if err != nil || ans.GetPut().GetVersion() != "1" {
		t.Fatalf("a forward to a current node: %v, %v", ans, err)
	}
	if _, err := forwardOn(ctx, rs, 2, noRecords, put("b")); !errors.Is(err, ErrForwardUnary) {
		t.Fatalf("a forward to a node without Records: %v, want ErrForwardUnary", err)
	}
	if _, err := forwardOn(ctx, rs, 3, old, put("c")); !errors.Is(err, ErrForwardUnary) {
		t.Fatalf("a forward to a node that does not know forwarded calls: %v, want ErrForwardUnary", err)
	}
	mu.Lock()
	if len(served) != 1 || served[0] != "a" {
		t.Fatalf("served %q, want only a", served)
	}
	mu.Unlock()

	// Before kv/server gives it a handler, a node refuses forwarded
	// calls as Unavailable: nothing was written there.
	n.forward.Store(nil)
	ans, err = forwardOn(ctx, rs, 1, current, put("d"))
	if err != nil || ans.GetError().GetCode() != uint32(connect.CodeUnavailable) {
		t.Fatalf("a forward to a node without a handler: %v, %v, want Unavailable", ans, err)
	}
}
