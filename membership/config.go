package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures gossip. Zero fields take the defaults of EnsureDefaults.
type Config struct {
	// Meta is what this node gossips about itself. Meta.NodeID is required
	// and is also the memberlist node name.
	Meta Meta
	// BindAddr is the host:port gossip listens on, TCP and UDP (kvd --gossip).
	// Port 0 picks a free port (tests).
	BindAddr string
	// AdvertiseAddr is the host:port others reach this node's gossip on;
	// empty means BindAddr (or the bound address with port 0).
	AdvertiseAddr string

	// ProbeInterval is how often each node probes a random other: the
	// floor of failure detection. Lower finds failures sooner and costs
	// more packets (one probe per node per interval).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack before asking
	// others to probe indirectly. Must exceed the network's round trip.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect has to refute before it is
	// declared dead: SuspicionMult * log10(N+1) * ProbeInterval. Higher
	// means fewer false deaths under load and slower real ones.
	SuspicionMult int
	// GossipInterval is how often state changes are pushed to a few random
	// nodes; it bounds how fast news spreads.
	GossipInterval time.Duration
	// PushPullInterval is how often two nodes exchange full state, which
	// repairs anything gossip missed. It costs a TCP round trip per interval.
	PushPullInterval time.Duration
	// TCPTimeout bounds push/pull and join connections.
	TCPTimeout time.Duration
	// DeadNodeReclaimTime is how soon a dead node's name may come back from
	// a new address; a restarted kvd keeps its node ID but may change port.
	DeadNodeReclaimTime time.Duration

	// Logger receives memberlist's logs; nil means slog.Default().
	Logger *slog.Logger

	// Keys encrypt and authenticate gossip (AES-GCM, memberlist's
	// keyring): every message is sealed with Keys[0] and opened with any
	// of them, and messages that open with none are dropped, so a node
	// without a key cannot take part. Each key is 16, 24 or 32 bytes. More
	// than one lets keys rotate by rolling restarts: add the new key
	// second on every node, then first, then drop the old one. None:
	// gossip travels in the clear.
	Keys [][]byte
}

// LANTimings are the defaults: a datacenter network, failures found within
// a few seconds, a few packets per second per node.
func LANTimings() Config {
	return Config{
		ProbeInterval:       time.Second,
		ProbeTimeout:        500 * time.Millisecond,
		SuspicionMult:       4,
		GossipInterval:      200 * time.Millisecond,
		PushPullInterval:    30 * time.Second,
		TCPTimeout:          10 * time.Second,
		DeadNodeReclaimTime: 10 * time.Second,
	}
}

// LoopbackTimings suit clusters on one machine (kvd demo, tests): failures
// are found in well under a second and state converges in a few hundred
// milliseconds, at a packet cost that only loopback can afford.
func LoopbackTimings() Config {
	return Config{
		ProbeInterval:       100 * time.Millisecond,
		ProbeTimeout:        50 * time.Millisecond,
		SuspicionMult:       3,
		GossipInterval:      50 * time.Millisecond,
		PushPullInterval:    2 * time.Second,
		TCPTimeout:          2 * time.Second,
		DeadNodeReclaimTime: time.Second,
	}
}

// EnsureDefaults fills zero timings from LANTimings and a nil Logger.
func (c *Config) EnsureDefaults() {
	d := LANTimings()
	def := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	def(&c.ProbeInterval, d.ProbeInterval)
	def(&c.ProbeTimeout, d.ProbeTimeout)
	def(&c.GossipInterval, d.GossipInterval)
	def(&c.PushPullInterval, d.PushPullInterval)
	def(&c.TCPTimeout, d.TCPTimeout)
	def(&c.DeadNodeReclaimTime, d.DeadNodeReclaimTime)
	if c.SuspicionMult == 0 {
		c.SuspicionMult = d.SuspicionMult
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the rules across fields.
func (c *Config) Validate() error {
	if c.Meta.NodeID == "" {
		return errors.New("membership: Meta.NodeID is required")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("membership: bind address: %w", err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("membership: advertise address: %w", err)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("membership: ProbeTimeout %v must be shorter than ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 1 {
		return fmt.Errorf("membership: SuspicionMult %d must be at least 1", c.SuspicionMult)
	}
	for i, k := range c.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("membership: gossip key %d is %d bytes, want 16, 24 or 32", i+1, n)
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return host, port, nil
}

// memberlistConfig passes every setting explicitly instead of trusting
// memberlist's defaults (STYLE.md §6).
func (c *Config) memberlistConfig() (*memberlist.Config, error) {
	mlc := memberlist.DefaultLANConfig()
	mlc.Name = c.Meta.NodeID
	host, port, _ := splitHostPort(c.BindAddr)
	mlc.BindAddr, mlc.BindPort = host, port
	mlc.AdvertiseAddr, mlc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		ahost, aport, _ := splitHostPort(c.AdvertiseAddr)
		mlc.AdvertiseAddr, mlc.AdvertisePort = ahost, aport
	}
	mlc.ProbeInterval = c.ProbeInterval
	mlc.ProbeTimeout = c.ProbeTimeout
	mlc.SuspicionMult = c.SuspicionMult
	mlc.GossipInterval = c.GossipInterval
	mlc.PushPullInterval = c.PushPullInterval
	mlc.TCPTimeout = c.TCPTimeout
	mlc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	// Gossip to the dead as long as a push/pull interval, so that a node
	// back from a partition hears it was declared dead and refutes it.
	mlc.GossipToTheDeadTime = c.PushPullInterval
	// Three indirect probes and three gossip targets are memberlist's
	// tested values; clusters here are small.
	mlc.IndirectChecks = 3
	mlc.GossipNodes = 3
	// Metadata is small JSON; compression buys nothing and costs CPU.
	mlc.EnableCompression = false
	// TCP fallback pings tell a lossy UDP path from a dead node.
	mlc.DisableTcpPings = false
	// Resolve seed names with the system resolver, not a resolv.conf read
	// that scratch containers do not have.
	mlc.DNSConfigPath = ""
	if len(c.Keys) > 0 {
		ring, err := memberlist.NewKeyring(c.Keys[1:], c.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("membership: gossip keys: %w", err)
		}
		mlc.Keyring = ring
		mlc.GossipVerifyIncoming, mlc.GossipVerifyOutgoing = true, true
	}
	return mlc, nil
}
