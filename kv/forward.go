package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// A KV request that reaches a node which does not lead the key's range is
// forwarded to the leader (kv/server, withForwarding). It travels as a
// ForwardCall on the Records stream the two nodes already keep open
// (kv/transport/recordstream.go), among the other calls waiting for that
// node, and its answer comes back the same way. A unary KV call per
// forwarded request cost an HTTP/2 request of its own on both nodes
// (headers, frames, a flush and a goroutine each way): under load the
// largest single cost of a request that was forwarded.
//
// The receiving node serves a ForwardCall as it serves the KV call marked
// forwarded (ForwardedHeader): it checks the client's credentials itself,
// and serves it only if it can, never forwarding it again.

// ForwardHandler serves a KV request forwarded by another node; kv/server
// provides it (SetForwardHandler).
type ForwardHandler func(ctx context.Context, call *peerv1.ForwardCall) *peerv1.ForwardAnswer

// SetForwardHandler makes h serve the KV requests other nodes forward to
// this one. Until it is called they are refused as Unavailable, and the
// forwarding node tries the range's other replicas.
func (n *Node) SetForwardHandler(h ForwardHandler) { n.forward.Store(&h) }

// maxForwardTimeout bounds the deadline a forwarded request is served
// under, whatever the forwarding node asks (ForwardCall.timeout_ms).
const maxForwardTimeout = time.Minute

// serveForward answers a ForwardCall from another node.
func (n *Node) serveForward(ctx context.Context, call *peerv1.ForwardCall) *peerv1.ForwardAnswer {
	h := n.forward.Load()
	if h == nil {
		return ForwardError(connect.NewError(connect.CodeUnavailable, errors.New("this node serves no KV requests yet")))
	}
	d := time.Duration(call.TimeoutMs) * time.Millisecond
	if d <= 0 || d > maxForwardTimeout {
		d = maxForwardTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return (*h)(ctx, call)
}

// ForwardError is the answer to a ForwardCall that failed with err.
func ForwardError(err error) *peerv1.ForwardAnswer {
	return &peerv1.ForwardAnswer{Response: &peerv1.ForwardAnswer_Error{Error: recordError(err)}}
}

// recordError is a call's failure as a Records stream answers it: its
// Connect code, message and metadata.
func recordError(err error) *peerv1.RecordError {
	e := &peerv1.RecordError{Code: uint32(connect.CodeOf(err)), Message: err.Error()}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		e.Message = cerr.Message()
		for k, v := range cerr.Meta() {
			if len(v) > 0 {
				if e.Meta == nil {
					e.Meta = map[string]string{}
				}
				e.Meta[k] = v[0]
			}
		}
	}
	return e
}

// ErrForwardUnary says that node to cannot take a ForwardCall on its
// Records stream (a kvd from before ForwardCall, or one that serves no
// Records stream): nothing was sent to it, or it ran nothing; forward the
// request as a unary KV call instead.
var ErrForwardUnary = errors.New("the node takes no forwarded calls on its Records stream")

// Forward sends call to node to on the Records stream and returns its
// answer. Its errors:
//   - *transport.NotSentError: the call never left; nothing happened there;
//   - ErrForwardUnary: see there;
//   - any other: the stream failed or ctx ended after the call may have
//     been sent: the request may have been served.
//
// The deadline the receiver serves the request under is ctx's.
func (n *Node) Forward(ctx context.Context, to uint64, call *peerv1.ForwardCall) (*peerv1.ForwardAnswer, error) {
	addr, ok := n.store.NodeAddr(to)
	if !ok {
		return nil, &transport.NotSentError{Err: fmt.Errorf("node %d has no known address", to)}
	}
	return forwardOn(ctx, n.ev.Streams(), to, addr, call)
}

// forwardOn is Forward to node to at addr, on streams.
func forwardOn(ctx context.Context, streams *transport.RecordStreams, to uint64, addr string, call *peerv1.ForwardCall) (*peerv1.ForwardAnswer, error) {
	if dl, ok := ctx.Deadline(); ok {
		call.TimeoutMs = uint32(min(max(time.Until(dl), time.Millisecond), maxForwardTimeout) / time.Millisecond)
	}
	ans, err := streams.Call(ctx, to, addr, &peerv1.RecordCall{Call: &peerv1.RecordCall_Forward{Forward: call}})
	switch {
	case errors.Is(err, transport.ErrNoRecordsStream):
		return nil, ErrForwardUnary
	case err != nil:
		return nil, err
	}
	fa := ans.GetForward()
	if fa == nil {
		// Only a kvd that does not know ForwardCall answers it with
		// something else: an error saying so, having run nothing.
		return nil, ErrForwardUnary
	}
	return fa, nil
}
