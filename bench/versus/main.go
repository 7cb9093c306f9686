// Command versus benchmarks quorumkv against etcd on this machine, in one
// run: a 3-node quorumkv cluster (kvd processes built from this
// repository) and a 3-member etcd cluster (each member an embedded etcd
// in a process of its own), the same closed-loop workloads through each
// system's own Go client, runs interleaved, and one table of throughput,
// p50/p99 latency and server CPU per operation with the ratios.
//
//	cd bench/versus && go run . [flags]
//
// It is a module of its own so that the main module does not depend on
// etcd. docs/bench.md ("quorumkv versus etcd") says what it measures and
// how, with a run's output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config is the benchmark's settings, one flag each.
type config struct {
	// Clients is the number of closed-loop clients of a run (a
	// one-client workload uses one).
	Clients int
	// Keys is the key space of puts: keys are chosen uniformly among Keys.
	Keys int
	// Preload keys are written to etcd and to the raft and paxos
	// keyspaces before the runs; gets choose among them, so that every
	// get finds its key.
	Preload int
	// ValueBytes is the size of a put's value.
	ValueBytes int
	// Duration is the length of one run.
	Duration time.Duration
	// Rounds is how many times the whole sequence of runs is repeated.
	Rounds int
	// Workloads names the workloads, comma separated, or "all".
	Workloads string
	// Output is "table" or "json".
	Output string
	// JSONFile, if set, also gets the JSON report, whatever Output is.
	JSONFile string
	// RequestTimeout bounds one request, retries included.
	RequestTimeout time.Duration
	// MaxTime bounds the whole benchmark; 0 means an estimate from the
	// other settings with room to spare (maxTime).
	MaxTime time.Duration
	// Idle is how long both clusters are watched idle, before the runs,
	// for their background CPU; 0 skips it.
	Idle time.Duration
	// Pause is the wait between two runs.
	Pause time.Duration
	// ForeignLimit is the CPU, in percent of one core, that processes
	// outside the benchmark may take during a run before the run is
	// repeated (the machine is shared: a build or a test run elsewhere
	// takes cores from both systems, unevenly).
	ForeignLimit float64
	// Retries bounds the repeated runs of a whole benchmark; a run still
	// disturbed once they are spent is kept, and the table shows it.
	Retries int
	// Root is the quorumkv repository whose cmd/kvd is built.
	Root string
	// KVDFlags are extra flags for every kvd node (e.g. --enable-pprof).
	KVDFlags []string
	// Seed makes the key choices and values.
	Seed uint64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var kvdFlags string
	fs := flag.NewFlagSet("versus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Clients, "clients", 100, "closed-loop clients per run")
	fs.IntVar(&c.Keys, "keys", 100_000, "key space of puts")
	fs.IntVar(&c.Preload, "preload", 10_000, "keys written before the runs; gets read among them")
	fs.IntVar(&c.ValueBytes, "value-size", 256, "bytes per value")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of one run")
	fs.IntVar(&c.Rounds, "rounds", 2, "rounds of runs, interleaved")
	fs.StringVar(&c.Workloads, "workloads", "all", "comma-separated workloads: "+workloadNames())
	fs.StringVar(&c.Output, "o", "table", "output: table or json")
	fs.StringVar(&c.JSONFile, "json-file", "", "also write the JSON report to this file")
	fs.DurationVar(&c.RequestTimeout, "timeout", 5*time.Second, "bound on one request")
	fs.DurationVar(&c.MaxTime, "max-time", 0, "bound on the whole benchmark (0: estimated from the settings)")
	fs.DurationVar(&c.Idle, "idle", 3*time.Second, "how long to measure both clusters idle before the runs (0: skip)")
	fs.DurationVar(&c.Pause, "pause", 500*time.Millisecond, "wait between two runs")
	fs.Float64Var(&c.ForeignLimit, "foreign-limit", 20, "a run during which other processes took more than this % of a core is run again")
	fs.IntVar(&c.Retries, "retries", 4, "runs repeated at most, per benchmark, for -foreign-limit")
	fs.StringVar(&c.Root, "root", "../..", "the quorumkv repository, whose cmd/kvd is built")
	fs.StringVar(&kvdFlags, "kvd-flags", "", "extra flags for every kvd node, space separated")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the key choices and values")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.KVDFlags = strings.Fields(kvdFlags)
	return c, c.validate()
}

func (c config) validate() error {
	switch {
	case c.Clients < 1:
		return errors.New("-clients must be at least 1")
	case c.Keys < 1:
		return errors.New("-keys must be at least 1")
	case c.Preload < 1 || c.Preload > c.Keys:
		return fmt.Errorf("-preload must be between 1 and -keys (%d)", c.Keys)
	case c.ValueBytes < 1:
		return errors.New("-value-size must be at least 1")
	case c.Duration <= 0:
		return errors.New("-duration must be positive")
	case c.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case c.RequestTimeout <= 0:
		return errors.New("-timeout must be positive")
	case c.ForeignLimit < 0 || c.Retries < 0:
		return errors.New("-foreign-limit and -retries must not be negative")
	case c.Output != "table" && c.Output != "json":
		return fmt.Errorf("-o %q: want table or json", c.Output)
	}
	_, err := selectWorkloads(c.Workloads)
	return err
}

// maxTime is the bound on the whole benchmark: setupTime for building
// and starting, the idle window, and per run its duration, the last
// requests' timeout, the pause and some slack for reading the results.
func (c config) maxTime(runs int) time.Duration {
	if c.MaxTime > 0 {
		return c.MaxTime
	}
	perRun := c.Duration + c.RequestTimeout + c.Pause + 5*time.Second
	return setupTime + c.Idle + time.Duration(runs)*perRun + time.Duration(c.Retries)*(perRun+quietWait)
}

const (
	// setupTime allows for building kvd (a minute or so with a cold
	// build cache on 2 cores), starting both clusters and preloading.
	setupTime = 5 * time.Minute
	// startTimeout bounds the wait for one node or cluster to be ready.
	startTimeout = 30 * time.Second
	// quietWait bounds the wait for the machine to be quiet before a run
	// is repeated; the run goes ahead after it either way.
	quietWait = 30 * time.Second
)

var selfPID = os.Getpid()

func main() {
	if len(os.Args) > 1 && os.Args[1] == memberCommand {
		os.Exit(runMember(os.Args[2:]))
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain returns the exit code, after every deferred cleanup has run.
func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "versus:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = run(ctx, cfg, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "versus: interrupted; the processes it started are ended")
	default:
		fmt.Fprintln(stderr, "versus:", err)
	}
	return 1
}

// run starts both clusters, runs the rounds and prints the report. Every
// process it starts is killed, by PID, and its temporary directory
// removed before it returns, whatever happened.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	workloads := mustWorkloads(cfg)
	plan := planRounds(workloads, cfg.Rounds)
	limit := cfg.maxTime(len(plan))
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	defer func() {
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %v (-max-time): %w", limit, err)
		}
	}()
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "versus: "+format+"\n", a...) }

	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "versus-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	procs := &procSet{}
	defer procs.killAll() // before the directory is removed: deferred calls run last first

	progress("building kvd from %s", root)
	kvd, err := buildKVD(ctx, root, tmp)
	if err != nil {
		return err
	}
	progress("starting 3 kvd nodes and 3 etcd members")
	qc, err := startQuorumKV(ctx, procs, kvd, filepath.Join(tmp, "kvd"), cfg.KVDFlags, cfg.Clients, cfg.RequestTimeout)
	if err != nil {
		return err
	}
	ec, err := startEtcd(ctx, procs, filepath.Join(tmp, "etcd"))
	if err != nil {
		return err
	}
	defer ec.client.Close()
	if err := qc.createKeyspaces(ctx); err != nil {
		return err
	}

	rep := newReport(cfg, root, workloads)
	progress("preloading %d keys into etcd and the raft and paxos keyspaces", cfg.Preload)
	if err := preloadAll(ctx, cfg, ec, qc); err != nil {
		return err
	}
	if rep.Leaders, err = leaderCounts(ctx, qc); err != nil {
		return err
	}
	progress("leaders per node: %v", rep.Leaders)
	if cfg.Idle > 0 {
		if rep.Idle, err = measureIdle(ctx, cfg.Idle, ec.pids(), qc.pids()); err != nil {
			return err
		}
	}

	r := &runner{cfg: cfg, ec: ec, qc: qc, rep: rep, progress: progress}
	for i, step := range plan {
		if err := r.runStep(ctx, step, 100*(i+1)/len(plan), cfg.Seed+uint64(i)); err != nil {
			return err
		}
	}
	if after, err := leaderCounts(ctx, qc); err == nil {
		rep.LeadersAfter = after
	}
	rep.finish()
	if cfg.JSONFile != "" {
		if err := rep.writeJSONFile(cfg.JSONFile); err != nil {
			return err
		}
	}
	if cfg.Output == "json" {
		return rep.writeJSON(stdout)
	}
	return rep.writeTable(stdout)
}

// mustWorkloads is selectWorkloads of a validated config.
func mustWorkloads(cfg config) []workload {
	w, err := selectWorkloads(cfg.Workloads)
	if err != nil {
		panic(err) // validate accepted the list
	}
	return w
}

// runner runs the steps of a plan and adds their results to rep.
type runner struct {
	cfg      config
	ec       *etcdCluster
	qc       *qkvCluster
	rep      *report
	progress func(format string, a ...any)
	retries  int // spent so far, of cfg.Retries
}

// runStep runs one step, after cfg.Pause. A run during which other
// processes took more than cfg.ForeignLimit is run again once the
// machine is quiet, while retries are left; the last run is kept.
func (r *runner) runStep(ctx context.Context, s step, donePercent int, seed uint64) error {
	if err := sleep(ctx, r.cfg.Pause); err != nil {
		return err
	}
	l := load{clients: r.cfg.Clients, duration: r.cfg.Duration, keys: r.cfg.Keys, put: s.put,
		valueBytes: r.cfg.ValueBytes, timeout: r.cfg.RequestTimeout, seed: seed}
	if s.single {
		l.clients = 1
	}
	if !s.put {
		l.keys = r.cfg.Preload // gets read preloaded keys
	}
	alive := r.qc.alive
	if s.etcd {
		l.op, l.pids, l.otherPIDs, alive = s.baseline.op(r.ec), r.ec.pids(), r.qc.pids(), r.ec.alive
	} else {
		l.op, l.pids, l.otherPIDs = s.workload.qkv(r.qc), r.qc.pids(), r.ec.pids()
	}
	for {
		res, err := l.run(ctx)
		if err != nil {
			return err
		}
		if err := alive(); err != nil {
			return err
		}
		foreign := percentOfCore(res.CPU.Foreign, res.Elapsed)
		r.progress("round %d/%d %3d%%  %-8s %-18s %6.0f ops/s  p50 %6.2f ms  server CPU %4.0f µs/op  foreign CPU %3.0f%%  errors %d",
			s.round+1, r.cfg.Rounds, donePercent, s.system(), s.name(),
			res.OpsPerSec(), float64(res.hist.ValueAtQuantile(50))/1000, perOp(res.CPU.Server, res.Ops), foreign, res.Errors)
		if foreign <= r.cfg.ForeignLimit || r.retries >= r.cfg.Retries {
			r.rep.add(s, res)
			return nil
		}
		// Another process took a good part of the machine: the run says
		// little about either system.
		r.retries++
		r.rep.Retries++
		r.progress("other processes took %.0f%% of a core (over -foreign-limit %.0f%%): waiting for quiet to run it again (%d of -retries %d)",
			foreign, r.cfg.ForeignLimit, r.retries, r.cfg.Retries)
		if err := waitQuiet(ctx, r.cfg.ForeignLimit, r.ec.pids(), r.qc.pids()); err != nil {
			return err
		}
	}
}

// step is one run of a round: an etcd baseline or a quorumkv workload.
type step struct {
	round    int
	etcd     bool
	baseline baseline
	workload workload
	put      bool
	single   bool
}

func (s step) system() string {
	if s.etcd {
		return "etcd"
	}
	return "quorumkv"
}

func (s step) name() string {
	if s.etcd {
		name := s.baseline.name
		if s.single {
			name += ", 1 client"
		}
		return name
	}
	return s.workload.name
}

func (s step) key() string {
	if s.etcd {
		return s.workload.baselineKey()
	}
	return s.workload.name
}

// planRounds lists the runs: per round, each workload's quorumkv run,
// preceded by its etcd baseline where that baseline has not run yet in
// the round (etcd put, then the quorumkv puts; etcd get, then the
// quorumkv gets ...).
func planRounds(workloads []workload, rounds int) []step {
	var plan []step
	for r := range rounds {
		done := map[string]bool{}
		for _, w := range workloads {
			if k := w.baselineKey(); !done[k] {
				done[k] = true
				plan = append(plan, step{round: r, etcd: true, baseline: w.baseline, workload: w, put: w.put, single: w.single})
			}
			plan = append(plan, step{round: r, workload: w, put: w.put, single: w.single})
		}
	}
	return plan
}

// leaderCounts is, per raft and paxos keyspace, how many ranges each node
// leads.
func leaderCounts(ctx context.Context, qc *qkvCluster) (map[string]string, error) {
	out := map[string]string{}
	for _, ks := range []string{ksRaft, ksPaxos} {
		l, err := qc.leaders(ctx, ks)
		if err != nil {
			return nil, fmt.Errorf("ranges of %s: %w", ks, err)
		}
		out[ks] = l
	}
	return out, nil
}

// measureIdle watches both clusters, doing nothing, for d.
func measureIdle(ctx context.Context, d time.Duration, etcdPIDs, qkvPIDs []int) (idle, error) {
	before, err := sampleCPU(etcdPIDs, qkvPIDs)
	if err != nil {
		return idle{}, err
	}
	begin := time.Now()
	if err := sleep(ctx, d); err != nil {
		return idle{}, err
	}
	after, err := sampleCPU(etcdPIDs, qkvPIDs)
	if err != nil {
		return idle{}, err
	}
	wall := time.Since(begin)
	u := before.until(after)
	return idle{Window: wall, EtcdPercent: percentOfCore(u.Server, wall), QuorumKVPercent: percentOfCore(u.IdleSystem, wall),
		ForeignPercent: percentOfCore(u.Foreign, wall)}, nil
}

// percentOfCore is CPU time d over wall time, in percent of one core.
func percentOfCore(d, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * d.Seconds() / wall.Seconds()
}

// waitQuiet waits until processes outside the benchmark take at most
// limit percent of a core over a second, or quietWait has passed.
func waitQuiet(ctx context.Context, limit float64, etcdPIDs, qkvPIDs []int) error {
	deadline := time.Now().Add(quietWait)
	for time.Now().Before(deadline) {
		idle, err := measureIdle(ctx, time.Second, etcdPIDs, qkvPIDs)
		if err != nil {
			return err
		}
		if idle.ForeignPercent <= limit {
			return nil
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
