package client

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// unary runs one RPC with the client's endpoint and retry rules. rpc is a
// method expression of a generated client, such as
// quorumkvv1connect.AdminClient.Status; clients holds one per endpoint.
func unary[C, Req, Resp any](ctx context.Context, c *Client, clients []C, p policy, req *Req,
	rpc func(C, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	var out *Resp
	err := c.call(ctx, p, func(ctx context.Context, i int, _ bool) error {
		resp, err := rpc(clients[i], ctx, connect.NewRequest(req))
		if err == nil {
			out = resp.Msg
		}
		return err
	})
	return out, wrap(err)
}

// adminCall is unary for the Admin service. Only NotFound becomes a
// sentinel there: FailedPrecondition means a cluster that cannot do what
// was asked (too few nodes), not a lost compare-and-swap.
func adminCall[Req, Resp any](ctx context.Context, c *Client, p policy, req *Req,
	rpc func(quorumkvv1connect.AdminClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	resp, err := unary(ctx, c, c.admin, p, req, rpc)
	var cerr *connect.Error
	if errors.Is(err, ErrConditionFailed) && errors.As(err, &cerr) {
		err = cerr
	}
	return resp, err
}

// CreateKeyspace creates a keyspace; the server proves its geometry first.
func (c *Client) CreateKeyspace(ctx context.Context, ks *v1.Keyspace) (*v1.Keyspace, error) {
	resp, err := adminCall(ctx, c, policy{write: true}, &v1.CreateKeyspaceRequest{Keyspace: ks}, quorumkvv1connect.AdminClient.CreateKeyspace)
	return resp.GetKeyspace(), err
}

// ListKeyspaces lists every keyspace.
func (c *Client) ListKeyspaces(ctx context.Context) ([]*v1.Keyspace, error) {
	resp, err := adminCall(ctx, c, policy{}, &v1.ListKeyspacesRequest{}, quorumkvv1connect.AdminClient.ListKeyspaces)
	return resp.GetKeyspaces(), err
}

// DescribeKeyspace returns a keyspace and its ranges.
func (c *Client) DescribeKeyspace(ctx context.Context, name string) (*v1.DescribeKeyspaceResponse, error) {
	return adminCall(ctx, c, policy{}, &v1.DescribeKeyspaceRequest{Name: name}, quorumkvv1connect.AdminClient.DescribeKeyspace)
}

// DropKeyspace removes a keyspace and its data.
func (c *Client) DropKeyspace(ctx context.Context, name string) error {
	_, err := adminCall(ctx, c, policy{write: true}, &v1.DropKeyspaceRequest{Name: name}, quorumkvv1connect.AdminClient.DropKeyspace)
	return err
}

// RemoveNode removes node id (its catalog ID), gone for good, from the
// cluster (Admin.RemoveNode): its replicas move to live nodes at once, and
// it may never rejoin under its identity. A node that gossip sees alive is
// refused.
func (c *Client) RemoveNode(ctx context.Context, id uint64) error {
	_, err := adminCall(ctx, c, policy{write: true}, &v1.RemoveNodeRequest{Id: id}, quorumkvv1connect.AdminClient.RemoveNode)
	return err
}

// DrainNode makes node id (its catalog ID) hand the leaderships of its
// ranges to other replicas and keep handing away any it gains until it
// restarts (Admin.DrainNode). It reports the leaderships moved and those
// the node still held when it answered.
func (c *Client) DrainNode(ctx context.Context, id uint64) (moved, kept int, err error) {
	resp, err := adminCall(ctx, c, policy{write: true}, &v1.DrainNodeRequest{Id: id}, quorumkvv1connect.AdminClient.DrainNode)
	return int(resp.GetMoved()), int(resp.GetKept()), err
}

// DecommissionNode starts decommissioning node id (its catalog ID): its
// replicas move to other nodes, then it is marked removed
// (Admin.DecommissionNode). It returns once the decommission has started;
// Members shows its progress.
func (c *Client) DecommissionNode(ctx context.Context, id uint64) error {
	_, err := adminCall(ctx, c, policy{write: true}, &v1.DecommissionNodeRequest{Id: id}, quorumkvv1connect.AdminClient.DecommissionNode)
	return err
}

// Rebalance returns the replica moves the placement driver would propose
// now, and proposes them unless dryRun (Admin.Rebalance).
func (c *Client) Rebalance(ctx context.Context, dryRun bool) (*v1.RebalanceResponse, error) {
	return adminCall(ctx, c, policy{write: !dryRun}, &v1.RebalanceRequest{DryRun: dryRun}, quorumkvv1connect.AdminClient.Rebalance)
}

// Members lists the nodes gossip knows.
func (c *Client) Members(ctx context.Context) ([]*v1.Member, error) {
	resp, err := adminCall(ctx, c, policy{}, &v1.ListMembersRequest{}, quorumkvv1connect.AdminClient.ListMembers)
	return resp.GetMembers(), err
}

// Ranges lists the ranges of a keyspace, or of all when keyspace is "".
func (c *Client) Ranges(ctx context.Context, keyspace string) ([]*v1.Range, error) {
	resp, err := adminCall(ctx, c, policy{}, &v1.ListRangesRequest{Keyspace: keyspace}, quorumkvv1connect.AdminClient.ListRanges)
	return resp.GetRanges(), err
}

// Status is the answering node's view of the cluster.
func (c *Client) Status(ctx context.Context) (*v1.StatusResponse, error) {
	return adminCall(ctx, c, policy{}, &v1.StatusRequest{}, quorumkvv1connect.AdminClient.Status)
}

// GossipKey lists, installs, uses or removes a gossip encryption key on
// the node that answers (Admin.GossipKey): give the client one endpoint
// per node to change them all.
func (c *Client) GossipKey(ctx context.Context, op v1.GossipKeyOp, key []byte) (*v1.GossipKeyResponse, error) {
	return adminCall(ctx, c, policy{write: op != v1.GossipKeyOp_GOSSIP_KEY_OP_LIST}, &v1.GossipKeyRequest{Op: op, Key: key}, quorumkvv1connect.AdminClient.GossipKey)
}
