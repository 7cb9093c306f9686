package transport

import (
	"bytes"

	"context"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/internal/codec"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

func RecordToProto(rec wrn.Record) *peerv1.Record {
	if rec.Version.IsZero() {
		return nil
	}
	return &peerv1.Record{WallTime: rec.Version.Timestamp.WallTime, Logical: rec.Version.Timestamp.Logical,
		Node: rec.Version.Node, Value: rec.Value, Tombstone: rec.Tombstone}
}

func RecordFromProto(p *peerv1.Record) wrn.Record {
	if p == nil {
		return wrn.Record{}
	}
	return wrn.Record{Version: wrn.Version{Timestamp: wrn.Timestamp{WallTime: p.WallTime, Logical: p.Logical}, Node: p.Node},
		Value: p.Value, Tombstone: p.Tombstone}
}

// RecordClient sends record requests over the peer service.
type RecordClient struct {
	NodeAddr func(id uint64) (string, bool)
	Peers    *Peers
	Streams  *RecordStreams
}

func (c RecordClient) client(to uint64) (interface {
	ScanRecords(context.Context, *connect.Request[peerv1.ScanRecordsRequest]) (*connect.Response[peerv1.ScanRecordsResponse], error)
	MerkleLeaves(context.Context, *connect.Request[peerv1.MerkleLeavesRequest]) (*connect.Response[peerv1.MerkleLeavesResponse], error)
	LeafRecords(context.Context, *connect.Request[peerv1.LeafRecordsRequest]) (*connect.Response[peerv1.LeafRecordsResponse], error)
}, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return nil, err
	}
	return c.Peers.PeerClient(addr), nil
}

// PeerAddr returns node to's address from the catalog.
func (c RecordClient) PeerAddr(to uint64) (string, error) {
	addr, ok := c.NodeAddr(to)
	if !ok {
		return "", fmt.Errorf("%w: node %d has no known address", store.ErrUnavailable, to)
	}
	return addr, nil
}

func (c RecordClient) WriteRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record, lazy bool) (bool, error) {
	req := &peerv1.WriteRecordRequest{RangeId: rangeID, Key: key, Record: RecordToProto(rec), Lazy: lazy}
	resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_Write{Write: req}},
		(*peerv1.RecordAnswer).GetWrite,
		func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.WriteRecordResponse], error) {
			return cl.WriteRecord(ctx, connect.NewRequest(req))
		})
	if err != nil {
		return false, err
	}
	return resp.Existed, nil
}

func (c RecordClient) ReadRecord(ctx context.Context, to, rangeID uint64, key []byte) (wrn.Record, error) {
	req := &peerv1.ReadRecordRequest{RangeId: rangeID, Key: key}
	resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_Read{Read: req}},
		(*peerv1.RecordAnswer).GetRead,
		func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.ReadRecordResponse], error) {
			return cl.ReadRecord(ctx, connect.NewRequest(req))
		})
	if err != nil {
		return wrn.Record{}, err
	}
	return RecordFromProto(resp.Record), nil
}

func (c RecordClient) ScanRecords(ctx context.Context, to, rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error) {
	cl, err := c.client(to)
	if err != nil {
		return nil, err
	}
	resp, err := cl.ScanRecords(ctx, connect.NewRequest(&peerv1.ScanRecordsRequest{RangeId: rangeID, Prefix: prefix,
		StartAfter: startAfter, Limit: uint32(limit)}))
	if err != nil {
		return nil, err
	}
	out := make([]records.KeyRecord, len(resp.Msg.Entries))
	for i, e := range resp.Msg.Entries {
		out[i] = records.KeyRecord{Key: e.Key, Record: RecordFromProto(e.Record)}
	}
	return out, nil
}

func (c RecordClient) MerkleLeaves(ctx context.Context, to, rangeID uint64, depth int) ([]uint64, error) {
	cl, err := c.client(to)
	if err != nil {
		return nil, err
	}
	resp, err := cl.MerkleLeaves(ctx, connect.NewRequest(&peerv1.MerkleLeavesRequest{RangeId: rangeID, Depth: uint32(depth)}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Leaves, nil
}

func (c RecordClient) LeafRecords(ctx context.Context, to, rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error) {
	cl, err := c.client(to)
	if err != nil {
		return nil, false, err
	}
	resp, err := cl.LeafRecords(ctx, connect.NewRequest(&peerv1.LeafRecordsRequest{RangeId: rangeID, Depth: uint32(depth),
		Leaves: leaves, Limit: uint32(limit)}))
	if err != nil {
		return nil, false, err
	}
	out := make([]records.KeyRecord, len(resp.Msg.Entries))
	for i, e := range resp.Msg.Entries {
		out[i] = records.KeyRecord{Key: e.Key, Record: RecordFromProto(e.Record)}
	}
	return out, resp.Msg.Truncated, nil
}

// viaRecords makes call on node to's Records stream and returns the
// response get picks from its answer, or makes it through the unary RPC
// (unary) if the node does not serve Records. Either way, a replica's
// failure comes back as the Connect error the unary RPC would give.
func viaRecords[Resp any](ctx context.Context, c RecordClient, to uint64, call *peerv1.RecordCall,
	get func(*peerv1.RecordAnswer) *Resp, unary func(peerv1connect.PeerClient) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return nil, NotSent(err)
	}
	ans, err := c.Streams.Call(ctx, to, addr, call)
	if ns, ok := errors.AsType[*NotSentError](err); ok {
		return nil, NotSent(ns.Err)
	}
	if errors.Is(err, ErrNoRecordsStream) {
		resp, err := unary(c.Peers.PeerClient(addr))
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
		return nil, &ReplicaError{Code: connect.Code(e.Code), Err: connect.NewError(connect.Code(e.Code), errors.New(e.Message))}
	}
	resp := get(ans)
	if resp == nil {
		return nil, fmt.Errorf("%w: node %d answered call %d with %T", store.ErrUnavailable, to, ans.Id, ans.Answer)
	}
	return resp, nil
}

func (c RecordClient) MetaIndex(ctx context.Context, to uint64) (uint64, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return 0, err
	}
	resp, err := c.Peers.PeerClient(addr).MetaIndex(ctx, connect.NewRequest(&peerv1.MetaIndexRequest{}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.Index, nil
}

func (c RecordClient) LetGo(ctx context.Context, to, rangeID, node uint64) (bool, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return false, err
	}
	resp, err := c.Peers.PeerClient(addr).LetGo(ctx, connect.NewRequest(&peerv1.LetGoRequest{RangeId: rangeID, NodeId: node}))
	if err != nil {
		return false, err
	}
	return resp.Msg.LetGo, nil
}

// Filled asks node to whether its replica of range rangeID filled
// (eventual.Coordinator.Filled).
func (c RecordClient) Filled(ctx context.Context, to, rangeID uint64) (bool, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return false, err
	}
	resp, err := c.Peers.PeerClient(addr).Filled(ctx, connect.NewRequest(&peerv1.FilledRequest{RangeId: rangeID}))
	if err != nil {
		return false, err
	}
	return resp.Msg.Filled, nil
}

// Acceptors returns up to limit of node to's compare-and-swap acceptor
// states of range rangeID, of the keys after after. Each state is
// decoded, and a node that answers more than limit, or out of key order,
// is refused.
func (c RecordClient) Acceptors(ctx context.Context, to, rangeID uint64, after []byte, limit int) ([]records.KeyAcceptor, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return nil, err
	}
	resp, err := c.Peers.PeerClient(addr).Acceptors(ctx, connect.NewRequest(&peerv1.AcceptorsRequest{RangeId: rangeID, After: after, Limit: uint32(limit)}))
	if err != nil {
		return nil, err
	}
	if len(resp.Msg.Entries) > limit {
		return nil, fmt.Errorf("%w: node %d sent %d acceptor states, %d asked", codec.ErrCorrupt, to, len(resp.Msg.Entries), limit)
	}
	out := make([]records.KeyAcceptor, len(resp.Msg.Entries))
	prev := after
	for i, e := range resp.Msg.Entries {
		if len(e.Key) == 0 || bytes.Compare(e.Key, prev) <= 0 && (i > 0 || len(after) > 0) {
			return nil, fmt.Errorf("%w: node %d sent acceptor states out of key order", codec.ErrCorrupt, to)
		}
		out[i].Key, prev = e.Key, e.Key
		if err := out[i].State.Unmarshal(e.State); err != nil {
			return nil, fmt.Errorf("%w: node %d: acceptor state of a key: %v", codec.ErrCorrupt, to, err)
		}
	}
	return out, nil
}

func BallotToProto(b paxos.Ballot) *peerv1.Ballot {
	if b.IsZero() {
		return nil
	}
	return &peerv1.Ballot{Round: b.Round, NodeId: b.NodeID}
}

func BallotFromProto(b *peerv1.Ballot) paxos.Ballot {
	if b == nil {
		return paxos.Ballot{}
	}
	return paxos.Ballot{Round: b.Round, NodeID: b.NodeId}
}

func (c RecordClient) CASStep(ctx context.Context, to, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error) {
	reply := paxos.BasicMessage{From: to, To: m.From, Ballot: m.Ballot}
	switch m.Type {
	case paxos.BasicPrepare:
		req := &peerv1.CasPrepareRequest{RangeId: rangeID, Key: key, From: m.From, Ballot: BallotToProto(m.Ballot)}
		resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_CasPrepare{CasPrepare: req}},
			(*peerv1.RecordAnswer).GetCasPrepare,
			func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.CasPrepareResponse], error) {
				return cl.CasPrepare(ctx, connect.NewRequest(req))
			})
		if err != nil {
			return paxos.BasicMessage{}, err
		}
		reply.Type, reply.Reject, reply.Promised = paxos.BasicPromise, resp.Reject, BallotFromProto(resp.Promised)
		reply.Accepted, reply.Value = BallotFromProto(resp.Accepted), resp.Value
	case paxos.BasicAccept:
		req := &peerv1.CasAcceptRequest{RangeId: rangeID, Key: key, From: m.From, Ballot: BallotToProto(m.Ballot), Value: m.Value}
		resp, err := viaRecords(ctx, c, to, &peerv1.RecordCall{Call: &peerv1.RecordCall_CasAccept{CasAccept: req}},
			(*peerv1.RecordAnswer).GetCasAccept,
			func(cl peerv1connect.PeerClient) (*connect.Response[peerv1.CasAcceptResponse], error) {
				return cl.CasAccept(ctx, connect.NewRequest(req))
			})
		if err != nil {
			return paxos.BasicMessage{}, err
		}
		reply.Type, reply.Reject, reply.Promised = paxos.BasicAccepted, resp.Reject, BallotFromProto(resp.Promised)
	default:
		return paxos.BasicMessage{}, fmt.Errorf("%w: compare-and-swap message %v", catalog.ErrInvalidArgument, m.Type)
	}
	return reply, nil
}

// ReplicaError is an error that a replica's handler answered a call with:
// the call reached the replica, which refused it or failed there. Any
// other error of a call (no answer in time, a broken stream) leaves open
// whether the replica ran it.
type ReplicaError struct {
	Code connect.Code
	Err  error
}

func (e *ReplicaError) Error() string { return e.Err.Error() }

func (e *ReplicaError) Unwrap() error { return e.Err }

// NotSent marks err, the failure of a call that was never sent, as
// definite as a replica's refusal.
func NotSent(err error) error { return &ReplicaError{Code: ConnectCode(err), Err: err} }

// Refused says whether err is a replica's definite refusal: its handler
// answered an error before it stored anything (a limit, a range it does
// not hold, a version ahead of its clock), so a write it refused was not
// written there. A failure inside the handler (Internal: its disk) and an
// error of the call itself leave the outcome unknown.
func Refused(err error) bool {
	var re *ReplicaError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code {
	case connect.CodeInternal, connect.CodeUnknown, connect.CodeDataLoss, connect.CodeDeadlineExceeded, connect.CodeCanceled:
		return false
	}
	return true
}
