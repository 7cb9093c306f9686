package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/internal/stack"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/paxos"
)

// recordWindow bounds the calls one Records stream runs at once on the
// replica; the stream stops reading new ones until some finish, which
// pushes back on the caller through HTTP/2 flow control.
const recordWindow = 1024

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
				stack.Grow() // a goroutine per call, as deep down to Pebble as a request
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
		batch, size := []*peerv1.RecordAnswer{a}, proto.Size(a)
	more:
		for len(batch) < transport.MaxRecordBatch && size < transport.MaxBatchBytes {
			select {
			case a, ok := <-answers:
				if !ok {
					break more
				}
				batch, size = append(batch, a), size+proto.Size(a)
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
	case *peerv1.RecordCall_Forward:
		a.Answer = &peerv1.RecordAnswer_Forward{Forward: p.node.serveForward(ctx, call.Forward)}
		return a
	case *peerv1.RecordCall_CasAccept:
		var resp *connect.Response[peerv1.CasAcceptResponse]
		if resp, err = p.CasAccept(ctx, connect.NewRequest(call.CasAccept)); err == nil {
			a.Answer = &peerv1.RecordAnswer_CasAccept{CasAccept: resp.Msg}
		}
	default:
		err = connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("record call %d: unknown kind %T", c.Id, c.Call))
	}
	if err != nil {
		a.Answer = &peerv1.RecordAnswer_Error{Error: recordError(err)}
	}
	return a
}

func (p *peerServer) MerkleLeaves(ctx context.Context, req *connect.Request[peerv1.MerkleLeavesRequest]) (*connect.Response[peerv1.MerkleLeavesResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	leaves, err := p.node.ev.LocalMerkleLeaves(req.Msg.RangeId, int(req.Msg.Depth))
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.MerkleLeavesResponse{Leaves: leaves}), nil
}

func (p *peerServer) LeafRecords(ctx context.Context, req *connect.Request[peerv1.LeafRecordsRequest]) (*connect.Response[peerv1.LeafRecordsResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	m := req.Msg
	limit := int(m.Limit)
	if limit <= 0 || limit > p.node.limits.MaxScanKeys {
		limit = p.node.limits.MaxScanKeys
	}
	recs, truncated, err := p.node.ev.LocalLeafRecords(m.RangeId, int(m.Depth), m.Leaves, limit)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp := &peerv1.LeafRecordsResponse{Entries: make([]*peerv1.RecordEntry, len(recs)), Truncated: truncated}
	for i, kr := range recs {
		resp.Entries[i] = &peerv1.RecordEntry{Key: kr.Key, Record: transport.RecordToProto(kr.Record)}
	}
	return connect.NewResponse(resp), nil
}

func (p *peerServer) WriteRecord(ctx context.Context, req *connect.Request[peerv1.WriteRecordRequest]) (*connect.Response[peerv1.WriteRecordResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	m := req.Msg
	applied, existed, err := p.node.ev.WriteLocalRecord(m.RangeId, m.Key, transport.RecordFromProto(m.Record), m.Lazy)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.WriteRecordResponse{Applied: applied, Existed: existed}), nil
}

func (p *peerServer) ReadRecord(ctx context.Context, req *connect.Request[peerv1.ReadRecordRequest]) (*connect.Response[peerv1.ReadRecordResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	rec, err := p.node.ev.ReadLocalRecord(req.Msg.RangeId, req.Msg.Key)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.ReadRecordResponse{Record: transport.RecordToProto(rec)}), nil
}

func (p *peerServer) ScanRecords(ctx context.Context, req *connect.Request[peerv1.ScanRecordsRequest]) (*connect.Response[peerv1.ScanRecordsResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	m := req.Msg
	limit := int(m.Limit)
	if limit <= 0 || limit > p.node.limits.MaxScanKeys+1 {
		limit = p.node.limits.MaxScanKeys + 1
	}
	recs, err := p.node.ev.ScanLocalRecords(m.RangeId, m.Prefix, m.StartAfter, limit)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp := &peerv1.ScanRecordsResponse{Entries: make([]*peerv1.RecordEntry, len(recs))}
	for i, kr := range recs {
		resp.Entries[i] = &peerv1.RecordEntry{Key: kr.Key, Record: transport.RecordToProto(kr.Record)}
	}
	return connect.NewResponse(resp), nil
}

func (p *peerServer) CasPrepare(ctx context.Context, req *connect.Request[peerv1.CasPrepareRequest]) (*connect.Response[peerv1.CasPrepareResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	m := req.Msg
	rm, err := p.node.ev.StepLocalCAS(m.RangeId, m.Key, paxos.BasicMessage{Type: paxos.BasicPrepare, From: m.From,
		Ballot: transport.BallotFromProto(m.Ballot)})
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.CasPrepareResponse{Reject: rm.Reject, Promised: transport.BallotToProto(rm.Promised),
		Accepted: transport.BallotToProto(rm.Accepted), Value: rm.Value}), nil
}

func (p *peerServer) CasAccept(ctx context.Context, req *connect.Request[peerv1.CasAcceptRequest]) (*connect.Response[peerv1.CasAcceptResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	m := req.Msg
	rm, err := p.node.ev.StepLocalCAS(m.RangeId, m.Key, paxos.BasicMessage{Type: paxos.BasicAccept, From: m.From,
		Ballot: transport.BallotFromProto(m.Ballot), Value: m.Value})
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.CasAcceptResponse{Reject: rm.Reject, Promised: transport.BallotToProto(rm.Promised)}), nil
}
