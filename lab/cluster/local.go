package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/lab"
)

// LocalOptions configures StartLocal.
type LocalOptions struct {
	// KVD is the kvd binary. Default: kvd next to the running executable,
	// or else kvd in PATH.
	KVD string
	// Nodes is how many kvd processes to start, named n1, n2, ...
	// Default 3, at most 24.
	Nodes int
	// Zones, if set, is each node's --zone, one per node. Default: each
	// node its own zone, z1, z2, ...
	Zones []string
	// Weights, if set, is each node's --weight (its votes in weighted
	// geometries), one per node. Default 1 each.
	Weights []int
	// Ready bounds how long StartLocal waits for the cluster to form and
	// take writes. Default 60 s.
	Ready time.Duration
	// Logf reports progress; nil is quiet.
	Logf func(format string, args ...any)
}

// Validate checks the options' rules across fields.
func (o LocalOptions) Validate() error {
	n := cmp.Or(o.Nodes, defaultNodes)
	switch {
	case n < 1 || n > maxNodes:
		return fmt.Errorf("lab/cluster: %d nodes: want 1 to %d", o.Nodes, maxNodes)
	case len(o.Zones) > 0 && len(o.Zones) != n:
		return fmt.Errorf("lab/cluster: %d zones for %d nodes: want one per node", len(o.Zones), n)
	case len(o.Weights) > 0 && len(o.Weights) != n:
		return fmt.Errorf("lab/cluster: %d weights for %d nodes: want one per node", len(o.Weights), n)
	}
	return nil
}

// defaultNodes is the smallest cluster that survives a failure, and
// maxNodes the most replicas a range may have (catalog.MaxReplicas): a
// local cluster larger than that is of no use to the lab.
const (
	defaultNodes = 3
	maxNodes     = 24
)

// ensureDefaults fills zero fields, each default's reason on its field.
func (o *LocalOptions) ensureDefaults() error {
	o.Nodes = cmp.Or(o.Nodes, defaultNodes)
	if o.Ready == 0 {
		o.Ready = 60 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	for i := len(o.Zones); i < o.Nodes; i++ {
		o.Zones = append(o.Zones, fmt.Sprintf("z%d", i+1))
	}
	for i := len(o.Weights); i < o.Nodes; i++ {
		o.Weights = append(o.Weights, 1)
	}
	if o.KVD != "" {
		return nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "kvd"); isExecutable(p) {
			o.KVD = p
			return nil
		}
	}
	p, err := exec.LookPath("kvd")
	if err != nil {
		return fmt.Errorf("lab/cluster: no kvd next to this program nor in PATH: %w", err)
	}
	o.KVD = p
	return nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Local is a cluster of kvd processes on loopback that this program
// started, in a temporary directory. Its Nemesis hurts only those
// processes; Stop ends them and removes the directory.
type Local struct {
	opts  LocalOptions
	dir   string
	nodes []*proc
}

// proc is one kvd process of a Local cluster, and how to start it again.
type proc struct {
	name, zone   string
	weight       int
	dataDir, log string
	addr, gossip string
	mu           struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{} // closed once cmd has exited
	}
}

// StartLocal starts opts.Nodes kvd processes on free loopback ports in a
// new temporary directory: n1 founds the cluster, the others join it. It
// returns once every node is ready, every node is a live member, a
// keyspace can be placed on all of them, and the default keyspace takes a
// write. On error it stops whatever it started.
func StartLocal(ctx context.Context, opts LocalOptions) (*Local, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "quorumkv-lab-")
	if err != nil {
		return nil, fmt.Errorf("lab/cluster: %w", err)
	}
	l := &Local{opts: opts, dir: dir}
	for i := range opts.Nodes {
		name := fmt.Sprintf("n%d", i+1)
		l.nodes = append(l.nodes, &proc{
			name: name, zone: opts.Zones[i], weight: opts.Weights[i],
			dataDir: filepath.Join(dir, name), log: filepath.Join(dir, name+".log"),
		})
	}
	if err := l.start(ctx); err != nil {
		return nil, errors.Join(err, l.Stop())
	}
	return l, nil
}

// start starts n1, then the others together, and waits for the cluster.
func (l *Local) start(ctx context.Context) error {
	deadline := time.Now().Add(l.opts.Ready)
	if err := l.startFresh(ctx, l.nodes[0], nil, deadline); err != nil {
		return err
	}
	errs := make([]error, len(l.nodes))
	var wg sync.WaitGroup
	for i, p := range l.nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.startFresh(ctx, p, []string{l.nodes[0].gossip}, deadline)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	l.opts.Logf("started %d kvd processes in %s", len(l.nodes), l.dir)
	return l.waitCluster(ctx, deadline)
}

// startFresh starts a new node on free addresses and waits until it is
// ready. A free port is free when it is looked at, not when kvd binds
// it: a node that exits because an address was taken meanwhile is
// started again on new ones, three times at most.
func (l *Local) startFresh(ctx context.Context, p *proc, join []string, deadline time.Time) error {
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		gossip, err := freeAddr()
		if err != nil {
			return err
		}
		p.addr, p.gossip = addr, gossip
		if err := l.launch(p, join); err != nil {
			return err
		}
		err = p.waitReady(ctx, deadline)
		if err == nil {
			return nil
		}
		if attempt == 3 || !p.lostBind() {
			return err
		}
		if err := os.RemoveAll(p.dataDir); err != nil {
			return fmt.Errorf("lab/cluster: %w", err)
		}
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("lab/cluster: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// launch starts p's process and returns at once. Its output goes to its
// log file, appended across restarts.
func (l *Local) launch(p *proc, join []string) error {
	args := []string{
		"--node-id", p.name, "--data-dir", p.dataDir, "--listen", p.addr, "--gossip", p.gossip,
		"--zone", p.zone, "--weight", strconv.Itoa(p.weight), "--log-level", "warn",
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("lab/cluster: %w", err)
	}
	cmd := exec.Command(l.opts.KVD, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("lab/cluster: start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() // the exit status says nothing the log does not
		out.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.mu.cmd, p.mu.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// running returns p's process and its exit channel, or nil if it has
// exited.
func (p *proc) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.cmd == nil {
		return nil, nil
	}
	select {
	case <-p.mu.exited:
		return nil, nil
	default:
		return p.mu.cmd, p.mu.exited
	}
}

// waitReady polls p's /readyz until it answers 200, p exits, or deadline.
func (p *proc) waitReady(ctx context.Context, deadline time.Time) error {
	hc := &http.Client{Timeout: time.Second} // a paused or half-started node may never answer
	for {
		if cmd, _ := p.running(); cmd == nil {
			return fmt.Errorf("lab/cluster: %s exited before it was ready; its log ends:\n%s", p.name, p.tail())
		}
		resp, err := hc.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab/cluster: %s at %s not ready in time; its log ends:\n%s", p.name, p.addr, p.tail())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// lostBind says whether p exited because an address it was given was
// taken.
func (p *proc) lostBind() bool {
	cmd, _ := p.running()
	return cmd == nil && strings.Contains(p.tail(), "address already in use")
}

// tail returns the last few KiB of p's log.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// waitCluster waits until every node is a live member, a keyspace with a
// replica on each can be created (the catalog knows them all), and the
// default keyspace takes a write.
func (l *Local) waitCluster(ctx context.Context, deadline time.Time) error {
	cl, err := client.New(client.Config{Endpoints: l.Endpoints(), Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	probe := keyspaceName("probe")
	steps := []struct {
		what string
		do   func(ctx context.Context) error
	}{
		{"every node a live member", func(ctx context.Context) error {
			live, err := members(ctx, cl)
			if err == nil && len(live) < len(l.nodes) {
				err = fmt.Errorf("%d of %d nodes are live members", len(live), len(l.nodes))
			}
			return err
		}},
		{"a keyspace placed on every node", func(ctx context.Context) error {
			ks := &v1.Keyspace{Name: probe, Mode: v1.Mode_MODE_RAFT, Replicas: uint32(len(l.nodes)), Ranges: 1}
			_, err := cl.CreateKeyspace(ctx, ks)
			if err == nil {
				err = cl.DropKeyspace(ctx, probe)
			}
			return err
		}},
		{"the default keyspace to take a write", func(ctx context.Context) error {
			_, err := cl.Put(ctx, "default", []byte(probe), []byte("x"), client.Quorum{})
			if err == nil {
				_, err = cl.Delete(ctx, "default", []byte(probe), client.Quorum{})
			}
			return err
		}},
	}
	for _, step := range steps {
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := step.do(sctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("lab/cluster: timed out waiting for %s: %w", step.what, err)
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// Endpoints returns the nodes' client addresses, n1 first.
func (l *Local) Endpoints() []string {
	out := make([]string, len(l.nodes))
	for i, p := range l.nodes {
		out[i] = p.addr
	}
	return out
}

// Dir is the temporary directory holding the nodes' data dirs and logs
// (NAME.log).
func (l *Local) Dir() string { return l.dir }

// Nemesis returns a nemesis over the processes l started.
func (l *Local) Nemesis() lab.Nemesis { return localNemesis{l} }

// Stop kills every process l started that still runs and removes its
// directory.
func (l *Local) Stop() error {
	for _, p := range l.nodes {
		p.kill()
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("lab/cluster: %w", err)
	}
	return nil
}

// kill kills p's process if it runs (SIGKILL on unix, which ends a
// stopped process too), waits for it to exit, and reports whether it
// ran.
func (p *proc) kill() bool {
	cmd, exited := p.running()
	if cmd == nil {
		return false
	}
	cmd.Process.Kill() // it may exit on its own meanwhile: exited tells
	<-exited
	return true
}

// localNemesis is a Local's lab.Nemesis.
type localNemesis struct{ l *Local }

func (n localNemesis) Nodes() []string {
	out := make([]string, len(n.l.nodes))
	for i, p := range n.l.nodes {
		out[i] = p.name
	}
	return out
}

func (n localNemesis) node(name string) (*proc, error) {
	for _, p := range n.l.nodes {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("lab/cluster: no node %q in this cluster", name)
}

// Kill ends the node's process at once (SIGKILL) and waits for its exit.
func (n localNemesis) Kill(name string) error {
	p, err := n.node(name)
	if err != nil {
		return err
	}
	if !p.kill() {
		return fmt.Errorf("lab/cluster: %s is not running", name)
	}
	return nil
}

// Restart starts a killed node again with its data dir, addresses and
// flags, joining through the other nodes' gossip addresses, and returns
// once it is ready (30 s at most).
func (n localNemesis) Restart(name string) error {
	p, err := n.node(name)
	if err != nil {
		return err
	}
	if cmd, _ := p.running(); cmd != nil {
		return fmt.Errorf("lab/cluster: %s is running", name)
	}
	var join []string
	for _, o := range n.l.nodes {
		if o != p {
			join = append(join, o.gossip)
		}
	}
	if err := n.l.launch(p, join); err != nil {
		return err
	}
	return p.waitReady(context.Background(), time.Now().Add(30*time.Second))
}

// Pause freezes the node's process (SIGSTOP).
func (n localNemesis) Pause(name string) error { return n.signal(name, sigStop, "SIGSTOP") }

// Resume thaws the node's process (SIGCONT).
func (n localNemesis) Resume(name string) error { return n.signal(name, sigCont, "SIGCONT") }

func (n localNemesis) signal(name string, sig os.Signal, sigName string) error {
	p, err := n.node(name)
	if err != nil {
		return err
	}
	if sig == nil {
		return fmt.Errorf("lab/cluster: this system has no %s to pause or resume %s with", sigName, name)
	}
	cmd, _ := p.running()
	if cmd == nil {
		return fmt.Errorf("lab/cluster: %s is not running", name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("lab/cluster: %s %s: %w", sigName, name, err)
	}
	return nil
}
