package kv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/quorumkv/quorumkv/kv/identity"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// ForwardedHeader marks a request one node sent to another on a client's
// behalf. A forwarded request is never forwarded again: if its target is
// no longer the leader, the client hears Unavailable and retries.
const ForwardedHeader = "Quorumkv-Forwarded"

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
		store.LearnPeer(batch.FromNode, batch.FromAddress)
		for _, m := range batch.Messages {
			msg, err := consensus.DecodePeerMessage(m.Message)
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

// SnapshotChunk serves a chunk of a range snapshot this node holds to a
// replica pulling it (store.Store.ServeSnapshotChunk checks the request).
func (p *peerServer) SnapshotChunk(ctx context.Context, req *connect.Request[peerv1.SnapshotChunkRequest]) (*connect.Response[peerv1.SnapshotChunkResponse], error) {
	store := p.node.store
	m := req.Msg
	if m.ClusterId != store.ClusterID() || m.ToNode != store.NodeID() {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("a snapshot chunk request for node %d of cluster %s reached node %d of cluster %s",
				m.ToNode, m.ClusterId, store.NodeID(), store.ClusterID()))
	}
	return connect.NewResponse(&peerv1.SnapshotChunkResponse{Chunk: store.ServeSnapshotChunk(m.Request)}), nil
}

// Join admits a node to the cluster, or updates a member's address
// (Announce); see registerNode.
func (p *peerServer) Join(ctx context.Context, req *connect.Request[peerv1.JoinRequest]) (*connect.Response[peerv1.JoinResponse], error) {
	id, err := p.node.registerNode(ctx, req.Msg, req.Header().Get(ForwardedHeader) != "")
	switch {
	case err == nil:
		return connect.NewResponse(&peerv1.JoinResponse{NodeId: id, ClusterId: p.node.store.ClusterID()}), nil
	case errors.Is(err, catalog.ErrIdentity):
		return nil, connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, identity.ErrOtherCluster):
		return nil, connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return nil, transport.ToConnect(err)
}

func (p *peerServer) ScanRange(ctx context.Context, req *connect.Request[peerv1.ScanRangeRequest]) (*connect.Response[peerv1.ScanRangeResponse], error) {
	m := req.Msg
	var span *catalog.Span
	var sp catalog.Span
	if _, err := fmt.Sscanf(req.Header().Get(scanSpanHeader), "%016x-%016x", &sp.Lo, &sp.Hi); err == nil {
		span = &sp
	}
	kvs, err := p.node.scanRange(ctx, m.RangeId, span, m.Prefix, m.StartAfter, int(m.Limit))
	if err != nil {
		return nil, transport.ToConnect(err)
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
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.MetaIndexResponse{Index: applied}), nil
}

// LetGo answers whether a range let a leaving replica go
// (eventual.Coordinator.LetGo).
// Filled answers whether this node's replica of an eventual range filled
// (eventual.Coordinator.Filled).
func (p *peerServer) Filled(ctx context.Context, req *connect.Request[peerv1.FilledRequest]) (*connect.Response[peerv1.FilledResponse], error) {
	return connect.NewResponse(&peerv1.FilledResponse{Filled: p.node.ev.Filled(req.Msg.RangeId)}), nil
}

// Acceptors answers a page of a range's compare-and-swap acceptor states
// (eventual.Coordinator.LocalAcceptors).
func (p *peerServer) Acceptors(ctx context.Context, req *connect.Request[peerv1.AcceptorsRequest]) (*connect.Response[peerv1.AcceptorsResponse], error) {
	if err := p.node.ev.AwaitEventualRange(ctx, req.Msg.RangeId); err != nil {
		return nil, transport.ToConnect(err)
	}
	states, err := p.node.ev.LocalAcceptors(req.Msg.RangeId, req.Msg.After, int(req.Msg.Limit))
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	resp := &peerv1.AcceptorsResponse{Entries: make([]*peerv1.AcceptorEntry, len(states))}
	for i, ks := range states {
		resp.Entries[i] = &peerv1.AcceptorEntry{Key: ks.Key, State: ks.State.Marshal()}
	}
	return connect.NewResponse(resp), nil
}

func (p *peerServer) LetGo(ctx context.Context, req *connect.Request[peerv1.LetGoRequest]) (*connect.Response[peerv1.LetGoResponse], error) {
	return connect.NewResponse(&peerv1.LetGoResponse{LetGo: p.node.ev.LetGo(req.Msg.RangeId, req.Msg.NodeId)}), nil
}

// localMetaIndex confirms this node leads meta (ReadIndex) and returns
// what meta has applied here, which then covers every change committed
// before the call.
func (n *Node) localMetaIndex(ctx context.Context) (uint64, error) {
	if err := n.store.ReadBarrier(ctx, catalog.MetaRangeID); err != nil {
		return 0, err
	}
	return n.store.AppliedIndex(ctx, catalog.MetaRangeID)
}

// maxJoinFieldBytes bounds each string of a Join request (name,
// addresses, zone, UUID, cluster ID): they are kept in meta's log, shown
// everywhere and quoted in errors. 256 holds any DNS name (253 bytes)
// and a port.
const maxJoinFieldBytes = 256

// checkJoin validates a Join request, which comes from the network, and
// returns the catalog entry it asks for, with the hash of its secret.
func checkJoin(m *peerv1.JoinRequest) (catalog.NodeDescriptor, error) {
	for _, f := range []struct{ name, value string }{{"node_name", m.NodeName}, {"address", m.Address}, {"zone", m.Zone},
		{"gossip_address", m.GossipAddress}, {"node_uuid", m.NodeUuid}, {"cluster_id", m.ClusterId}} {
		if len(f.value) > maxJoinFieldBytes {
			return catalog.NodeDescriptor{}, fmt.Errorf("%w: join: %s is %d bytes, at most %d", catalog.ErrLimit, f.name, len(f.value), maxJoinFieldBytes)
		}
	}
	switch {
	case m.NodeName == "":
		return catalog.NodeDescriptor{}, fmt.Errorf("%w: join: node_name is empty", catalog.ErrInvalidArgument)
	case m.Address == "":
		return catalog.NodeDescriptor{}, fmt.Errorf("%w: join: node %s has no address", catalog.ErrInvalidArgument, m.NodeName)
	case !catalog.ValidUUID(m.NodeUuid):
		return catalog.NodeDescriptor{}, fmt.Errorf("%w: join: node %s: node_uuid %q is not a version 4 UUID in canonical form", catalog.ErrInvalidArgument, m.NodeName, m.NodeUuid)
	case len(m.Secret) != identity.SecretBytes:
		return catalog.NodeDescriptor{}, fmt.Errorf("%w: join: node %s: the secret is %d bytes, want %d", catalog.ErrInvalidArgument, m.NodeName, len(m.Secret), identity.SecretBytes)
	}
	weight := int(m.Weight)
	if weight == 0 {
		weight = 1
	}
	return catalog.NodeDescriptor{Name: m.NodeName, Addr: m.Address, Zone: m.Zone, Weight: weight, Gossip: m.GossipAddress,
		UUID: m.NodeUuid, SecretHash: identity.HashSecret(m.Secret)}, nil
}

// newJoinRequest asks to admit self, or to update it if clusterID (the
// cluster self belongs to) is not empty. self.UUID must be secret's.
func newJoinRequest(self catalog.NodeDescriptor, secret []byte, clusterID string) *peerv1.JoinRequest {
	return &peerv1.JoinRequest{NodeName: self.Name, Address: self.Addr, Zone: self.Zone, Weight: uint32(self.Weight),
		GossipAddress: self.Gossip, NodeUuid: self.UUID, Secret: secret, ClusterId: clusterID}
}

// registerNode adds a node to the catalog or updates one, through meta's
// leader, forwarding req there when this node is not it. The catalog
// knows nodes by UUID (catalog.addNode): a new UUID is a new node with a
// new ID, whatever its name, and a known one changes only with its
// secret. A request with a cluster ID comes from a member announcing
// itself: it must be of this cluster, and it only updates. Only meta's
// leader proposes, and the op carries the secret's hash, never the
// secret.
func (n *Node) registerNode(ctx context.Context, req *peerv1.JoinRequest, forwarded bool) (uint64, error) {
	desc, err := checkJoin(req)
	if err != nil {
		return 0, err
	}
	if cluster := n.store.ClusterID(); req.ClusterId != "" && req.ClusterId != cluster {
		return 0, fmt.Errorf("%w: node %s (uuid %s) belongs to cluster %s, and this node to cluster %s",
			identity.ErrOtherCluster, req.NodeName, req.NodeUuid, req.ClusterId, cluster)
	}
	op := catalog.CatalogOp{AddNode: &desc, UpdateOnly: req.ClusterId != ""}
	res, err := n.store.Propose(ctx, catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(op)})
	var nl *store.NotLeaderError
	if errors.As(err, &nl) && nl.Leader != 0 && !forwarded {
		addr, ok := n.store.NodeAddr(nl.Leader)
		if !ok {
			return 0, err
		}
		fwd := connect.NewRequest(req)
		fwd.Header().Set(ForwardedHeader, "1")
		resp, ferr := n.peers.PeerClient(addr).Join(ctx, fwd)
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
		if n.gossip != nil {
			for _, m := range n.gossip() {
				if m.UUID != req.NodeUuid && m.State == "alive" && m.Addr != "" {
					addrs = append(addrs, m.Addr)
				}
			}
		}
		id, _, jerr := joinVia(ctx, n.peers, addrs, req)
		return id, jerr
	}
	if err != nil {
		return 0, err
	}
	return res.ID, res.Err
}

// JoinCluster asks the nodes at addrs, in turn, to admit this node, self
// with the identity ident (from identity.Open), and returns the ID and
// cluster it is given (to be saved with SaveJoin before the node's first
// OpenStore). A node admitted before under that identity (its answer
// was lost) gets its ID again.
func JoinCluster(ctx context.Context, addrs []string, self catalog.NodeDescriptor, ident identity.Identity, client *http.Client) (uint64, string, error) {
	self.UUID = ident.UUID
	id, cluster, err := joinVia(ctx, transport.NewPeers(client), addrs, newJoinRequest(self, ident.Secret, ident.ClusterID))
	if err == nil && ident.ClusterID != "" && cluster != ident.ClusterID {
		return 0, "", fmt.Errorf("%w: the data dir belongs to cluster %s, and the nodes at %v to cluster %s", identity.ErrOtherCluster, ident.ClusterID, addrs, cluster)
	}
	return id, cluster, err
}

// JoinRefused reports whether err, from JoinCluster or Announce, holds a
// refusal that asking again cannot change: a request without the node's
// secret, a node of another cluster, or a malformed request.
func JoinRefused(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, catalog.ErrIdentity), errors.Is(err, identity.ErrOtherCluster), errors.Is(err, catalog.ErrInvalidArgument), errors.Is(err, catalog.ErrLimit):
		return true
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		switch cerr.Code() {
		case connect.CodePermissionDenied, connect.CodeFailedPrecondition, connect.CodeInvalidArgument, connect.CodeResourceExhausted:
			return true
		}
	}
	// errors.As stops at the first match; joinVia joins one error per node.
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return slices.ContainsFunc(joined.Unwrap(), JoinRefused)
	}
	if inner := errors.Unwrap(err); inner != nil {
		return JoinRefused(inner)
	}
	return false
}

// joinVia sends req to the nodes at addrs in turn until one answers.
func joinVia(ctx context.Context, p *transport.Peers, addrs []string, req *peerv1.JoinRequest) (uint64, string, error) {
	var errs []error
	for _, addr := range addrs {
		resp, err := p.PeerClient(addr).Join(ctx, connect.NewRequest(req))
		if err == nil && (resp.Msg.NodeId == 0 || resp.Msg.ClusterId == "") {
			err = fmt.Errorf("answered node ID %d of cluster %q", resp.Msg.NodeId, resp.Msg.ClusterId)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		return resp.Msg.NodeId, resp.Msg.ClusterId, nil
	}
	if len(addrs) == 0 {
		return 0, "", errors.New("no node to ask to admit this one")
	}
	return 0, "", fmt.Errorf("no node admitted this one: %w", errors.Join(errs...))
}

// peerMaxBytes bounds one peer message as a node reads it (only from
// callers that proved they are nodes: kv/server checks first). Senders
// batch at most transport.MaxBatchBytes (8 MiB) of consensus messages or
// record calls, plus one message past it; range snapshots travel in
// chunks (SnapshotChunk), never in a message. The largest single message
// is a Multi-Paxos promise: the acceptor's accepted entries from the
// candidate's slot on, at most the log a range keeps before truncating it
// (store.StoreConfig.LogTruncateBytes+LogKeepBytes, 20 MiB) plus the
// uncommitted window (paxos.Config.MaxUncommittedBytes, 64 MiB) plus one
// value of up to 64 MiB (kvd --max-value-bytes at most). 160 MiB covers
// that with room to spare; it was 512 MiB when batches had no byte bound.
const peerMaxBytes = 160 << 20

// NewPeerService is node's Peer service over HTTP, for the HTTP server
// to mount at the path it returns. It reads messages of up to
// peerMaxBytes; opts add to that.
func NewPeerService(node *Node, opts ...connect.HandlerOption) (string, http.Handler) {
	return peerv1connect.NewPeerHandler(&peerServer{node: node}, append([]connect.HandlerOption{connect.WithReadMaxBytes(peerMaxBytes)}, opts...)...)
}

// Peers are the clients of the other nodes' services.
func (n *Node) Peers() *transport.Peers { return n.peers }
