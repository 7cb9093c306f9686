package client

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"github.com/cespare/xxhash/v2"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
)

// Every node accepts every request, and a node that does not lead the
// key's range forwards it to the leader: one more hop. A raft or paxos
// node's answer names the leader that served it and the range's span of
// the hash space (the Quorumkv-Leader and Quorumkv-Span headers); the
// client remembers them and sends the next request for a key in that span
// to that endpoint first, as CockroachDB's clients keep a range cache. A
// stale entry costs only the hop it meant to save: the node forwards, and
// the answer corrects the entry.

const (
	leaderHeader = "Quorumkv-Leader" // kv.LeaderHeader
	spanHeader   = "Quorumkv-Span"   // kv.SpanHeader
)

// routes is the client's range cache: per keyspace, spans of the hash
// space and the endpoint that leads each.
type routes struct {
	// endpoints maps an endpoint's address to its index in Config.Endpoints.
	endpoints map[string]int
	mu        sync.Mutex
	spans     map[string][]route // by keyspace, sorted by lo, disjoint
	// led are the keyspaces whose answers named a leader: raft and paxos
	// keyspaces, which apply a write at most once per idempotency key.
	led map[string]bool
}

// route is [lo, hi) of the hash space (hi 0: up to 2^64) led by endpoint.
type route struct {
	lo, hi   uint64
	endpoint int
}

func (r route) contains(h uint64) bool { return h >= r.lo && (r.hi == 0 || h < r.hi) }

func newRoutes(endpoints []string) *routes {
	rs := &routes{endpoints: map[string]int{}, spans: map[string][]route{}, led: map[string]bool{}}
	for i, ep := range endpoints {
		addr := ep
		if _, rest, ok := strings.Cut(ep, "://"); ok {
			addr = rest
		}
		if _, dup := rs.endpoints[addr]; !dup {
			rs.endpoints[addr] = i
		}
	}
	return rs
}

// hashKey is the server's kv.HashKey: xxhash64 of the key.
func hashKey(key []byte) uint64 { return xxhash.Sum64(key) }

// lookup returns the endpoint that led the span of h in keyspace, if known.
func (rs *routes) lookup(keyspace string, h uint64) (int, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.spans[keyspace] {
		if r.contains(h) {
			return r.endpoint, true
		}
	}
	return 0, false
}

// learn records what an answer's headers say; answers without them
// (eventual keyspaces, older servers) or naming a node that is not one of
// the endpoints change nothing.
func (rs *routes) learn(keyspace string, h http.Header) {
	if h.Get(leaderHeader) != "" {
		rs.mu.Lock()
		rs.led[keyspace] = true
		rs.mu.Unlock()
	}
	ep, ok := rs.endpoints[h.Get(leaderHeader)]
	if !ok {
		return
	}
	var r route
	if _, err := fmt.Sscanf(h.Get(spanHeader), "%016x-%016x", &r.lo, &r.hi); err != nil || (r.hi != 0 && r.hi <= r.lo) {
		return
	}
	r.endpoint = ep
	rs.mu.Lock()
	defer rs.mu.Unlock()
	// Drop what overlaps the new span (a range that split or merged),
	// and insert it in order.
	kept := slices.DeleteFunc(rs.spans[keyspace], func(o route) bool {
		return (r.hi == 0 || o.lo < r.hi) && (o.hi == 0 || r.lo < o.hi)
	})
	i, _ := slices.BinarySearchFunc(kept, r.lo, func(o route, lo uint64) int {
		switch {
		case o.lo < lo:
			return -1
		case o.lo > lo:
			return 1
		}
		return 0
	})
	rs.spans[keyspace] = slices.Insert(kept, i, r)
}

// dedups reports whether keyspace is known to apply a write at most once
// per idempotency key: an answer of it named a leader.
func (rs *routes) dedups(keyspace string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.led[keyspace]
}

// forget drops the span of h in keyspace: its endpoint could not serve.
func (rs *routes) forget(keyspace string, h uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.spans[keyspace] = slices.DeleteFunc(rs.spans[keyspace], func(r route) bool { return r.contains(h) })
}

// keyCall is unary for a request on one key: it starts with the endpoint
// that led the key's range last, and learns from the answer.
func keyCall[Req, Resp any](ctx context.Context, c *Client, keyspace string, key []byte, write bool, req *Req,
	rpc func(kvClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)) (*Resp, error) {
	h := hashKey(key)
	first, cached := c.routes.lookup(keyspace, h)
	if !cached && c.cfg.Spread {
		first = int(h % uint64(len(c.kv)))
	}
	var out *Resp
	p := policy{write: write, dedup: write && c.routes.dedups(keyspace)}
	switch r := any(req).(type) {
	case *v1.CompareAndSwapRequest:
		p.dedup = true // compare-and-swap is applied at most once per key in every mode
	case *v1.DeleteRequest:
		p.dedup = p.dedup || r.Expect != nil // a conditional delete is a compare-and-swap
	}
	err := c.callFrom(ctx, first, p, func(ctx context.Context, i int, retry bool) error {
		r := connect.NewRequest(req)
		if retry {
			r.Header().Set(retryHeader, "true")
		}
		resp, err := rpc(c.kv[i], ctx, r)
		if err != nil {
			if cached && i == first && p.judge(err) != giveUp {
				c.routes.forget(keyspace, h)
			}
			return err
		}
		out = resp.Msg
		c.routes.learn(keyspace, resp.Header())
		return nil
	})
	return out, wrap(err)
}
