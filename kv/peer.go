package kv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// forwardedHeader marks a request one node sent to another on a client's
// behalf. A forwarded request is never forwarded again: if its target is
// no longer the leader, the client hears Unavailable and retries.
const forwardedHeader = "Quorumkv-Forwarded"

// peers holds Connect clients for other nodes, by address.
type peers struct {
	http *http.Client
	mu   struct {
		sync.Mutex
		byAddr map[string]*peerClients
	}
}

// peerClients are the clients of one node's services.
type peerClients struct {
	kv    quorumkvv1connect.KVClient
	admin quorumkvv1connect.AdminClient
	peer  peerv1connect.PeerClient
}

func newPeers(client *http.Client) *peers {
	p := &peers{http: client}
	p.mu.byAddr = map[string]*peerClients{}
	return p
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

func (p *peers) clients(addr string) *peerClients {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.mu.byAddr[addr]
	if !ok {
		base := baseURL(addr)
		c = &peerClients{
			kv:    quorumkvv1connect.NewKVClient(p.http, base, connect.WithGRPC()),
			admin: quorumkvv1connect.NewAdminClient(p.http, base, connect.WithGRPC()),
			peer:  peerv1connect.NewPeerClient(p.http, base, connect.WithGRPC()),
		}
		p.mu.byAddr[addr] = c
	}
	return c
}

func (p *peers) kvClient(addr string) quorumkvv1connect.KVClient       { return p.clients(addr).kv }
func (p *peers) adminClient(addr string) quorumkvv1connect.AdminClient { return p.clients(addr).admin }
func (p *peers) peerClient(addr string) peerv1connect.PeerClient       { return p.clients(addr).peer }

// peerServer implements the Peer service.
type peerServer struct {
	node *Node
}

var _ peerv1connect.PeerHandler = (*peerServer)(nil)

func (p *peerServer) Raft(ctx context.Context, stream *connect.ClientStream[peerv1.RaftRequest]) (*connect.Response[peerv1.RaftResponse], error) {
	store := p.node.store
	for stream.Receive() {
		batch := stream.Msg()
		if batch.ClusterId != store.ClusterID() || batch.ToNode != store.NodeID() {
			return nil, connect.NewError(connect.CodeFailedPrecondition,
				fmt.Errorf("messages for node %d of cluster %s reached node %d of cluster %s",
					batch.ToNode, batch.ClusterId, store.NodeID(), store.ClusterID()))
		}
		store.learnPeer(batch.FromNode, batch.FromAddress)
		for _, m := range batch.Messages {
			msg, err := decodePeerMessage(m.Message)
			if err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, err)
			}
			store.Step(m.RangeId, msg)
		}
	}
	if err := stream.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return connect.NewResponse(&peerv1.RaftResponse{}), nil
}

func (p *peerServer) Join(ctx context.Context, req *connect.Request[peerv1.JoinRequest]) (*connect.Response[peerv1.JoinResponse], error) {
	m := req.Msg
	desc := NodeDescriptor{Name: m.NodeName, Addr: m.Address, Zone: m.Zone, Weight: int(m.Weight), Gossip: m.GossipAddress}
	id, err := p.node.registerNode(ctx, desc, req.Header().Get(forwardedHeader) != "")
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&peerv1.JoinResponse{NodeId: id, ClusterId: p.node.store.ClusterID()}), nil
}

func (p *peerServer) ScanRange(ctx context.Context, req *connect.Request[peerv1.ScanRangeRequest]) (*connect.Response[peerv1.ScanRangeResponse], error) {
	m := req.Msg
	kvs, err := p.node.scanRange(ctx, m.RangeId, m.Prefix, m.StartAfter, int(m.Limit))
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &peerv1.ScanRangeResponse{}
	for _, kv := range kvs {
		resp.Entries = append(resp.Entries, &peerv1.ScanEntry{Key: kv.Key, Value: kv.Value, Version: kv.Version})
	}
	return connect.NewResponse(resp), nil
}

// MetaIndex confirms this node leads meta and answers what meta has
// applied here (see catalogBarrier).
func (p *peerServer) MetaIndex(ctx context.Context, req *connect.Request[peerv1.MetaIndexRequest]) (*connect.Response[peerv1.MetaIndexResponse], error) {
	applied, err := p.node.localMetaIndex(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&peerv1.MetaIndexResponse{Index: applied}), nil
}

// localMetaIndex confirms this node leads meta (ReadIndex) and returns
// what meta has applied here, which then covers every change committed
// before the call.
func (n *Node) localMetaIndex(ctx context.Context) (uint64, error) {
	if err := n.store.readBarrier(ctx, MetaRangeID); err != nil {
		return 0, err
	}
	return n.store.appliedIndex(ctx, MetaRangeID)
}

func (c connectRecords) metaIndex(ctx context.Context, to uint64) (uint64, error) {
	addr, err := c.peerAddr(to)
	if err != nil {
		return 0, err
	}
	resp, err := c.n.peers.peerClient(addr).MetaIndex(ctx, connect.NewRequest(&peerv1.MetaIndexRequest{}))
	if err != nil {
		return 0, err
	}
	return resp.Msg.Index, nil
}

// registerNode adds or updates a node in the catalog through meta's
// leader, forwarding there when this node is not it.
func (n *Node) registerNode(ctx context.Context, desc NodeDescriptor, forwarded bool) (uint64, error) {
	if desc.Weight == 0 {
		desc.Weight = 1
	}
	res, err := n.store.propose(ctx, MetaRangeID, &command{op: opCatalog, value: mustJSON(catalogOp{AddNode: &desc})})
	var nl *NotLeaderError
	if errors.As(err, &nl) && nl.Leader != 0 && !forwarded {
		addr, ok := n.store.nodeAddr(nl.Leader)
		if !ok {
			return 0, err
		}
		req := connect.NewRequest(&peerv1.JoinRequest{NodeName: desc.Name, Address: desc.Addr, Zone: desc.Zone,
			Weight: uint32(desc.Weight), GossipAddress: desc.Gossip})
		req.Header().Set(forwardedHeader, "1")
		resp, ferr := n.peers.peerClient(addr).Join(ctx, req)
		if ferr != nil {
			return 0, ferr
		}
		return resp.Msg.NodeId, nil
	}
	if errors.As(err, &nl) && nl.Leader == 0 && !forwarded {
		// This node does not know meta's leader: perhaps it just came back
		// at a new address the leader does not know. Ask the nodes gossip
		// knows; they know the leader and forward.
		var addrs []string
		for _, m := range n.members() {
			if m.Name != desc.Name && m.State == "alive" && m.Addr != "" {
				addrs = append(addrs, m.Addr)
			}
		}
		id, _, jerr := JoinCluster(ctx, addrs, desc, n.peers.http)
		return id, jerr
	}
	if err != nil {
		return 0, err
	}
	return res.id, res.err
}

// JoinCluster asks the nodes at addrs, in turn, to admit this node, and
// returns the ID and cluster it is given (to be saved with SaveJoin before
// the node's first OpenStore).
func JoinCluster(ctx context.Context, addrs []string, self NodeDescriptor, client *http.Client) (uint64, string, error) {
	p := newPeers(client)
	var errs []error
	for _, addr := range addrs {
		resp, err := p.peerClient(addr).Join(ctx, connect.NewRequest(&peerv1.JoinRequest{
			NodeName: self.Name, Address: self.Addr, Zone: self.Zone, Weight: uint32(self.Weight), GossipAddress: self.Gossip,
		}))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return resp.Msg.NodeId, resp.Msg.ClusterId, nil
	}
	return 0, "", fmt.Errorf("no node admitted this one: %w", errors.Join(errs...))
}

// forwardKV sends a KV request to the node that leads the key's range.
func forwardKV[Req, Resp any](ctx context.Context, n *Node, leader uint64, req *Req,
	rpc func(quorumkvv1connect.KVClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, ok := n.store.nodeAddr(leader)
	if !ok {
		return nil, fmt.Errorf("%w: the leader, node %d, has no known address", ErrUnavailable, leader)
	}
	r := connect.NewRequest(req)
	r.Header().Set(forwardedHeader, "1")
	resp, err := rpc(n.peers.kvClient(addr), ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// forwardAdmin sends an Admin request to meta's leader.
func forwardAdmin[Req, Resp any](ctx context.Context, n *Node, leader uint64, req *Req,
	rpc func(quorumkvv1connect.AdminClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	addr, ok := n.store.nodeAddr(leader)
	if !ok {
		return nil, fmt.Errorf("%w: meta's leader, node %d, has no known address", ErrUnavailable, leader)
	}
	r := connect.NewRequest(req)
	r.Header().Set(forwardedHeader, "1")
	resp, err := rpc(n.peers.adminClient(addr), ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}
