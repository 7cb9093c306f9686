package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/certs"
)

// Ports every node uses on its own address: each container has its own
// IP on the run's network, so they need not differ.
const (
	apiPort    = 7070
	gossipPort = 7946
)

// Config is a cluster of kvd containers.
type Config struct {
	// Run names the run; every resource carries it (labels).
	Run string
	// Image is the kvd image to run (BuildImage).
	Image string
	// Nodes is how many nodes; 3 or 5.
	Nodes int
	// Dir holds the nodes' data dirs, their control files and their logs.
	Dir string
	// Env is added to every node's environment: KVD_TEST_CANARY for the
	// canary image, for instance.
	Env []string
	// Args are added to every node's kvd flags.
	Args []string
	// Logf reports what the cluster does (t.Logf).
	Logf func(format string, args ...any)
}

// Cluster is a running cluster of kvd containers on a network of its own,
// each node with its own IP. The test process reaches them directly: on
// Linux the host is on every bridge network it makes.
type Cluster struct {
	cfg     Config
	network string
	subnet  string // "10.213.x", the first three octets
	secret  string // the cluster secret file, mounted in every node
	Nodes   []*Node
	// wipeVictim is the node the wipe nemesis wipes, again and again.
	wipeVictim *Node

	mu struct {
		sync.Mutex
		// cut holds the one-way cuts in force: {from, to} drops
		// what node from sends to node to. A node started later gets
		// them too.
		cut map[[2]int]bool
	}
}

// Node is one kvd of the cluster.
type Node struct {
	Index int    // 0-based
	Name  string // n1, n2, ...
	IP    string
	// Starts counts the containers started for the node, which are named
	// after it and the count.
	Starts    int
	container string // the current one, "" when down
	paused    bool
	dataDir   string // on the host, mounted at /data
	ctlDir    string // on the host, mounted at /ctl: the failpoints file
}

// Addr is the node's API address.
func (n *Node) Addr() string { return fmt.Sprintf("%s:%d", n.IP, apiPort) }

// Gossip is the node's gossip address.
func (n *Node) Gossip() string { return fmt.Sprintf("%s:%d", n.IP, gossipPort) }

// Up reports whether the node's container runs (paused or not).
func (n *Node) Up() bool { return n.container != "" }

// Paused reports whether the node is paused.
func (n *Node) Paused() bool { return n.paused }

// StartCluster creates the run's network and starts cfg.Nodes nodes: the
// first founds the cluster, the others join it. It returns once every
// node is ready (/readyz).
func StartCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	c := &Cluster{cfg: cfg}
	c.mu.cut = map[[2]int]bool{}
	if err := c.createNetwork(ctx); err != nil {
		return nil, err
	}
	c.secret = filepath.Join(cfg.Dir, "cluster-secret")
	// The nodes listen off loopback without TLS (--insecure), which kvd
	// allows only with a cluster secret.
	if err := certs.CreateClusterSecret(c.secret, certs.Options{}); err != nil {
		return nil, err
	}
	for i := range cfg.Nodes {
		n := &Node{Index: i, Name: fmt.Sprintf("n%d", i+1), IP: fmt.Sprintf("%s.%d", c.subnet, 11+i),
			dataDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1), "data"), ctlDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1), "ctl")}
		for _, d := range []string{n.dataDir, n.ctlDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(n.ctlDir, "failpoints"), nil, 0o644); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := c.Start(ctx, n); err != nil {
			return nil, err
		}
		if err := c.WaitReady(ctx, n, time.Minute); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// createNetwork makes a bridge network on a /24 of 10.213.0.0/16 that no
// other network uses, so that every node can keep its IP across restarts.
func (c *Cluster) createNetwork(ctx context.Context) error {
	c.network = "qkv-faults-" + c.cfg.Run
	var last error
	for _, x := range rand.Perm(250) {
		subnet := fmt.Sprintf("10.213.%d", x+1)
		args := append([]string{"network", "create", "--driver", "bridge", "--subnet", subnet + ".0/24"}, labels(c.cfg.Run)...)
		_, err := docker(ctx, append(args, c.network)...)
		if err == nil {
			c.subnet = subnet
			return nil
		}
		last = err
		if !strings.Contains(err.Error(), "overlap") {
			return err
		}
	}
	return fmt.Errorf("no free /24 in 10.213.0.0/16 for the run's network: %w", last)
}

// Start starts a container for n, which must be down. The first start of
// the first node founds the cluster; every other start joins through the
// other nodes' gossip addresses, so that a wiped node can never found a
// cluster of its own.
func (c *Cluster) Start(ctx context.Context, n *Node) error {
	if n.Up() {
		return fmt.Errorf("faults: %s is already up", n.Name)
	}
	n.Starts++
	name := fmt.Sprintf("qkv-faults-%s-%s-%d", c.cfg.Run, n.Name, n.Starts)
	args := append([]string{"run", "-d", "--name", name, "--hostname", n.Name, "--network", c.network, "--ip", n.IP,
		"-v", n.dataDir + ":/data", "-v", n.ctlDir + ":/ctl", "-v", c.secret + ":/cluster-secret:ro",
		"-e", "KVD_TEST_FAILPOINTS=/ctl/failpoints"}, labels(c.cfg.Run)...)
	for _, e := range c.cfg.Env {
		args = append(args, "-e", e)
	}
	args = append(args, c.cfg.Image,
		"--node-id", n.Name, "--data-dir", "/data", "--zone", "z"+strconv.Itoa(n.Index+1),
		"--listen", n.Addr(), "--gossip", n.Gossip(), "--insecure", "--cluster-secret-file", "/cluster-secret")
	if !(n.Index == 0 && n.Starts == 1) {
		var seeds []string
		for _, o := range c.Nodes {
			if o != n {
				seeds = append(seeds, o.Gossip())
			}
		}
		args = append(args, "--join", strings.Join(seeds, ","))
	}
	args = append(args, c.cfg.Args...)
	if _, err := docker(ctx, args...); err != nil {
		return err
	}
	n.container = name
	c.logf("started %s (%s, start %d)", n.Name, n.IP, n.Starts)
	return c.applyCuts(ctx, n)
}

// WaitReady waits until n answers /readyz with 200.
func (c *Cluster) WaitReady(ctx context.Context, n *Node, within time.Duration) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get("http://" + n.Addr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: %s not ready after %v (last: %v)\n%s", n.Name, within, err, c.tail(n, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kill kills n's process with SIGKILL (no drain, no goodbye) and removes
// its container, keeping its data dir and its log.
func (c *Cluster) Kill(ctx context.Context, n *Node) error {
	if !n.Up() {
		return fmt.Errorf("faults: %s is down already", n.Name)
	}
	if n.paused {
		if err := c.Unpause(ctx, n); err != nil {
			return err
		}
	}
	if _, err := docker(ctx, "kill", "-s", "KILL", n.container); err != nil && !strings.Contains(err.Error(), "is not running") {
		return err
	}
	return c.remove(ctx, n)
}

// remove saves the log of n's container and removes it.
func (c *Cluster) remove(ctx context.Context, n *Node) error {
	c.saveLog(ctx, n)
	if _, err := docker(ctx, "rm", "-f", "-v", n.container); err != nil {
		return err
	}
	c.logf("removed %s's container %s", n.Name, n.container)
	n.container = ""
	return nil
}

// Wipe deletes n's data dir, which must be down: the disk is lost.
func (c *Cluster) Wipe(n *Node) error {
	if n.Up() {
		return fmt.Errorf("faults: wiping %s while it runs", n.Name)
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return err
	}
	c.logf("wiped %s's data dir", n.Name)
	return os.MkdirAll(n.dataDir, 0o755)
}

// Pause freezes every process of n (docker pause: the cgroup freezer).
// Its connections stay open and nothing answers, as when a partition
// cuts it off, a GC pause or a VM migration stops it.
func (c *Cluster) Pause(ctx context.Context, n *Node) error {
	if _, err := docker(ctx, "pause", n.container); err != nil {
		return err
	}
	n.paused = true
	c.logf("paused %s", n.Name)
	return nil
}

// Unpause thaws n.
func (c *Cluster) Unpause(ctx context.Context, n *Node) error {
	if _, err := docker(ctx, "unpause", n.container); err != nil {
		return err
	}
	n.paused = false
	c.logf("unpaused %s", n.Name)
	return nil
}

// SetFailpoints replaces n's failpoints file (cmd/kvd/failpoints_on.go
// reads it): one "name=value" per line, "" for none. The file is
// replaced by a rename, so the node never reads half of it.
func (c *Cluster) SetFailpoints(n *Node, text string) error {
	tmp := filepath.Join(n.ctlDir, ".failpoints.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(n.ctlDir, "failpoints")); err != nil {
		return err
	}
	c.logf("%s's failpoints: %q", n.Name, text)
	return nil
}

// Cut drops every packet node from sends to node to, from now on
// (iptables in to's network namespace). Cut both ways for a partition.
func (c *Cluster) Cut(ctx context.Context, from, to *Node) error {
	c.mu.Lock()
	c.mu.cut[[2]int{from.Index, to.Index}] = true
	c.mu.Unlock()
	if !to.Up() {
		return nil // applied when it starts
	}
	return c.iptables(ctx, to, "-A", "INPUT", "-s", from.IP, "-j", "DROP")
}

// Heal removes every cut.
func (c *Cluster) Heal(ctx context.Context) error {
	c.mu.Lock()
	clear(c.mu.cut)
	c.mu.Unlock()
	var errs []error
	for _, n := range c.Nodes {
		if n.Up() {
			errs = append(errs, c.iptables(ctx, n, "-F", "INPUT"))
		}
	}
	return errors.Join(errs...)
}

// Cuts lists the cuts in force as "from->to" names, sorted.
func (c *Cluster) Cuts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.mu.cut {
		out = append(out, c.Nodes[k[0]].Name+"->"+c.Nodes[k[1]].Name)
	}
	slices.Sort(out)
	return out
}

// applyCuts installs the cuts into n that are in force, for a node that
// has just started (a new container has a new network namespace).
func (c *Cluster) applyCuts(ctx context.Context, n *Node) error {
	c.mu.Lock()
	var from []*Node
	for k := range c.mu.cut {
		if k[1] == n.Index {
			from = append(from, c.Nodes[k[0]])
		}
	}
	c.mu.Unlock()
	for _, f := range from {
		if err := c.iptables(ctx, n, "-A", "INPUT", "-s", f.IP, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// iptables runs the host's iptables in n's network namespace: the image
// holds kvd alone.
func (c *Cluster) iptables(ctx context.Context, n *Node, args ...string) error {
	pid, err := docker(ctx, "inspect", "--format", "{{.State.Pid}}", n.container)
	if err != nil {
		return err
	}
	cmd := append([]string{"-t", pid, "-n", "iptables", "-w"}, args...)
	if out, err := execOut(ctx, "nsenter", cmd...); err != nil {
		return fmt.Errorf("iptables %v in %s: %w: %s", args, n.Name, err, out)
	}
	return nil
}

// saveLog appends the log of n's current container to the node's log
// file, so that it outlives the container.
func (c *Cluster) saveLog(ctx context.Context, n *Node) {
	out, err := dockerCombined(ctx, "logs", n.container)
	if err != nil {
		c.logf("reading %s's log: %v", n.Name, err)
	}
	f, err := os.OpenFile(c.LogPath(n), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.logf("saving %s's log: %v", n.Name, err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "==== container %s\n%s\n", n.container, out)
}

// LogPath is where n's logs are kept.
func (c *Cluster) LogPath(n *Node) string {
	return filepath.Join(c.cfg.Dir, n.Name+".log")
}

// Log returns what n's current container has logged.
func (c *Cluster) Log(ctx context.Context, n *Node) string {
	if !n.Up() {
		return ""
	}
	out, _ := dockerCombined(ctx, "logs", n.container)
	return out
}

// tail is the last lines of n's current log, for an error message.
func (c *Cluster) tail(n *Node, lines int) string {
	out, _ := dockerCombined(context.Background(), "logs", "--tail", strconv.Itoa(lines), n.container)
	return out
}

// Close saves every node's log and removes the containers and the
// network. The image is the run's to remove (Cleanup).
func (c *Cluster) Close(ctx context.Context) error {
	var errs []error
	for _, n := range c.Nodes {
		if n.Up() {
			if n.paused {
				errs = append(errs, c.Unpause(ctx, n))
			}
			errs = append(errs, c.remove(ctx, n))
		}
	}
	if _, err := docker(ctx, "network", "rm", c.network); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

// Running reports whether n's container still runs: a node whose disk
// failed may have stopped on its own.
func (c *Cluster) Running(ctx context.Context, n *Node) (bool, error) {
	if !n.Up() {
		return false, nil
	}
	out, err := docker(ctx, "inspect", "--format", "{{.State.Running}}", n.container)
	if err != nil {
		return false, err
	}
	return out == "true", nil
}
