package transport

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/api/quorumkv/peer/v1/peerv1connect"
	"github.com/quorumkv/quorumkv/api/quorumkv/v1/quorumkvv1connect"
)

// Peers holds Connect clients for other nodes, by address.
type Peers struct {
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
	auth  quorumkvv1connect.AuthClient
	peer  peerv1connect.PeerClient
}

func NewPeers(client *http.Client) *Peers {
	p := &Peers{http: client}
	p.mu.byAddr = map[string]*peerClients{}
	return p
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

func (p *Peers) clients(addr string) *peerClients {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.mu.byAddr[addr]
	if !ok {
		base := baseURL(addr)
		c = &peerClients{
			kv:    quorumkvv1connect.NewKVClient(p.http, base, connect.WithGRPC(), forwardCredentials),
			admin: quorumkvv1connect.NewAdminClient(p.http, base, connect.WithGRPC(), forwardCredentials),
			auth:  quorumkvv1connect.NewAuthClient(p.http, base, connect.WithGRPC(), forwardCredentials),
			peer:  peerv1connect.NewPeerClient(p.http, base, connect.WithGRPC()),
		}
		p.mu.byAddr[addr] = c
	}
	return c
}

func (p *Peers) KVClient(addr string) quorumkvv1connect.KVClient       { return p.clients(addr).kv }
func (p *Peers) AdminClient(addr string) quorumkvv1connect.AdminClient { return p.clients(addr).admin }
func (p *Peers) AuthClient(addr string) quorumkvv1connect.AuthClient   { return p.clients(addr).auth }
func (p *Peers) PeerClient(addr string) peerv1connect.PeerClient       { return p.clients(addr).peer }

// A request a node forwards to another (to a range's leader, to meta's
// leader) carries its caller's credentials, which the other node checks
// again: with TLS the forwarding node's certificate would pass anything
// (kv/auth), but without TLS the token is all there is.
type authorizationKey struct{}

// WithAuthorization returns ctx carrying a request's Authorization
// header, which the KV, Admin and Auth clients of Peers send with every
// request made under ctx.
func WithAuthorization(ctx context.Context, authorization string) context.Context {
	return context.WithValue(ctx, authorizationKey{}, authorization)
}

// AuthorizationOf returns the Authorization header ctx carries
// (WithAuthorization), or "".
func AuthorizationOf(ctx context.Context) string {
	h, _ := ctx.Value(authorizationKey{}).(string)
	return h
}

var forwardCredentials = connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if h := AuthorizationOf(ctx); h != "" && req.Header().Get("Authorization") == "" {
			req.Header().Set("Authorization", h)
		}
		return next(ctx, req)
	}
}))

// H2CClient returns an HTTP client that speaks HTTP/2 without TLS, as
// nodes do to each other when TLS is off. It pings a connection that has
// been silent for PeerPingInterval and closes it if no answer comes
// within PeerPingTimeout, as gRPC's keepalive does: a peer that vanished
// without closing its connections (a host lost, a cut cable) ends the
// long-lived peer streams on it, which fail their calls and reconnect,
// instead of leaving them to TCP's retransmission timeout (15 min).
func H2CClient() *http.Client { return NewH2CClient(PeerPingInterval, PeerPingTimeout) }

// The peer connections' health checks (H2CClient).
const (
	PeerPingInterval = 10 * time.Second
	PeerPingTimeout  = 5 * time.Second
)

// TLSClient returns the HTTP client nodes reach each other with when TLS
// is on: HTTP/2 over TLS with cfg (the node's certificate, the cluster's
// CA), the same health checks as H2CClient. Peer addresses stay
// host:port, and the URLs built from them say http: the client sends
// every request as https, so that no address, stored or gossiped, needs
// to know whether the cluster is secure.
func TLSClient(cfg *tls.Config) *http.Client {
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	t := &http.Transport{Protocols: &protocols, TLSClientConfig: cfg, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		HTTP2: &http.HTTP2Config{SendPingTimeout: PeerPingInterval, PingTimeout: PeerPingTimeout}}
	return &http.Client{Transport: httpsOnly{t}}
}

// httpsOnly sends every request over https.
type httpsOnly struct{ rt http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
	}
	return h.rt.RoundTrip(r)
}

func NewH2CClient(pingInterval, pingTimeout time.Duration) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &protocols, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		HTTP2: &http.HTTP2Config{SendPingTimeout: pingInterval, PingTimeout: pingTimeout}}}
}

// ClusterSecretHeader carries, on every request a node sends to another
// without TLS, the digest of the cluster secret (certs.ClusterSecret):
// the peer protocol answers no request without it.
const ClusterSecretHeader = "Quorumkv-Cluster-Secret"

// WithClusterSecret returns client sending digest, the cluster secret's
// digest, with every request.
func WithClusterSecret(client *http.Client, digest string) *http.Client {
	c := *client
	c.Transport = secretSender{rt: client.Transport, digest: digest}
	return &c
}

type secretSender struct {
	rt     http.RoundTripper
	digest string
}

func (s secretSender) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(ClusterSecretHeader, s.digest)
	return s.rt.RoundTrip(r)
}
