package eventual

import (
	"context"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/transport"

	"github.com/quorumkv/quorumkv/kv/store"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

// RecordTransport carries a node's requests to other nodes' peer
// service, apart from consensus messages: a coordinator's record requests
// to other replicas (the node's own replica is called directly, never
// through it) and the catalog barrier's. Tests replace it to run several
// nodes in one process.
type RecordTransport interface {
	// metaIndex asks node to, meta's leader, for meta's index after a
	// ReadIndex (catalogBarrier).
	MetaIndex(ctx context.Context, to uint64) (uint64, error)
	WriteRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record) (existed bool, err error)
	ReadRecord(ctx context.Context, to, rangeID uint64, key []byte) (wrn.Record, error)
	ScanRecords(ctx context.Context, to, rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error)
	// merkleLeaves and leafRecords serve anti-entropy (antientropy.go).
	MerkleLeaves(ctx context.Context, to, rangeID uint64, depth int) ([]uint64, error)
	LeafRecords(ctx context.Context, to, rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error)
	// casStep hands a compare-and-swap Prepare or Accept to node to's
	// acceptor of key and returns its answer (eventual_cas.go).
	CASStep(ctx context.Context, to, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error)
}

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

// connectRecords sends record requests over the peer service.
type ConnectRecords struct{ N *Coordinator }

func (c ConnectRecords) client(to uint64) (interface {
	ScanRecords(context.Context, *connect.Request[peerv1.ScanRecordsRequest]) (*connect.Response[peerv1.ScanRecordsResponse], error)
	MerkleLeaves(context.Context, *connect.Request[peerv1.MerkleLeavesRequest]) (*connect.Response[peerv1.MerkleLeavesResponse], error)
	LeafRecords(context.Context, *connect.Request[peerv1.LeafRecordsRequest]) (*connect.Response[peerv1.LeafRecordsResponse], error)
}, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return nil, err
	}
	return c.N.Peers.PeerClient(addr), nil
}

// peerAddr returns node to's address from the catalog.
func (c ConnectRecords) PeerAddr(to uint64) (string, error) {
	addr, ok := c.N.store.NodeAddr(to)
	if !ok {
		return "", fmt.Errorf("%w: node %d has no known address", store.ErrUnavailable, to)
	}
	return addr, nil
}

func (c ConnectRecords) WriteRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record) (bool, error) {
	req := &peerv1.WriteRecordRequest{RangeId: rangeID, Key: key, Record: RecordToProto(rec)}
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

func (c ConnectRecords) ReadRecord(ctx context.Context, to, rangeID uint64, key []byte) (wrn.Record, error) {
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

func (c ConnectRecords) ScanRecords(ctx context.Context, to, rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error) {
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

func (c ConnectRecords) MerkleLeaves(ctx context.Context, to, rangeID uint64, depth int) ([]uint64, error) {
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

func (c ConnectRecords) LeafRecords(ctx context.Context, to, rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error) {
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

// Peer service: the replica side.

// localEventualRange returns range id if it is an eventual range with a
// replica on this node.
func (c *Coordinator) localEventualRange(id uint64) (*catalog.RangeDescriptor, error) {
	cat := c.store.Catalog()
	for name, ks := range cat.Keyspaces {
		if ks.Mode != catalog.ModeEventual {
			continue
		}
		for _, r := range cat.Ranges[name] {
			if r.ID != id {
				continue
			}
			if !r.HasReplica(c.store.NodeID()) {
				return nil, fmt.Errorf("%w: eventual range %d", store.ErrNoReplicaHere, id)
			}
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: eventual range %d", errNotInCatalog, id)
}

// errNotInCatalog: this node's catalog has no such range. It may be of a
// keyspace created a moment ago through another node (awaitEventualRange).
var errNotInCatalog = fmt.Errorf("%w: not in this node's catalog", store.ErrNoReplicaHere)

// awaitEventualRange runs before a replica serves another node's call for
// eventual range id. A keyspace created through one node reaches the
// others' catalogs a moment later, and its coordinators may call at once:
// if this node's catalog does not have the range, it first catches up
// with every catalog change committed so far (catalogBarrier). Any
// refusal is left to the call itself, which looks the range up again.
func (c *Coordinator) AwaitEventualRange(ctx context.Context, id uint64) error {
	if _, err := c.localEventualRange(id); !errors.Is(err, errNotInCatalog) {
		return nil
	}
	return c.catchUpCatalog(ctx, fmt.Sprintf("eventual range %d", id))
}

// writeLocalRecord stores rec on this node's replica of range rangeID
// (see recordStore.write), and moves the clock past its version so that
// later writes coordinated here order after it. It refuses a version more
// than the maximum clock offset ahead of this node's clock
// (eventual_clock.go, rule 1).
func (c *Coordinator) WriteLocalRecord(rangeID uint64, key []byte, rec wrn.Record) (applied, existed bool, err error) {
	if err := c.limits.CheckKey(key); err != nil {
		return false, false, err
	}
	if err := c.limits.CheckValue(rec.Value); err != nil {
		return false, false, err
	}
	if err := c.checkVersionClock(rec.Version, "record"); err != nil {
		return false, false, err
	}
	if _, err := c.localEventualRange(rangeID); err != nil {
		return false, false, err
	}
	c.observeVersion(rec.Version)
	return c.Records.Write(rangeID, key, rec)
}

func (c *Coordinator) ReadLocalRecord(rangeID uint64, key []byte) (wrn.Record, error) {
	if _, err := c.localEventualRange(rangeID); err != nil {
		return wrn.Record{}, err
	}
	return c.Records.Read(rangeID, key)
}

func (c *Coordinator) ScanLocalRecords(rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error) {
	if _, err := c.localEventualRange(rangeID); err != nil {
		return nil, err
	}
	return c.Records.Scan(rangeID, prefix, startAfter, limit)
}

// viaRecords makes call on node to's Records stream and returns the
// response get picks from its answer, or makes it through the unary RPC
// (unary) if the node does not serve Records. Either way, a replica's
// failure comes back as the Connect error the unary RPC would give.
func viaRecords[Resp any](ctx context.Context, c ConnectRecords, to uint64, call *peerv1.RecordCall,
	get func(*peerv1.RecordAnswer) *Resp, unary func(peerv1connect.PeerClient) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return nil, NotSent(err)
	}
	ans, err := c.N.recordStreams.Call(ctx, to, addr, call)
	if ns, ok := errors.AsType[*transport.NotSentError](err); ok {
		return nil, NotSent(ns.Err)
	}
	if errors.Is(err, transport.ErrNoRecordsStream) {
		resp, err := unary(c.N.Peers.PeerClient(addr))
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

func (c ConnectRecords) MetaIndex(ctx context.Context, to uint64) (uint64, error) {
	addr, err := c.PeerAddr(to)
	if err != nil {
		return 0, err
	}
	resp, err := c.N.Peers.PeerClient(addr).MetaIndex(ctx, connect.NewRequest(&peerv1.MetaIndexRequest{}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.Index, nil
}
