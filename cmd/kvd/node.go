package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/certs"
	"github.com/quorumkv/quorumkv/kv/identity"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/kv/server"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/storage"
)

// runningNode is one kvd node and everything it started, so that kvd and
// kvd demo (several nodes in one process) start and stop nodes alike.
type runningNode struct {
	cfg    config
	logger *slog.Logger
	addr   string
	// failed reports the node stopping on its own: the listener or the
	// store failed.
	failed chan error

	closers    []func() error // run in reverse by close
	gossip     *membership.Membership
	gossipLeft bool
	store      *store.Store
	server     *server.Server
	httpServer *http.Server
	// startup serves /livez and /readyz until the node is built.
	startup      *startupHandler
	stopAnnounce context.CancelFunc
}

// startNode binds --listen and serves /livez and /readyz on it at once,
// then opens the data dir, starts gossip, joins or founds the cluster,
// opens the store and serves the API. On error everything already started
// is stopped.
func startNode(cfg config, logger *slog.Logger) (_ *runningNode, err error) {
	n := &runningNode{cfg: cfg, logger: logger, failed: make(chan error, 2), startup: newStartupHandler()}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	// The address first: a port in use is refused before the disk is
	// touched, and health checks get an answer while the node starts.
	if err := n.listen(); err != nil {
		return nil, err
	}
	if err := gossipFree(cfg.gossip); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.RegisterBuildInfo(reg, kvdVersion(), runtime.Version())
	nodeMetrics := metrics.NewMetrics(reg)

	hooks, err := loadTestHooks(logger)
	if err != nil {
		return nil, err
	}
	if hooks.stop != nil {
		n.closers = append(n.closers, func() error { hooks.stop(); return nil })
	}

	n.startup.setStatus("starting: opening data dir " + cfg.dataDir)
	lock, err := lockDataDir(cfg.dataDir, n.addr, time.Now())
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, lock.Close)
	db, err := storage.Open(cfg.dataDir, storage.Options{Logger: logger, OnWALSync: nodeMetrics.ObserveWALSync, Faults: hooks.disk})
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", cfg.dataDir, err)
	}
	n.closers = append(n.closers, db.Close)

	// The identity comes first: a new data dir gets one before it founds
	// or joins a cluster, and a data dir of another node is refused
	// before anything else is started.
	ident, err := identity.Open(db, cfg.nodeID)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.dataDir, err)
	}

	n.gossip, err = membership.New(membership.Config{
		Meta: membership.Meta{NodeID: cfg.nodeID, Addr: cfg.advertise, Zone: cfg.zone, Weight: cfg.weight, Version: kvdVersion(),
			UUID: ident.UUID, ClusterID: ident.ClusterID},
		BindAddr: cfg.gossip,
		Logger:   logger,
		Keys:     cfg.gossipKeys,
	})
	if err != nil {
		return nil, err
	}
	metrics.RegisterGossipMembers(reg, func() map[string]int { return gossipCounts(n.gossip) })
	n.closers = append(n.closers, func() error {
		if n.gossipLeft {
			return nil
		}
		return n.gossip.Close()
	})

	self := catalog.NodeDescriptor{Name: cfg.nodeID, Addr: cfg.advertise, Zone: cfg.zone, Weight: cfg.weight, Gossip: n.gossip.LocalAddr(), UUID: ident.UUID}
	peerClient := transport.H2CClient()
	if cfg.certs != nil {
		peerClient = transport.TLSClient(cfg.certs.PeerTLS())
	}
	if cfg.secret != nil {
		peerClient = transport.WithClusterSecret(peerClient, cfg.secret.Digest())
	}
	member := ident.NodeID != 0
	if len(cfg.join) > 0 {
		if err := joinGossip(n.gossip, cfg.join, cfg.joinTimeout, logger, n.startup.setStatus); err != nil {
			var other *membership.OtherClusterError
			if errors.As(err, &other) {
				return nil, fmt.Errorf("data dir %s belongs to cluster %s, and the --join seeds %v to cluster %s: "+
					"start it with seeds of cluster %s (or without --join), or start on an empty data dir to join cluster %s as a new node: %w",
					cfg.dataDir, other.Ours, cfg.join, other.Theirs, other.Ours, other.Theirs, err)
			}
			return nil, err
		}
		if !member {
			n.startup.setStatus("joining: waiting for the cluster to admit this node")
			if err := joinCluster(db, n.gossip, self, ident, peerClient, logger); err != nil {
				return nil, err
			}
		}
	}
	n.startup.setStatus("starting: opening the store")
	n.store, err = store.OpenStore(db, store.StoreConfig{Logger: logger, Metrics: nodeMetrics, Self: self, Advertised: n.gossip.AdvertisedAddr,
		DefaultGrowTo: defaultGrowTo, RangeMaxBytes: cfg.rangeMaxBytes, MergeBelowBytes: cfg.mergeBelowBytes,
		AuthAtBootstrap: cfg.certs != nil, Canary: hooks.canary}, nil, len(cfg.join) == 0)
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, n.store.Close)
	// Gossip takes the cluster's ID once the node belongs to it (it has
	// just founded or joined it): from then on, members of other clusters
	// are refused.
	if meta := n.gossip.Meta(); meta.ClusterID != n.store.ClusterID() {
		meta.ClusterID = n.store.ClusterID()
		if err := n.gossip.UpdateMeta(meta, time.Second); err != nil {
			logger.Warn("gossiping this node's cluster", "err", err)
		}
	}
	transport := transport.NewPeerTransport(n.store.NodeID(), cfg.advertise, n.store.ClusterID(), n.store.NodeAddr, peerClient, logger)
	transport.OnUnreachable(n.store.ReportUnreachable)
	n.closers = append(n.closers, func() error { transport.Close(); return nil })
	if err := n.store.SetTransport(transport); err != nil {
		return nil, err
	}
	nodeCfg := kv.NodeConfig{
		Zone: cfg.zone, Weight: cfg.weight, HTTPClient: peerClient, MaxHintAge: cfg.hintWindow, DeadAfter: cfg.deadAfter, Limits: cfg.limits,
		Alive:         func(nd catalog.NodeDescriptor) bool { return gossipAlive(n.gossip, nd) },
		Members:       func() []kv.Member { return gossipMembers(n.gossip) },
		PhysicalClock: hooks.clock,
	}
	if hooks.plantNode != nil {
		hooks.plantNode(&nodeCfg)
	}
	node, err := kv.NewNode(n.store, nodeCfg)
	if err != nil {
		return nil, err
	}
	// Before the store closes: the node's background read repairs and
	// replica writes use it.
	n.closers = append(n.closers, func() error { node.Close(); return nil })
	node.StartAntiEntropy(cfg.antiEntropyInterval)
	node.StartPlacement()
	node.StartSplits()

	n.server = server.NewServer(node, server.ServerInfo{
		NodeName: cfg.nodeID, Advertise: cfg.advertise, Gossip: n.gossip.LocalAddr(), Version: kvdVersion(), ClusterID: n.store.ClusterID(),
		Secure: cfg.certs != nil, PeerHTTPClient: peerClient, Keyring: n.gossip, TokenTTL: cfg.tokenTTL, ClusterSecretDigest: secretDigest(cfg.secret),
		SaveGossipKeys: func(keys [][]byte) error {
			if cfg.certs == nil {
				return errors.New("no --certs-dir to save the keys in")
			}
			return certs.WriteGossipKeys(cfg.certs.Dir(), keys)
		},
	}, nodeMetrics, reg)
	var handler http.Handler = n.server
	if cfg.enablePprof {
		handler = withPprof(n.server)
	}
	n.startup.serve(handler)
	// Closed again here, so that it stops before the node and the store
	// it serves (close runs closers in reverse); a second Close does
	// nothing.
	n.closers = append(n.closers, n.httpServer.Close)
	go func() {
		<-n.store.Done()
		if err := n.store.Err(); err != nil {
			n.failed <- fmt.Errorf("store stopped: %w", err)
		}
	}()
	logger.Info("kvd serving", "listen", n.addr, "tls", cfg.certs != nil, "data-dir", cfg.dataDir, "cluster", n.store.ClusterID(), "version", kvdVersion())

	// The catalog learns this node's current address (it may have moved
	// since the last run); requests are served meanwhile.
	var announceCtx context.Context
	announceCtx, n.stopAnnounce = context.WithCancel(context.Background())
	// Announce uses the store: it ends before the store closes.
	var announcing sync.WaitGroup
	n.closers = append(n.closers, func() error { n.stopAnnounce(); announcing.Wait(); return nil })
	announcing.Go(func() {
		switch err := node.Announce(announceCtx, self); {
		case err == nil || announceCtx.Err() != nil:
		case kv.JoinRefused(err):
			logger.Error("the catalog refused this node's address", "err", err)
		default:
			logger.Warn("catalog does not know this node's address yet", "err", err)
		}
	})
	if member && len(cfg.join) == 0 {
		// A member restarted without --join finds the others through the
		// gossip addresses the catalog keeps.
		go rejoinGossip(announceCtx, n.gossip, n.store, self.UUID, logger)
	}
	return n, nil
}

// listen binds --listen and serves it with the startup handler, which
// hands over to the node's once it is built.
func (n *runningNode) listen() error {
	ln, err := net.Listen("tcp", n.cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", n.cfg.listen, err)
	}
	n.addr = ln.Addr().String()
	n.httpServer = &http.Server{Handler: n.startup, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	n.httpServer.Protocols.SetHTTP1(true) // for curl
	if n.cfg.certs != nil {
		// HTTP/2 over TLS for gRPC, Connect and the peers.
		n.httpServer.Protocols.SetHTTP2(true)
		ln = tls.NewListener(ln, n.cfg.certs.ServerTLS())
	} else {
		// HTTP/2 without TLS (h2c) for gRPC.
		n.httpServer.Protocols.SetUnencryptedHTTP2(true)
	}
	go func() {
		if err := n.httpServer.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.failed <- fmt.Errorf("serving %s: %w", n.addr, err)
		}
	}()
	n.closers = append(n.closers, n.httpServer.Close)
	return nil
}

// gossipFree checks that --gossip's port is free for TCP and UDP, so that
// a port in use is refused before the data dir is touched (gossip starts
// only once the data dir has given the node its identity). Port 0 is
// always free.
func gossipFree(addr string) error {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--gossip %s: %w", addr, err)
	}
	l.Close()
	p, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("--gossip %s: %w", addr, err)
	}
	return p.Close()
}

// rejoinGossip joins gossip through the catalog's other nodes (other
// than the one of UUID self), retrying until one answers or ctx ends.
func rejoinGossip(ctx context.Context, gossip *membership.Membership, store *store.Store, self string, logger *slog.Logger) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var seeds []string
		for _, nd := range store.Catalog().Nodes {
			if nd.UUID != self && nd.Gossip != "" {
				seeds = append(seeds, nd.Gossip)
			}
		}
		if len(seeds) == 0 {
			return // a single-node cluster: nobody to find
		}
		if _, err := gossip.Join(seeds); err == nil {
			logger.Info("rejoined gossip", "seeds", seeds)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// drain stops the node gracefully (SPEC.md): readiness fails first, so
// load balancers move away; the ranges this node leads are handed to other
// replicas; gossip says goodbye; requests in flight finish. When the
// whole cluster stops at once (kvd demo), there is no one to hand ranges
// to or say goodbye to: clusterStopping skips both.
func (n *runningNode) drain(clusterStopping bool) {
	n.server.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.drainTimeout)
	defer cancel()
	if !clusterStopping {
		if moved, kept := n.store.TransferLeaderships(ctx); moved+kept > 0 {
			n.logger.Info("handed off leaderships", "moved", moved, "kept", kept)
		}
		if err := n.gossip.Leave(time.Second); err != nil {
			n.logger.Warn("gossip leave", "err", err)
		}
		n.gossipLeft = true
	}
	n.server.StopPeers()
	if err := n.httpServer.Shutdown(ctx); err != nil {
		n.logger.Warn("requests still in flight at the drain timeout", "err", err)
	}
}

// close releases everything startNode started, in reverse order.
func (n *runningNode) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil {
			n.logger.Warn("stopping", "err", err)
		}
	}
	n.closers = nil
}

// withPprof serves net/http/pprof's handlers under /debug/pprof/ and h
// everywhere else (kvd --enable-pprof, as etcd's flag of that name).
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// defaultGrowTo is the N the default keyspace grows to as nodes join
// (SPEC.md: kvd starts it with one replica), as CockroachDB's default zone
// does.
const defaultGrowTo = 3

// secretDigest is the cluster secret's digest, "" without one.
func secretDigest(s *certs.ClusterSecret) string {
	if s == nil {
		return ""
	}
	return s.Digest()
}

// gossipCounts is quorumkv_gossip_members: g's members by state.
func gossipCounts(g *membership.Membership) map[string]int {
	out := map[string]int{}
	for state, n := range g.CountByState() {
		out[state.String()] = n
	}
	return out
}
