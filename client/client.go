// Package client is the Go client of quorumkv, used by kvctl and the tests.
//
// A Client talks to any node: every node accepts every request and
// forwards it where it belongs. For a key of a raft or paxos keyspace it
// starts with the endpoint that led the key's range last time, as the
// answers name it (routes.go), which saves the forwarding hop; otherwise
// it starts with the first endpoint. It tries its endpoints in turn and
// moves to the next one, with exponential backoff, when a node cannot
// serve: its dial fails, or it answers Unavailable, which quorumkv
// servers answer only when nothing was or will be written. When every
// endpoint in turn refuses the connection (nothing listens on any), it
// gives up at once with ErrNoNode instead of waiting out its deadline.
//
// Every write carries an idempotency key (this client's random session
// and the write's sequence number). Raft and paxos keyspaces, and
// compare-and-swap in eventual ones, apply a write at most once per key
// and answer a repeat as they answered the first attempt. So when the
// outcome of a write is unknown (the server says so and marks it safe to
// retry, or the connection broke after the request left, in a keyspace
// known to dedup), the client sends it again with the same key, until it
// learns the outcome or its deadline passes; then it returns
// ErrOutcomeUnknown. An unknown outcome of a plain eventual write is
// returned at once: sent again, it would be written again.
package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// Config configures a Client.
type Config struct {
	// Endpoints are host:port addresses of nodes, tried in order (but see
	// Spread, and the leaders the client remembers: routes.go).
	Endpoints []string
	// Spread sends a request on a key whose range's leader the client does
	// not know (every request of an eventual keyspace, the first ones of a
	// raft or paxos range) first to an endpoint chosen by the key's hash,
	// then to the others in order, instead of always to the first: the
	// nodes then share the work of coordinating eventual requests and of
	// forwarding, and each key keeps its coordinator while the endpoints
	// stay up. Off, the first endpoint coordinates them all.
	Spread bool
	// Timeout bounds each call whose context has no deadline. Default 5s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before trying the next
	// endpoint after one could not serve; it doubles per attempt.
	// Defaults 20ms and 1s: a Raft election takes a few hundred ms.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient carries the calls; nil means a client speaking HTTP/2
	// without TLS (h2c), as kvd serves when TLS is off, or over TLS with
	// the TLS configuration if it is set.
	HTTPClient *http.Client
	// TLS, if set, reaches the endpoints over https with this
	// configuration (the cluster's CA; a client certificate to sign in
	// with; certs.Bundle.ClientTLS makes one).
	TLS *tls.Config
	// GRPC selects the gRPC protocol instead of Connect.
	GRPC bool
	// User and Password log in to a cluster whose auth is on (auth.go). A
	// user that logs in with a client certificate needs TLS with that
	// certificate and no password.
	User, Password string
}

// Client is a quorumkv client. It is safe for concurrent use.
type Client struct {
	cfg   Config
	kv    []kvClient
	admin []quorumkvv1connect.AdminClient
	auth  []quorumkvv1connect.AuthClient
	// authNoToken are the Auth clients that log in (auth.go).
	authNoToken []quorumkvv1connect.AuthClient
	tokens      tokens
	routes      *routes // routes.go
	// session and seq make the writes' idempotency keys (nextKey).
	session string
	seq     atomic.Uint64
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
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = h2cClient(cfg.TLS)
	}
	var plain []connect.ClientOption
	if cfg.GRPC {
		plain = append(plain, connect.WithGRPC())
	}
	c := &Client{cfg: cfg, routes: newRoutes(cfg.Endpoints), session: rand.Text()}
	opts := append(slices.Clone(plain), connect.WithInterceptors(c.sendToken()))
	for _, ep := range cfg.Endpoints {
		base := ep
		if !strings.Contains(ep, "://") {
			base = scheme + ep
		}
		c.kv = append(c.kv, quorumkvv1connect.NewKVClient(cfg.HTTPClient, base, opts...))
		c.admin = append(c.admin, quorumkvv1connect.NewAdminClient(cfg.HTTPClient, base, opts...))
		c.auth = append(c.auth, quorumkvv1connect.NewAuthClient(cfg.HTTPClient, base, opts...))
		c.authNoToken = append(c.authNoToken, quorumkvv1connect.NewAuthClient(cfg.HTTPClient, base, plain...))
	}
	return c, nil
}

// h2cClient speaks HTTP/2 over plain TCP, which gRPC needs without TLS,
// or over TLS with tlsConfig if it is set.
func h2cClient(tlsConfig *tls.Config) *http.Client {
	var protocols http.Protocols
	if tlsConfig != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{
		Protocols:           &protocols,
		TLSClientConfig:     tlsConfig,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// nextKey returns the idempotency key of a new write: unique to this
// client (a random session) and to the write (a sequence number). Its
// retries reuse it.
func (c *Client) nextKey() string {
	return c.session + "-" + strconv.FormatUint(c.seq.Add(1), 10)
}

// call runs f against the endpoints in turn until one serves or the
// context ends. f gets the endpoint's index, and whether an earlier
// attempt's outcome is unknown (the request is a retry: retryHeader).
func (c *Client) call(ctx context.Context, p policy, f func(ctx context.Context, i int, retry bool) error) error {
	return c.callFrom(ctx, 0, p, f)
}

// policy says which failures of a call may be tried again.
type policy struct {
	// write: the call may change data, so an attempt whose outcome is
	// unknown is tried again only if the server applies it at most once.
	write bool
	// dedup: the call's write is applied at most once (it carries an
	// idempotency key into a keyspace known to dedup it): an attempt that
	// broke after it left may be tried again.
	dedup bool
}

// verdict is what one failed attempt leaves to do.
type verdict int

const (
	giveUp   verdict = iota // the error is the answer
	tryNext                 // nothing was written: try the next endpoint
	tryAgain                // the outcome is unknown, and trying again is safe
	noQuorum                // this node cannot reach a quorum: try the others once
)

// judge classifies an attempt's error.
func (p policy) judge(err error) verdict {
	if dialFailed(err) {
		return tryNext // the request never left
	}
	if connect.IsWireError(err) {
		// The server's own answer.
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable:
			if metaOf(err, quorumHeader) == "lost" {
				return noQuorum
			}
			return tryNext
		case connect.CodeUnknown:
			if !p.write || metaOf(err, retrySafeHeader) == "true" {
				return tryAgain
			}
		}
		return giveUp
	}
	// No answer: a connection lost mid-request is reported as
	// Unavailable by the transport too, but the request may have arrived
	// and been applied.
	if !p.write || p.dedup {
		return tryAgain
	}
	return giveUp
}

// dialFailed: the request never left.
func dialFailed(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// metaOf returns an error's Connect metadata key.
func metaOf(err error, key string) string {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Meta().Get(key)
	}
	return ""
}

// Metadata the servers set on errors (kv.QuorumHeader, kv.RetrySafeHeader),
// and the header of a request sent again after an unknown outcome
// (kv.RetryHeader).
const (
	quorumHeader    = "Quorumkv-Quorum"
	retrySafeHeader = "Quorumkv-Retry-Safe"
	retryHeader     = "Quorumkv-Retry"
)

// callFrom is call starting with endpoint first.
func (c *Client) callFrom(ctx context.Context, first int, p policy, f func(ctx context.Context, i int, retry bool) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	backoff := c.cfg.MinBackoff
	var errs []error
	var uncertain error // the last attempt whose write may have been applied
	var lost error      // a node's answer that it cannot reach a quorum
	refused := 0        // attempts in a row that found a node down or without a quorum
	connRefused := 0    // attempts in a row whose dial was refused
	for attempt := 0; ; attempt++ {
		i := (first + attempt) % len(c.kv)
		err := f(ctx, i, uncertain != nil)
		if err == nil {
			return nil
		}
		v := p.judge(err)
		if v == tryNext && errors.Is(err, syscall.ECONNREFUSED) {
			connRefused++
		} else {
			connRefused = 0
		}
		switch v {
		case giveUp:
			switch {
			case !connect.IsWireError(err):
				// A write that is not deduplicated, and broke after it
				// left.
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			case uncertain != nil && connect.CodeOf(err) == connect.CodeDeadlineExceeded:
				return fmt.Errorf("%w: %w (after %w)", ErrOutcomeUnknown, err, uncertain)
			}
			// The server's answer; after an uncertain attempt, a repeat
			// with the same idempotency key is answered as the first
			// attempt was.
			return err
		case tryAgain:
			if p.write {
				uncertain = err // a read that got no answer changed nothing
			}
			refused = 0
		case noQuorum:
			lost, refused = err, refused+1
		case tryNext:
			if dialFailed(err) {
				refused++ // down: counts toward "every endpoint is down or cut off"
			} else {
				refused = 0 // an election under way somewhere: worth waiting for
			}
		}
		if lost != nil && refused >= len(c.kv) {
			// Every endpoint is down or cut off from a quorum: no
			// election will end soon. The node's answer says which
			// quorum it lacks.
			if uncertain != nil {
				return fmt.Errorf("%w: %w; and no node can reach a quorum now: %w", ErrOutcomeUnknown, uncertain, lost)
			}
			return lost
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.cfg.Endpoints[i], err))
		if len(errs) > len(c.kv) {
			errs = errs[1:] // the latest failure of each endpoint
		}
		if connRefused >= len(c.kv) {
			// Nothing listens on any endpoint: waiting out the deadline
			// would not change that soon, and a refused dial sent
			// nothing. (A node restarting, or one in an election, still
			// accepts connections or answers Unavailable: those are
			// tried again.)
			if uncertain != nil {
				return fmt.Errorf("%w: %w; then every endpoint refused the connection: %w", ErrOutcomeUnknown, uncertain, errors.Join(errs...))
			}
			return fmt.Errorf("%w: every endpoint refused the connection: %w", ErrNoNode, errors.Join(errs...))
		}
		select {
		case <-ctx.Done():
			if uncertain != nil {
				return fmt.Errorf("%w (%w): the write may have been applied; last errors: %w", ErrOutcomeUnknown, ctx.Err(), errors.Join(errs...))
			}
			return fmt.Errorf("%w in time (%w); last errors: %w", ErrNoNode, ctx.Err(), errors.Join(errs...))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// Errors callers test for with errors.Is. The Connect error is wrapped and
// still reachable with errors.As.
var (
	// ErrNoNode: no endpoint could serve before the deadline (or every
	// endpoint refused the connection), and none
	// was sent the request in a way that could have applied it (dials
	// failed, or nodes answered Unavailable): nothing was written.
	ErrNoNode = errors.New("client: no node could serve")
	// ErrNotFound: the key or keyspace does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrNoKeyspace: the keyspace does not exist. It is ErrNotFound too.
	ErrNoKeyspace = fmt.Errorf("%w: no such keyspace", ErrNotFound)
	// ErrConditionFailed: a compare-and-swap found the key otherwise.
	ErrConditionFailed = errors.New("client: condition failed")
	// ErrOutcomeUnknown: a write was sent and the client could not learn
	// whether it was applied before its deadline (or, for a plain write in
	// an eventual keyspace, at all). Reading the key tells.
	ErrOutcomeUnknown = errors.New("client: outcome unknown")
)

// notFoundHeader is kv.NotFoundHeader: what a NotFound error did not
// find, "keyspace" or "key".
const notFoundHeader = "Quorumkv-Not-Found"

// wrap marks well-known Connect codes with the package's sentinels.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		var cerr *connect.Error
		if errors.As(err, &cerr) && cerr.Meta().Get(notFoundHeader) == "keyspace" {
			return fmt.Errorf("%w: %w", ErrNoKeyspace, err)
		}
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case connect.CodeFailedPrecondition:
		return fmt.Errorf("%w: %w", ErrConditionFailed, err)
	case connect.CodeUnknown:
		if !errors.Is(err, ErrOutcomeUnknown) {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
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
