package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// Forwarded KV requests travel on the Records stream between two nodes
// (kv/forward.go). This file is both ends: forwardKV sends one and turns
// its answer back into what the unary KV call would have returned, and
// serveForward runs one through the same authorization and handler as
// the KV service's calls.

// forwardCall wraps a KV request in a ForwardCall; ok is false for a
// request that is not forwarded on the stream.
func forwardCall(req any) (_ *peerv1.ForwardCall, ok bool) {
	switch m := req.(type) {
	case *v1.PutRequest:
		return &peerv1.ForwardCall{Request: &peerv1.ForwardCall_Put{Put: m}}, true
	case *v1.GetRequest:
		return &peerv1.ForwardCall{Request: &peerv1.ForwardCall_Get{Get: m}}, true
	case *v1.DeleteRequest:
		return &peerv1.ForwardCall{Request: &peerv1.ForwardCall_Delete{Delete: m}}, true
	case *v1.CompareAndSwapRequest:
		return &peerv1.ForwardCall{Request: &peerv1.ForwardCall_CompareAndSwap{CompareAndSwap: m}}, true
	}
	return nil, false
}

// forwardResult is the response a ForwardAnswer holds, or the error it
// says the call failed with, as a Connect error from the wire (metadata
// included), as the unary call would have returned it.
func forwardResult(a *peerv1.ForwardAnswer) (any, error) {
	switch r := a.Response.(type) {
	case *peerv1.ForwardAnswer_Put:
		return r.Put, nil
	case *peerv1.ForwardAnswer_Get:
		return r.Get, nil
	case *peerv1.ForwardAnswer_Delete:
		return r.Delete, nil
	case *peerv1.ForwardAnswer_CompareAndSwap:
		return r.CompareAndSwap, nil
	case *peerv1.ForwardAnswer_Error:
		code := connect.Code(r.Error.GetCode())
		if code == 0 {
			code = connect.CodeUnknown // an error without a code: say nothing of what happened
		}
		cerr := connect.NewWireError(code, errors.New(r.Error.GetMessage()))
		for k, v := range r.Error.GetMeta() {
			cerr.Meta().Set(k, v)
		}
		return nil, cerr
	}
	return nil, errors.New("an empty answer")
}

// forwardOnStream sends req to node to on the Records stream. ok is false
// when the request must go as a unary call instead (kv.ErrForwardUnary);
// otherwise the result is what the unary call would have given: the
// response, an error from the wire (the node's own answer), a
// *transport.NotSentError (nothing left), or any other error (the outcome
// is unknown).
func forwardOnStream[Resp any](ctx context.Context, n *kv.Node, to uint64, req any) (_ *Resp, ok bool, _ error) {
	call, ok := forwardCall(req)
	if !ok {
		return nil, false, nil
	}
	call.Authorization = transport.AuthorizationOf(ctx)
	ans, err := n.Forward(ctx, to, call)
	switch {
	case errors.Is(err, kv.ErrForwardUnary):
		return nil, false, nil
	case err != nil:
		return nil, true, err
	}
	res, err := forwardResult(ans)
	if err != nil {
		return nil, true, err
	}
	resp, _ := res.(*Resp)
	if resp == nil {
		return nil, true, fmt.Errorf("node %d answered a forwarded %T with %T", to, req, res)
	}
	return resp, true, nil
}

// serveForward serves a KV request another node forwarded here: through
// the KV service's authorization (authInterceptor) and the handler of its
// method, marked forwarded, as the unary call would be.
func (a *apiServer) serveForward(ctx context.Context, call *peerv1.ForwardCall) *peerv1.ForwardAnswer {
	var req connect.AnyRequest
	var run connect.UnaryFunc
	switch r := call.Request.(type) {
	case *peerv1.ForwardCall_Put:
		if r.Put != nil {
			req, run = connect.NewRequest(r.Put), handle(a.Put)
		}
	case *peerv1.ForwardCall_Get:
		if r.Get != nil {
			req, run = connect.NewRequest(r.Get), handle(a.Get)
		}
	case *peerv1.ForwardCall_Delete:
		if r.Delete != nil {
			req, run = connect.NewRequest(r.Delete), handle(a.Delete)
		}
	case *peerv1.ForwardCall_CompareAndSwap:
		if r.CompareAndSwap != nil {
			req, run = connect.NewRequest(r.CompareAndSwap), handle(a.CompareAndSwap)
		}
	}
	if req == nil {
		return kv.ForwardError(connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("a forwarded call without a request of a known kind (%T)", call.Request)))
	}
	req.Header().Set(kv.ForwardedHeader, "1")
	if call.Authorization != "" {
		req.Header().Set("Authorization", call.Authorization)
	}
	resp, err := a.authInterceptor().WrapUnary(run)(ctx, req)
	if err != nil {
		return kv.ForwardError(transport.ToConnect(err))
	}
	switch m := resp.Any().(type) {
	case *v1.PutResponse:
		return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Put{Put: m}}
	case *v1.GetResponse:
		return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Get{Get: m}}
	case *v1.DeleteResponse:
		return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Delete{Delete: m}}
	case *v1.CompareAndSwapResponse:
		return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_CompareAndSwap{CompareAndSwap: m}}
	}
	return kv.ForwardError(connect.NewError(connect.CodeInternal, fmt.Errorf("a forwarded call's handler answered %T", resp.Any())))
}

// handle makes a KV handler method a connect.UnaryFunc.
func handle[Req, Resp any](h func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		r, ok := req.(*connect.Request[Req])
		if !ok {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("request %T, want %T", req, r))
		}
		return h(ctx, r)
	}
}
