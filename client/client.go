// Package client is the Go client of quorumkv, used by kvctl and the tests.
//
// A Client talks to any node: every node accepts every request and
// forwards it where it belongs. For a key of a raft or paxos keyspace it
// starts with the endpoint that led the key's range last time, as the
// answers name it (routes.go), which saves the forwarding hop; otherwise
// it starts with the first endpoint. It tries its endpoints in turn and
// moves to the next one, with exponential backoff, when a node cannot
// serve: its dial fails, or it answers Unavailable. quorumkv servers answer
// Unavailable only when nothing was written (no leader, no quorum reached
// before anything was proposed), so retrying is safe for every operation,
// compare-and-swap included. An outcome that is not known (a deadline
// passed while a write was in flight) is returned, never retried.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// Config configures a Client.
type Config struct {
	// Endpoints are host:port addresses of nodes, tried in order.
	Endpoints []string
	// Timeout bounds each call whose context has no deadline. Default 5s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before trying the next
	// endpoint after one could not serve; it doubles per attempt.
	// Defaults 20ms and 1s: a Raft election takes a few hundred ms.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient carries the calls; nil means a client speaking HTTP/2
	// without TLS (h2c), as kvd serves when TLS is off.
	HTTPClient *http.Client
	// GRPC selects the gRPC protocol instead of Connect.
	GRPC bool
}

// Client is a quorumkv client. It is safe for concurrent use.
type Client struct {
	cfg    Config
	kv     []kvClient
	admin  []quorumkvv1connect.AdminClient
	routes *routes // routes.go
}

type kvClient = quorumkvv1connect.KVClient

// New returns a client of the endpoints. It does not dial.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: no endpoints")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Second
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("client: MinBackoff %v exceeds MaxBackoff %v", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = h2cClient()
	}
	var opts []connect.ClientOption
	if cfg.GRPC {
		opts = append(opts, connect.WithGRPC())
	}
	c := &Client{cfg: cfg, routes: newRoutes(cfg.Endpoints)}
	for _, ep := range cfg.Endpoints {
		base := ep
		if !strings.Contains(ep, "://") {
			base = "http://" + ep
		}
		c.kv = append(c.kv, quorumkvv1connect.NewKVClient(cfg.HTTPClient, base, opts...))
		c.admin = append(c.admin, quorumkvv1connect.NewAdminClient(cfg.HTTPClient, base, opts...))
	}
	return c, nil
}

// h2cClient speaks HTTP/2 over plain TCP, which gRPC needs without TLS.
func h2cClient() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{
		Protocols:           &protocols,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// call runs f against the endpoints in turn until one serves or the
// context ends. f gets the endpoint's index.
func (c *Client) call(ctx context.Context, f func(ctx context.Context, i int) error) error {
	return c.callFrom(ctx, 0, f)
}

// callFrom is call starting with endpoint first.
func (c *Client) callFrom(ctx context.Context, first int, f func(ctx context.Context, i int) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	backoff := c.cfg.MinBackoff
	var errs []error
	for attempt := 0; ; attempt++ {
		i := (first + attempt) % len(c.kv)
		err := f(ctx, i)
		if err == nil || !retryable(err) {
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.cfg.Endpoints[i], err))
		if len(errs) > len(c.kv) {
			errs = errs[1:] // the latest failure of each endpoint
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w in time (%w); last errors: %w", ErrNoNode, ctx.Err(), errors.Join(errs...))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// retryable: the node said Unavailable (nothing written), or the request
// never left (the dial failed).
func retryable(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	// Only the server's own Unavailable: a connection lost mid-request is
	// reported as Unavailable by the transport too, but then the request
	// may have been applied.
	return connect.IsWireError(err) && connect.CodeOf(err) == connect.CodeUnavailable
}

// Errors callers test for with errors.Is. The Connect error is wrapped and
// still reachable with errors.As.
var (
	// ErrNoNode: no endpoint could serve before the deadline, and none
	// was sent the request in a way that could have applied it (dials
	// failed, or nodes answered Unavailable): nothing was written.
	ErrNoNode = errors.New("client: no node could serve")
	// ErrNotFound: the key or keyspace does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrNoKeyspace: the keyspace does not exist. It is ErrNotFound too.
	ErrNoKeyspace = fmt.Errorf("%w: no such keyspace", ErrNotFound)
	// ErrConditionFailed: a compare-and-swap found the key otherwise.
	ErrConditionFailed = errors.New("client: condition failed")
)

// notFoundHeader is kv.NotFoundHeader: what a NotFound error did not
// find, "keyspace" or "key".
const notFoundHeader = "Quorumkv-Not-Found"

// wrap marks well-known Connect codes with the package's sentinels.
func wrap(err error) error {
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		var cerr *connect.Error
		if errors.As(err, &cerr) && cerr.Meta().Get(notFoundHeader) == "keyspace" {
			return fmt.Errorf("%w: %w", ErrNoKeyspace, err)
		}
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case connect.CodeFailedPrecondition:
		return fmt.Errorf("%w: %w", ErrConditionFailed, err)
	}
	return err
}

// Quorum overrides an eventual keyspace's W and R for one request: a
// count, SizeQuorum or SizeAll; zero keeps the keyspace's default.
type Quorum struct{ W, R int }

// Named sizes, resolved by the server against the keyspace's N.
const (
	SizeQuorum = -1 // N/2+1
	SizeAll    = -2 // N
)

func (q Quorum) proto() *v1.Quorum {
	if q == (Quorum{}) {
		return nil
	}
	p := &v1.Quorum{}
	p.W, p.WLevel = size(q.W)
	p.R, p.RLevel = size(q.R)
	return p
}

func size(n int) (uint32, v1.Level) {
	switch n {
	case SizeQuorum:
		return 0, v1.Level_LEVEL_QUORUM
	case SizeAll:
		return 0, v1.Level_LEVEL_ALL
	}
	return uint32(max(n, 0)), v1.Level_LEVEL_UNSPECIFIED
}
