package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quorumkv/quorumkv/kv/transport"

	"github.com/quorumkv/quorumkv/kv/store"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
)

// recordWindow bounds the calls one Records stream runs at once on the
// replica; the stream stops reading new ones until some finish, which
// pushes back on the caller through HTTP/2 flow control.
const recordWindow = 1024

// viaRecords makes call on node to's Records stream and returns the
// response get picks from its answer, or makes it through the unary RPC
// (unary) if the node does not serve Records. Either way, a replica's
// failure comes back as the Connect error the unary RPC would give.
func viaRecords[Resp any](ctx context.Context, c connectRecords, to uint64, call *peerv1.RecordCall,
	get func(*peerv1.RecordAnswer) *Resp, unary func(peerv1connect.PeerClient) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, err := c.peerAddr(to)
	if err != nil {
		return nil, notSent(err)
	}
	ans, err := c.n.recordStreams.Call(ctx, to, addr, call)
	if ns, ok := errors.AsType[*transport.NotSentError](err); ok {
		return nil, notSent(ns.Err)
	}
	if errors.Is(err, transport.ErrNoRecordsStream) {
		resp, err := unary(c.n.peers.PeerClient(addr))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	if err != nil {
		return nil, err
	}
	if e := ans.GetError(); e != nil {
		// The replica ran the call and answered this error (refused).
		return nil, &replicaError{code: connect.Code(e.Code), err: connect.NewError(connect.Code(e.Code), errors.New(e.Message))}
	}
	resp := get(ans)
	if resp == nil {
		return nil, fmt.Errorf("%w: node %d answered call %d with %T", store.ErrUnavailable, to, ans.Id, ans.Answer)
	}
	return resp, nil
}

// Records serves a peer's Records stream: each call runs on its own
// goroutine, up to recordWindow at once, through the same code as its
// unary RPC, and the answers go back in batches as they are ready.
func (p *peerServer) Records(ctx context.Context, bs *connect.BidiStream[peerv1.RecordsRequest, peerv1.RecordsResponse]) error {
	answers := make(chan *peerv1.RecordAnswer, recordWindow)
	slots := make(chan struct{}, recordWindow)
	sent := make(chan error, 1)
	go func() { sent <- sendAnswers(bs, answers) }()
	var calls sync.WaitGroup
	var err error
	for {
		req, rerr := bs.Receive()
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && ctx.Err() == nil {
				err = rerr
			}
			break
		}
		for _, c := range req.Calls {
			slots <- struct{}{}
			calls.Go(func() {
				a := p.answerRecordCall(ctx, c)
				<-slots
				answers <- a
			})
		}
	}
	calls.Wait()
	close(answers)
	if serr := <-sent; err == nil && ctx.Err() == nil {
		err = serr
	}
	return err
}

// sendAnswers sends what answers carries, batched, until it is closed.
// After a failed Send it only drains answers, so that no call waits.
func sendAnswers(bs *connect.BidiStream[peerv1.RecordsRequest, peerv1.RecordsResponse], answers <-chan *peerv1.RecordAnswer) error {
	var err error
	for a := range answers {
		batch := []*peerv1.RecordAnswer{a}
	more:
		for len(batch) < transport.MaxRecordBatch {
			select {
			case a, ok := <-answers:
				if !ok {
					break more
				}
				batch = append(batch, a)
			default:
				break more
			}
		}
		if err == nil {
			err = bs.Send(&peerv1.RecordsResponse{Answers: batch})
		}
	}
	return err
}

// answerRecordCall runs one call of a Records stream through its unary
// RPC's handler.
func (p *peerServer) answerRecordCall(ctx context.Context, c *peerv1.RecordCall) *peerv1.RecordAnswer {
	a := &peerv1.RecordAnswer{Id: c.Id}
	var err error
	switch call := c.Call.(type) {
	case *peerv1.RecordCall_Write:
		var resp *connect.Response[peerv1.WriteRecordResponse]
		if resp, err = p.WriteRecord(ctx, connect.NewRequest(call.Write)); err == nil {
			a.Answer = &peerv1.RecordAnswer_Write{Write: resp.Msg}
		}
	case *peerv1.RecordCall_Read:
		var resp *connect.Response[peerv1.ReadRecordResponse]
		if resp, err = p.ReadRecord(ctx, connect.NewRequest(call.Read)); err == nil {
			a.Answer = &peerv1.RecordAnswer_Read{Read: resp.Msg}
		}
	case *peerv1.RecordCall_CasPrepare:
		var resp *connect.Response[peerv1.CasPrepareResponse]
		if resp, err = p.CasPrepare(ctx, connect.NewRequest(call.CasPrepare)); err == nil {
			a.Answer = &peerv1.RecordAnswer_CasPrepare{CasPrepare: resp.Msg}
		}
	case *peerv1.RecordCall_CasAccept:
		var resp *connect.Response[peerv1.CasAcceptResponse]
		if resp, err = p.CasAccept(ctx, connect.NewRequest(call.CasAccept)); err == nil {
			a.Answer = &peerv1.RecordAnswer_CasAccept{CasAccept: resp.Msg}
		}
	default:
		err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("record call %d: unknown kind %T", c.Id, c.Call))
	}
	if err != nil {
		msg := err.Error()
		var cerr *connect.Error
		if errors.As(err, &cerr) {
			msg = cerr.Message()
		}
		a.Answer = &peerv1.RecordAnswer_Error{Error: &peerv1.RecordError{Code: uint32(connect.CodeOf(err)), Message: msg}}
	}
	return a
}
