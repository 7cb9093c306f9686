// Command kvd is the quorumkv server.
//
// With no flags it founds a single-node cluster in ./kvd-data, listening
// on 127.0.0.1:7070, with a default keyspace (raft, N=1, 8 ranges), ready
// for kvctl (SPEC.md "kvd").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quorumkv/quorumkv/certs"
	qversion "github.com/quorumkv/quorumkv/internal/version"
	"github.com/quorumkv/quorumkv/kv/identity"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/auth"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/membership"
	"github.com/quorumkv/quorumkv/storage"
)

// defaultDrainTimeout bounds a drain: leadership hand-off and requests in
// flight.
const defaultDrainTimeout = 10 * time.Second

// version, if set at build time with -ldflags "-X main.version=...",
// overrides the version read from the build information.
var version = ""

// kvdVersion is what kvd --version prints, gossip carries and
// quorumkv_build_info says.
func kvdVersion() string {
	if version != "" {
		return version
	}
	return qversion.String()
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr, nil))
}

// run runs kvd. ready, if not nil, receives the bound address once the
// node serves (tests); SIGINT and SIGTERM drain and stop it.
func run(args []string, stdout, stderr io.Writer, ready chan<- string) int {
	app := newApp(stdout, stderr, ready)
	if err := app.Run(args); err != nil {
		fmt.Fprintf(stderr, "kvd: %v\n", err)
		return 1
	}
	return 0
}

func newApp(stdout, stderr io.Writer, ready chan<- string) *cli.App {
	hostname, _ := os.Hostname()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML file with the same keys as the flags", EnvVars: []string{"KVD_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "node-id", Usage: "unique, stable node name", Value: hostname, EnvVars: []string{"KVD_NODE_ID"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Usage: "Pebble directory", Value: "./kvd-data", EnvVars: []string{"KVD_DATA_DIR"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Usage: "client API, peer traffic and HTTP (metrics, health, the console)", Value: "127.0.0.1:7070", EnvVars: []string{"KVD_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "advertise", Usage: "address other nodes and clients use (default: the listen address)", EnvVars: []string{"KVD_ADVERTISE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "gossip", Usage: "memberlist bind address (TCP and UDP)", Value: "127.0.0.1:7946", EnvVars: []string{"KVD_GOSSIP"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "join", Usage: "gossip seeds host:port,...; absent = found a new cluster", EnvVars: []string{"KVD_JOIN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "zone", Usage: "failure domain for placement and the zones geometry", Value: "default", EnvVars: []string{"KVD_ZONE"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "weight", Usage: "votes in weighted geometries", Value: 1, EnvVars: []string{"KVD_WEIGHT"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: []string{"KVD_LOG_LEVEL"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"KVD_LOG_FORMAT"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "drain-timeout", Usage: "on SIGTERM, how long to wait for requests in flight", Value: defaultDrainTimeout, EnvVars: []string{"KVD_DRAIN_TIMEOUT"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "anti-entropy-interval", Usage: "eventual keyspaces: time between two anti-entropy rounds of this node (each compares one range with its other replicas)",
			Value: eventual.DefaultAntiEntropyInterval, EnvVars: []string{"KVD_ANTI_ENTROPY_INTERVAL"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "hint-window", Usage: "eventual keyspaces: how long hints are kept for a replica that is down; older ones are dropped and left to anti-entropy",
			Value: records.DefaultMaxHintAge, EnvVars: []string{"KVD_HINT_WINDOW"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "dead-after", Usage: "how long gossip must see a node dead before its replicas move to other nodes (raft and eventual keyspaces)",
			Value: kv.DefaultDeadAfter, EnvVars: []string{"KVD_DEAD_AFTER"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "range-max-bytes", Usage: "raft, paxos and eventual keyspaces: a range whose data grows past this size splits in two (bytes, or with a KiB, MiB or GiB suffix; 64KiB to 8GiB)",
			Value: "64MiB", EnvVars: []string{"KVD_RANGE_MAX_BYTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "range-merge-bytes", Usage: "raft keyspaces: two neighbouring ranges born of splits whose data together is below this size merge into one (bytes, or with a KiB, MiB or GiB suffix, at most half of --range-max-bytes; 0 turns merges off; default a quarter of --range-max-bytes)",
			EnvVars: []string{"KVD_RANGE_MERGE_BYTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "max-key-bytes", Usage: "the largest key a request may carry (bytes, or with a KiB or MiB suffix; 1 to 64KiB)", Value: "4KiB", EnvVars: []string{"KVD_MAX_KEY_BYTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "max-value-bytes", Usage: "the largest value a request may carry (up to 64MiB)", Value: "1MiB", EnvVars: []string{"KVD_MAX_VALUE_BYTES"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "max-request-bytes", Usage: "the largest request body (at least key plus value; up to 65MiB)", Value: "2MiB", EnvVars: []string{"KVD_MAX_REQUEST_BYTES"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-scan-keys", Usage: "the most keys one scan page returns (1 to 1000000)", Value: 10000, EnvVars: []string{"KVD_MAX_SCAN_KEYS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "certs-dir", Usage: "serve TLS with the certificates in this directory (ca.crt, node.crt, node.key: kvd cert writes them); peers must present node certificates of the same CA", EnvVars: []string{"KVD_CERTS_DIR"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "insecure", Usage: "serve plaintext on a --listen address that is not loopback, where anyone who reaches it can read and write everything", EnvVars: []string{"KVD_INSECURE"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "cluster-secret-file", Usage: "a file every node of the cluster holds alike (kvd cert create-cluster-secret writes one): without TLS, peers prove themselves with it and gossip is encrypted with a key derived from it; needed with --insecure off loopback", EnvVars: []string{"KVD_CLUSTER_SECRET_FILE"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "auth-token-ttl", Usage: "how long the tokens this node gives logged-in users are accepted (1m to 24h)",
			Value: auth.DefaultTokenTTL, EnvVars: []string{"KVD_AUTH_TOKEN_TTL"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "enable-pprof", Usage: "serve Go's profiles under /debug/pprof/ on the listen address", EnvVars: []string{"KVD_ENABLE_PPROF"}}),
	}
	return &cli.App{
		Name:      "kvd",
		Usage:     "the quorumkv server",
		Version:   kvdVersion(),
		Flags:     flags,
		Writer:    stdout,
		ErrWriter: stderr,
		Before:    altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config")),
		Commands:  []*cli.Command{demoCommand(stdout, stderr), certCommand(stdout), versionCommand(stdout)},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("kvd takes no arguments, got %q (flags start with --)", c.Args().Slice())
			}
			cfg, err := configFrom(c)
			if err != nil {
				return err
			}
			return serve(cfg, stdout, stderr, ready)
		},
	}
}

type config struct {
	nodeID, dataDir, listen, advertise, gossip, zone string
	join                                             []string
	weight                                           int
	logLevel                                         slog.Level
	logJSON                                          bool
	drainTimeout                                     time.Duration
	// tokenTTL: --auth-token-ttl.
	tokenTTL time.Duration
	// antiEntropyInterval and hintWindow go to kv.Node: StartAntiEntropy
	// and NodeConfig.MaxHintAge.
	antiEntropyInterval, hintWindow time.Duration
	// deadAfter goes to NodeConfig.DeadAfter (the placement driver).
	deadAfter   time.Duration
	enablePprof bool
	// rangeMaxBytes goes to StoreConfig.RangeMaxBytes (range splits),
	// mergeBelowBytes to StoreConfig.MergeBelowBytes (range merges: 0 a
	// quarter of rangeMaxBytes, negative off).
	rangeMaxBytes, mergeBelowBytes int64
	// certs is the loaded --certs-dir, nil when TLS is off (plaintext on
	// loopback, or --insecure); gossipKeys are its gossip.key's keys, if
	// it holds one (membership.Config.Keys).
	certs      *certs.Bundle
	gossipKeys [][]byte
	// secret is --cluster-secret-file's secret, nil without it.
	secret *certs.ClusterSecret
	// limits go to NodeConfig.Limits (SPEC.md "Limits").
	limits catalog.Limits
	// joinTimeout bounds joinGossip; 0 is joinGossipTimeout. Not a flag:
	// tests shorten it.
	joinTimeout time.Duration
}

func configFrom(c *cli.Context) (config, error) {
	cfg := config{
		nodeID: c.String("node-id"), dataDir: c.String("data-dir"), listen: c.String("listen"),
		advertise: c.String("advertise"), gossip: c.String("gossip"), zone: c.String("zone"),
		weight: c.Int("weight"), drainTimeout: c.Duration("drain-timeout"), tokenTTL: c.Duration("auth-token-ttl"),
		antiEntropyInterval: c.Duration("anti-entropy-interval"), hintWindow: c.Duration("hint-window"),
		deadAfter: c.Duration("dead-after"), enablePprof: c.Bool("enable-pprof"),
	}
	max, err := parseBytes(c.String("range-max-bytes"))
	if err != nil || max < minRangeMaxBytes || max > maxRangeMaxBytes {
		return cfg, fmt.Errorf("--range-max-bytes %q: want a size from %d to %d bytes",
			c.String("range-max-bytes"), minRangeMaxBytes, maxRangeMaxBytes)
	}
	cfg.rangeMaxBytes = max
	if cfg.mergeBelowBytes, err = mergeBelow(c.String("range-merge-bytes"), max); err != nil {
		return cfg, err
	}
	if cfg.limits, err = limitsFrom(c); err != nil {
		return cfg, err
	}
	for _, s := range strings.Split(c.String("join"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.join = append(cfg.join, s)
		}
	}
	if cfg.advertise == "" {
		cfg.advertise = cfg.listen
	}
	if err := checkNames(cfg); err != nil {
		return cfg, err
	}
	switch {
	case cfg.dataDir == "":
		return cfg, errors.New("--data-dir is empty")
	case cfg.tokenTTL < time.Minute || cfg.tokenTTL > 24*time.Hour:
		return cfg, fmt.Errorf("--auth-token-ttl %v: want 1m to 24h", cfg.tokenTTL)
	case cfg.drainTimeout < 0:
		return cfg, fmt.Errorf("--drain-timeout %v: want 0 or more", cfg.drainTimeout)
	// kv reads 0 as "the default": refused here, so that a typo does
	// not silently become 10 s or 3 h.
	case cfg.antiEntropyInterval <= 0:
		return cfg, fmt.Errorf("--anti-entropy-interval %v: want a positive duration", cfg.antiEntropyInterval)
	case cfg.hintWindow <= 0:
		return cfg, fmt.Errorf("--hint-window %v: want a positive duration", cfg.hintWindow)
	case cfg.deadAfter <= 0:
		return cfg, fmt.Errorf("--dead-after %v: want a positive duration", cfg.deadAfter)
	}
	if err := checkDataDir(cfg.dataDir); err != nil {
		return cfg, err
	}
	if err := checkAddrs(c, cfg); err != nil {
		return cfg, err
	}
	if cfg.certs, err = secureFrom(c.String("certs-dir"), c.Bool("insecure"), cfg.listen); err != nil {
		return cfg, err
	}
	if path := c.String("cluster-secret-file"); path != "" {
		if cfg.secret, err = certs.ReadClusterSecret(path); err != nil {
			return cfg, fmt.Errorf("--cluster-secret-file: %w", err)
		}
	}
	if host, _, _ := net.SplitHostPort(cfg.listen); cfg.certs == nil && cfg.secret == nil && !loopback(host) {
		return cfg, fmt.Errorf("--listen %s with --insecure: the nodes need a shared secret to tell each other from strangers: "+
			"write one with kvd cert create-cluster-secret FILE, copy it to every node, and pass --cluster-secret-file FILE", cfg.listen)
	}
	if cfg.certs == nil && cfg.secret != nil {
		cfg.gossipKeys = [][]byte{cfg.secret.GossipKey()}
	}
	if cfg.certs != nil {
		if cfg.gossipKeys, err = cfg.certs.GossipKeys(); err != nil {
			return cfg, fmt.Errorf("--certs-dir %s: %w", cfg.certs.Dir(), err)
		}
		if host, _, _ := net.SplitHostPort(cfg.gossip); len(cfg.gossipKeys) == 0 && !loopback(host) {
			return cfg, fmt.Errorf("--gossip %s is not a loopback address, and gossip would travel in the clear: write a key with kvd cert create-gossip-key --certs-dir %s, and copy it into every node's certificates directory", cfg.gossip, cfg.certs.Dir())
		}
	}
	if err := cfg.logLevel.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cfg, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	switch f := c.String("log-format"); f {
	case "text":
	case "json":
		cfg.logJSON = true
	default:
		return cfg, fmt.Errorf("--log-format %q: want text or json", f)
	}
	return cfg, nil
}

func serve(cfg config, stdout, stderr io.Writer, ready chan<- string) error {
	logger := newLogger(cfg, stderr)
	n, err := startNode(cfg, logger)
	if err != nil {
		return err
	}
	defer n.close()
	try := "--endpoints " + n.addr
	if cfg.certs != nil {
		try += " --certs-dir " + cfg.certs.Dir()
	}
	fmt.Fprintf(stdout, "kvd: node %s serving on %s (data in %s, TLS %s); try: kvctl %s put hello world\n",
		cfg.nodeID, n.addr, cfg.dataDir, map[bool]string{true: "on", false: "off"}[cfg.certs != nil], try)
	if ready != nil {
		ready <- n.addr
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case err := <-n.failed:
		return err
	case sig := <-sigs:
		logger.Info("draining", "signal", sig.String())
	}
	n.drain(false)
	logger.Info("stopped")
	return nil
}

// newLogger is the node's logger: every record carries node=<--node-id>,
// once (code below it logs a node's numeric ID as node-id: internal/lint's
// TestNoLogRecordReusesTheNodeKey).
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	var h slog.Handler
	if cfg.logJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.nodeID)
}

// storeDone reports the store stopping on its own (a disk failure).
func storeDone(s *store.Store) <-chan error {
	ch := make(chan error, 1)
	go func() {
		<-s.Done()
		ch <- s.Err()
	}()
	return ch
}

// How kvd joins gossip: it retries for joinGossipTimeout (the seeds may
// be starting at the same time), and warns of failed attempts at most
// every joinWarnEvery, so that the log says what is wrong without filling
// up.
const (
	joinGossipTimeout = time.Minute
	joinWarnEvery     = 5 * time.Second
)

// joinGossip contacts the seeds until one answers or timeout (0:
// joinGossipTimeout) passes. It logs at once which seeds it joins, and warns with the error
// of the first failed attempt and then at most every joinWarnEvery;
// status is told what /readyz should say meanwhile. Seeds of another
// cluster are refused at once (a *membership.OtherClusterError).
func joinGossip(gossip *membership.Membership, seeds []string, timeout time.Duration, logger *slog.Logger, status func(string)) error {
	if timeout == 0 {
		timeout = joinGossipTimeout
	}
	logger.Info("joining gossip", "seeds", strings.Join(seeds, ","))
	start := time.Now()
	var lastWarn time.Time
	for attempt := 1; ; attempt++ {
		n, err := gossip.Join(seeds)
		if err == nil {
			logger.Info("joined gossip", "seeds", strings.Join(seeds, ","), "reached", n)
			return nil
		}
		if errors.Is(err, membership.ErrOtherCluster) || time.Since(start) > timeout {
			return fmt.Errorf("--join %v: %w", seeds, err)
		}
		status("joining: seeds " + strings.Join(seeds, ",") + " unreachable")
		if time.Since(lastWarn) >= joinWarnEvery {
			logger.Warn("gossip seeds unreachable; retrying", "seeds", strings.Join(seeds, ","), "attempts", attempt,
				"for", time.Since(start).Round(time.Second), "give-up-after", timeout, "err", err)
			lastWarn = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// joinCluster asks the nodes gossip knows to admit this one, under its
// identity, then records the node ID and cluster it was given. A refusal
// (another cluster, a malformed request) ends it at once.
func joinCluster(db *storage.DB, gossip *membership.Membership, self catalog.NodeDescriptor, ident identity.Identity, client *http.Client, logger *slog.Logger) error {
	deadline := time.Now().Add(time.Minute)
	var lastLog time.Time // "waiting to join" is logged at most every joinWarnEvery
	for {
		var addrs []string
		for _, m := range gossip.Members() {
			if m.UUID != ident.UUID && m.State == membership.StateAlive && m.Addr != "" {
				addrs = append(addrs, m.Addr)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		id, cluster, err := kv.JoinCluster(ctx, addrs, self, ident, client)
		cancel()
		if err == nil {
			logger.Info("joined cluster", "cluster", cluster, "id", id, "uuid", ident.UUID)
			return identity.SaveJoin(db, id, cluster)
		}
		if kv.JoinRefused(err) || time.Now().After(deadline) {
			return fmt.Errorf("joining the cluster of %v: %w", addrs, err)
		}
		if time.Since(lastLog) >= joinWarnEvery {
			logger.Info("waiting to join", "err", err)
			lastLog = time.Now()
		}
		time.Sleep(time.Second)
	}
}

// gossipAlive says whether gossip sees the catalog's node nd alive: the
// member of its name is alive and carries its UUID. A node whose data
// dir was lost, back under its old name, is alive under its new ID only.
func gossipAlive(g *membership.Membership, nd catalog.NodeDescriptor) bool {
	for _, m := range g.Members() {
		if m.NodeID == nd.Name {
			return m.State == membership.StateAlive && m.UUID == nd.UUID
		}
	}
	return false
}

func gossipMembers(g *membership.Membership) []kv.Member {
	var out []kv.Member
	for _, m := range g.Members() {
		out = append(out, kv.Member{UUID: m.UUID, Name: m.NodeID, Addr: m.Addr, GossipAddr: m.GossipAddr, Zone: m.Zone,
			Version: m.Version, Weight: m.Weight, State: m.State.String()})
	}
	return out
}

// Bounds of --range-max-bytes: below 64 KiB a range splits every few
// writes. A split is one ingested sstable of the whole range, written with
// constant memory (kv/store/split.go), so no batch bounds it; but the
// node's store waits while it is written (about 2 s per GiB at 500 MiB/s),
// and a snapshot to a new replica sends the whole range, so ranges of
// more than a few GiB cost more than they save. CockroachDB's default is
// 512 MiB.
const (
	minRangeMaxBytes = 64 << 10
	maxRangeMaxBytes = 8 << 30
)

// parseBytes reads a size: a number of bytes, or one with a KiB, MiB or
// GiB suffix.
// secureFrom loads the certificates of --certs-dir, or, without it, says
// whether plaintext may be served on listen: only on a loopback address,
// or when --insecure says so (CockroachDB's rule). Files are read, not
// written.
func secureFrom(dir string, insecure bool, listen string) (*certs.Bundle, error) {
	if dir != "" {
		if insecure {
			return nil, errors.New("--certs-dir and --insecure: choose one (TLS with the certificates, or plaintext)")
		}
		b, err := certs.Load(dir)
		if err != nil {
			return nil, fmt.Errorf("--certs-dir %s: %w", dir, err)
		}
		if err := b.HasNode(); err != nil {
			return nil, fmt.Errorf("--certs-dir %s: this node's certificate (kvd cert create-node writes it): %w", dir, err)
		}
		return b, nil
	}
	if host, _, _ := net.SplitHostPort(listen); !insecure && !loopback(host) {
		return nil, fmt.Errorf("--listen %s is not a loopback address: serve TLS with --certs-dir (kvd cert writes the certificates), or pass --insecure to serve plaintext that anyone who reaches the address can read and write", listen)
	}
	return nil, nil
}

// Bounds of the request limits' flags: past them a request could not
// travel in one log entry and one peer message at a sane cost.
const (
	maxKeyBytesBound   = 64 << 10
	maxValueBytesBound = 64 << 20
	maxScanKeysBound   = 1_000_000
)

// limitsFrom reads the request limits' flags (SPEC.md "Limits"). Every
// node of a cluster should have the same: a request is checked where it
// arrives, and a forwarded one again by the node it is forwarded to.
func limitsFrom(c *cli.Context) (catalog.Limits, error) {
	var l catalog.Limits
	for _, f := range []struct {
		name     string
		min, max int64
		to       *int
	}{
		{"max-key-bytes", 1, maxKeyBytesBound, &l.MaxKeyBytes},
		{"max-value-bytes", 0, maxValueBytesBound, &l.MaxValueBytes},
		{"max-request-bytes", 1, maxValueBytesBound + maxKeyBytesBound + 1<<20, &l.MaxRequestBytes},
	} {
		n, err := parseBytes(c.String(f.name))
		if err != nil || n < f.min || n > f.max {
			return l, fmt.Errorf("--%s %q: want a size from %d to %d bytes", f.name, c.String(f.name), f.min, f.max)
		}
		*f.to = int(n)
	}
	if l.MaxScanKeys = c.Int("max-scan-keys"); l.MaxScanKeys < 1 || l.MaxScanKeys > maxScanKeysBound {
		return l, fmt.Errorf("--max-scan-keys %d: want 1 to %d", l.MaxScanKeys, maxScanKeysBound)
	}
	if l.MaxRequestBytes < l.MaxKeyBytes+l.MaxValueBytes {
		return l, fmt.Errorf("--max-request-bytes %d is below --max-key-bytes %d plus --max-value-bytes %d: the largest put could not be sent",
			l.MaxRequestBytes, l.MaxKeyBytes, l.MaxValueBytes)
	}
	return l, nil
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// mergeBelow parses --range-merge-bytes into StoreConfig.MergeBelowBytes:
// "" is 0 (a quarter of --range-max-bytes), "0" is -1 (merges off). A
// merged range must stay well under rangeMax, or it would split again at
// once and the two would go on merging and splitting: at most half of it.
func mergeBelow(arg string, rangeMax int64) (int64, error) {
	if strings.TrimSpace(arg) == "" {
		return 0, nil
	}
	n, err := parseBytes(arg)
	switch {
	case err != nil || n > rangeMax/2:
		return 0, fmt.Errorf("--range-merge-bytes %q: want a size from 0 (no merges) to half of --range-max-bytes (%d bytes)", arg, rangeMax/2)
	case n == 0:
		return -1, nil
	}
	return n, nil
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}
