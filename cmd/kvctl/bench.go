package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/bench"
	"github.com/quorumkv/quorumkv/client"
)

// sweepOnly are the flags that mean something only with --sweep.
var sweepOnly = []string{"replicas", "ranges", "wr", "keep"}

func benchCommand() *cli.Command {
	return withGlobals(&cli.Command{
		Name:  "bench",
		Usage: "load a keyspace and measure it; --sweep compares raft, paxos and eventual W/R settings",
		Description: `Closed-loop clients (--clients) each send a request, wait for its answer,
and send the next, for --duration, spreading requests over --endpoints.
With --rate the load is open-loop instead: requests are due at fixed
times, N a second, sent by at most --clients at once, and each request's
latency counts from its due time, so that a cluster that stalls is
charged for every request due during the stall. --rates runs once per
rate, and --chart draws throughput against p99 latency, a line per
setting.

Every key is written once first. It prints throughput, latency percentiles
of reads and writes, failed requests, and stale reads measured two ways:
STALE counts reads that missed a write acknowledged before they were sent
(never expected in raft or paxos keyspaces, nor in eventual ones with
W+R>N); SERVER-STALE is the eventual keyspace's own counter, which also
counts writes still in flight. See docs/bench.md.

Without --sweep it loads the existing keyspace --keyspace, writing keys
under bench/. With --sweep it creates bench-raft-*, bench-paxos-* and
bench-ev-* keyspaces of --replicas, runs the workload on each (on the
eventual one once per --wr pair) and drops them at the end, also on error
or Ctrl-C, unless --keep.

The load runs in this process: on the machine that runs the nodes it
shares their cores, and the numbers are those of the pair. On a terminal
a progress line on stderr shows the run as it goes.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Usage: "how long each run loads the keyspace", Value: bench.DefaultDuration},
			&cli.IntFlag{Name: "ops", Usage: "stop a run after this many requests, if before --duration (0: no bound)"},
			&cli.IntFlag{Name: "clients", Usage: "concurrent clients, each with one request in flight (with --rate: the most requests in flight)", Value: bench.DefaultClients},
			&cli.Float64Flag{Name: "rate", Usage: "open loop: requests per second over all clients, latency counted from each one's due time (0: closed loop)"},
			&cli.StringFlag{Name: "rates", Usage: "open loop at each of these rates in turn, comma-separated (e.g. 1000,2000,4000): a run per rate and setting"},
			&cli.StringFlag{Name: "chart", Usage: "write an SVG chart of throughput vs p99 latency to this file, a line per setting (with --rates)"},
			&cli.IntFlag{Name: "keys", Usage: "distinct keys, chosen uniformly", Value: bench.DefaultKeys},
			&cli.IntFlag{Name: "value-size", Usage: "bytes per written value", Value: bench.DefaultValueSize},
			&cli.Float64Flag{Name: "reads", Usage: "fraction of requests that are reads (the rest are puts)", Value: 0.5},
			&cli.Float64Flag{Name: "cas", Usage: "fraction of requests that are compare-and-swaps, taken from the puts"},
			&cli.StringFlag{Name: "w", Usage: "eventual keyspaces: replicas each put waits for: N, one, quorum or all (default: the keyspace's)"},
			&cli.StringFlag{Name: "r", Usage: "eventual keyspaces: replicas each get waits for: N, one, quorum or all (default: the keyspace's)"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the key and request choices", Value: 1},
			&cli.BoolFlag{Name: "sweep", Usage: "create raft, paxos and eventual keyspaces and compare them"},
			&cli.IntFlag{Name: "replicas", Usage: "--sweep: replicas of each keyspace (N)", Value: 3},
			&cli.IntFlag{Name: "ranges", Usage: "--sweep: ranges of each keyspace", Value: 8},
			&cli.StringFlag{Name: "wr", Usage: "--sweep: the eventual W,R pairs, colon-separated (default 1,1:M,M:1,N with M=N/2+1)"},
			&cli.BoolFlag{Name: "keep", Usage: "--sweep: keep the keyspaces instead of dropping them"},
		},
		Action: benchAction,
	})
}

func benchAction(c *cli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	out, err := outputFormat(c)
	if err != nil {
		return err
	}
	w, err := benchWorkload(c)
	if err != nil {
		return err
	}
	rates, err := benchRates(c)
	if err != nil {
		return err
	}
	chart := c.String("chart")
	if err := checkChartPath(chart); err != nil {
		return err
	}
	progress := newProgressLine(c, out)
	if progress != nil {
		w.Progress = progress.show
	}
	say := func(format string, args ...any) {
		progress.clear()
		fmt.Fprintf(c.App.ErrWriter, "kvctl bench: "+format+"\n", args...)
	}
	var sweep bench.Sweep
	if c.Bool("sweep") {
		if sweep, err = benchSweep(c, w, rates, say); err != nil {
			return err
		}
	} else if err := benchSingleFlags(c); err != nil {
		return err
	}

	admin, err := newClient(c)
	if err != nil {
		return err
	}
	kvs, err := bench.Clients(w.MetricsEndpoints, client.Config{Timeout: w.Timeout, TLS: w.TLS,
		User: lookupString(c, "user"), Password: lookupString(c, "password")})
	if err != nil {
		return err
	}
	// Ctrl-C stops the load; a sweep still drops its keyspaces.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []bench.Result
	if c.Bool("sweep") {
		results, err = sweep.Run(ctx, admin, kvs)
	} else {
		results, err = benchSingle(ctx, c, admin, kvs, w, rates, say)
	}
	progress.clear()
	if len(results) > 0 {
		perr := printBench(c, out, results)
		if perr == nil && chart != "" {
			if perr = writeChart(chart, results); perr == nil {
				say("wrote the chart to %s", chart)
			}
		}
		if perr != nil {
			return errors.Join(err, perr)
		}
	}
	return exitFor(knobUsage(err), c.App.ErrWriter)
}

// maxRates bounds --rates: each rate adds a run of --duration per
// setting, so a longer list is a sweep of hours, more likely a mistake.
const maxRates = 64

// benchRates reads --rates, or nil when it is not set (one run at
// --rate).
func benchRates(c *cli.Context) ([]float64, error) {
	if !c.IsSet("rates") {
		return nil, nil
	}
	if c.IsSet("rate") {
		return nil, usagef("--rate and --rates: give one (--rates runs once per rate)")
	}
	s := c.String("rates")
	var rates []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(r > 0 && r <= bench.MaxRate) {
			return nil, usagef("--rates %q: want requests per second, each above 0 and at most %d, separated by commas, such as 1000,2000,4000", s, bench.MaxRate)
		}
		rates = append(rates, r)
	}
	if len(rates) > maxRates {
		return nil, usagef("--rates %q: %d rates, want at most %d", s, len(rates), maxRates)
	}
	return rates, nil
}

// checkChartPath refuses a chart that could not be written, before the
// runs rather than after them.
func checkChartPath(path string) error {
	if path == "" {
		return nil
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return usagef("--chart %q: no directory %s to write it in", path, filepath.Dir(path))
	}
	return nil
}

// writeChart draws the chart, then writes it: a chart that cannot be
// drawn leaves no file behind.
func writeChart(path string, results []bench.Result) error {
	var b bytes.Buffer
	if err := bench.WriteChart(&b, results); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("kvctl bench: chart: %w", err)
	}
	return nil
}

// benchWorkload builds the workload from the flags, but for its
// keyspace and quorum, and checks it before any request is sent: on a
// stand-in keyspace, and without defaults ("--clients 0" is a mistake,
// not a request for the default).
func benchWorkload(c *cli.Context) (bench.Workload, error) {
	eps, err := endpoints(c)
	if err != nil {
		return bench.Workload{}, err
	}
	t, err := timeout(c)
	if err != nil {
		return bench.Workload{}, err
	}
	w := bench.Workload{
		Clients: c.Int("clients"), Duration: c.Duration("duration"), MaxOps: c.Int("ops"), Keys: c.Int("keys"),
		ValueSize: c.Int("value-size"), ReadFraction: c.Float64("reads"), CASFraction: c.Float64("cas"),
		Seed: c.Uint64("seed"), Timeout: t, KeyPrefix: bench.DefaultKeyPrefix, Settle: bench.DefaultSettle,
		Rate: c.Float64("rate"),
		// The nodes requests go to are those that count their reads.
		MetricsEndpoints: eps,
	}
	if w.TLS, err = clientTLS(c); err != nil {
		return bench.Workload{}, err
	}
	probe := w
	probe.Keyspace = bench.Keyspace{Name: "-", Mode: bench.ModeRaft, Replicas: 1}
	return w, knobUsage(probe.Validate())
}

// benchSingleFlags checks the flags of a run without --sweep.
func benchSingleFlags(c *cli.Context) error {
	for _, f := range sweepOnly {
		if c.IsSet(f) {
			return usagef("--%s applies to --sweep only", f)
		}
	}
	for _, f := range []string{"w", "r"} {
		if _, err := quorumSize(c, f); err != nil {
			return err
		}
	}
	return nil
}

// benchSweep builds the sweep from the flags.
func benchSweep(c *cli.Context, w bench.Workload, rates []float64, say func(string, ...any)) (bench.Sweep, error) {
	for _, f := range []string{"w", "r"} {
		if c.IsSet(f) {
			return bench.Sweep{}, usagef("--%s sets the quorum of a single run; --sweep takes its W,R pairs from --wr", f)
		}
	}
	n := c.Int("replicas")
	if n < 1 || n > bench.MaxReplicas {
		return bench.Sweep{}, usagef("--replicas %d: want 1 to %d", n, bench.MaxReplicas)
	}
	pairs := bench.DefaultPairs(n)
	if c.IsSet("wr") {
		var err error
		if pairs, err = parseWR(c.String("wr"), n); err != nil {
			return bench.Sweep{}, err
		}
	}
	s := bench.Sweep{
		Replicas: n, Ranges: c.Int("ranges"), Pairs: pairs, Keep: c.Bool("keep"), Workload: w, Rates: rates,
		// Random, so that two sweeps on one cluster do not meet.
		Suffix:   fmt.Sprintf("%08x", rand.Uint32()),
		Progress: func(msg string) { say("%s", msg) },
	}
	return s, knobUsage(s.Validate())
}

// parseWR reads --wr: W,R pairs separated by colons, each within 1..n.
func parseWR(s string, n int) ([]client.Quorum, error) {
	var pairs []client.Quorum
	for _, p := range strings.Split(s, ":") {
		ws, rs, ok := strings.Cut(strings.TrimSpace(p), ",")
		w, err1 := strconv.Atoi(ws)
		r, err2 := strconv.Atoi(rs)
		if !ok || err1 != nil || err2 != nil {
			return nil, usagef("--wr %q: want W,R pairs separated by colons, such as 1,1:2,2:1,3", s)
		}
		if w < 1 || w > n || r < 1 || r > n {
			return nil, usagef("--wr %q: W=%d, R=%d: want each from 1 to the %d replicas (--replicas)", s, w, r, n)
		}
		pairs = append(pairs, client.Quorum{W: w, R: r})
	}
	return pairs, nil
}

// benchSingle runs the workload on the existing keyspace --keyspace,
// once per rate if rates are given. On an error it returns the results
// so far with it.
func benchSingle(ctx context.Context, c *cli.Context, admin *client.Client, kvs []bench.KV, w bench.Workload,
	rates []float64, say func(string, ...any)) ([]bench.Result, error) {
	name := lookupString(c, "keyspace")
	desc, err := admin.DescribeKeyspace(ctx, name)
	if err != nil {
		return nil, err
	}
	ks := desc.GetKeyspace()
	w.Keyspace = bench.Keyspace{Name: name, Mode: modeName(ks.GetMode()), Replicas: int(ks.GetReplicas()), W: int(ks.GetW()), R: int(ks.GetR())}
	if w.Keyspace.Mode != bench.ModeEventual {
		w.Keyspace.W, w.Keyspace.R = 0, 0
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"w", &w.Quorum.W}, {"r", &w.Quorum.R}} {
		size, err := quorumSize(c, f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = resolveSize(size, w.Keyspace.Replicas)
	}
	if len(rates) == 0 {
		rates = []float64{w.Rate}
	}
	var results []bench.Result
	for _, rate := range rates {
		w.Rate = rate
		if err := w.Validate(); err != nil {
			return results, err
		}
		say("running %s N=%d on keyspace %s: %s under %s", w.Keyspace.Mode, w.Keyspace.Replicas, name, w.Describe(), w.KeyPrefix)
		r, err := bench.Run(ctx, w, kvs)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// resolveSize turns one, quorum and all into counts of n replicas, as
// the server would, so that the result shows the numbers.
func resolveSize(size, n int) int {
	switch size {
	case client.SizeQuorum:
		return n/2 + 1
	case client.SizeAll:
		return n
	}
	return size
}

func printBench(c *cli.Context, out format, results []bench.Result) error {
	if out == formatJSON {
		// A sweep, or a run per rate, is a list; one run is an object.
		if c.Bool("sweep") || c.IsSet("rates") {
			return writeJSON(c.App.Writer, results)
		}
		return writeJSON(c.App.Writer, results[0])
	}
	return bench.WriteTable(c.App.Writer, results)
}

// knobUsage turns a workload setting out of bounds into a usage error
// naming its flag.
func knobUsage(err error) error {
	var ke *bench.KnobError
	if errors.As(err, &ke) {
		return usagef("--%s %v: want %s", ke.Knob, ke.Value, ke.Want)
	}
	return err
}
