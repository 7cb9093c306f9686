package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.etcd.io/etcd/api/v3/version"
)

// report is everything a benchmark measured, printed as one table or as
// JSON.
type report struct {
	Date     string   `json:"date"`
	Machine  string   `json:"machine"`
	CPUs     int      `json:"cpus"`
	Go       string   `json:"go"`
	QuorumKV string   `json:"quorumkv"` // the repository's commit
	Etcd     string   `json:"etcd"`
	Settings settings `json:"settings"`
	// Idle is both clusters' CPU with no load, before the runs.
	Idle idle `json:"idle"`
	// Leaders are, per raft and paxos keyspace, the number of ranges
	// each node led after the preload; LeadersAfter after the runs.
	Leaders      map[string]string `json:"leaders"`
	LeadersAfter map[string]string `json:"leaders_after,omitempty"`
	Rows         []row             `json:"rows"`
	// Retries counts the runs repeated because other processes took
	// more than -foreign-limit during them.
	Retries int `json:"retries"`

	workloads []workload
	// runs are the results by system and run key (step.key), in order.
	runs map[string][]runResult
}

type settings struct {
	Clients     int    `json:"clients"`
	Keys        int    `json:"keys"`
	Preload     int    `json:"preload"`
	ValueBytes  int    `json:"value_bytes"`
	Duration    string `json:"duration"`
	Rounds      int    `json:"rounds"`
	KVDFlags    string `json:"kvd_flags,omitempty"`
	ClockTickHz int64  `json:"clock_tick_hz"`
	// ForeignLimit is -foreign-limit, in percent of a core.
	ForeignLimit float64 `json:"foreign_limit_percent"`
}

type idle struct {
	Window          time.Duration `json:"window_ns"`
	EtcdPercent     float64       `json:"etcd_percent_of_a_core"`
	QuorumKVPercent float64       `json:"quorumkv_percent_of_a_core"`
	ForeignPercent  float64       `json:"foreign_percent_of_a_core"`
}

// row compares one workload: quorumkv's runs with their etcd baseline's.
type row struct {
	Workload string `json:"workload"`
	Doc      string `json:"doc"`
	Clients  int    `json:"clients"`
	Etcd     side   `json:"etcd"`
	QuorumKV side   `json:"quorumkv"`
	// ThroughputRatio and CPURatio are quorumkv's over etcd's.
	ThroughputRatio float64 `json:"throughput_ratio"`
	CPURatio        float64 `json:"server_cpu_ratio"`
}

// side is one system's runs of a row, over all rounds.
type side struct {
	// OpsPerSec is the mean of the rounds' throughputs, listed in Rounds.
	OpsPerSec float64   `json:"ops_per_sec"`
	Rounds    []float64 `json:"ops_per_sec_rounds"`
	// P50Ms, P99Ms: of every answered request of every round.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// ServerCPUPerOp: the servers' CPU over all rounds divided by the
	// answered requests; ClientCPUPerOp the same for this process.
	ServerCPUPerOp float64 `json:"server_cpu_us_per_op"`
	ClientCPUPerOp float64 `json:"client_cpu_us_per_op"`
	// ServerKernelShare is the part of the servers' CPU spent in the
	// kernel (syscalls: network, fsync), 0 to 1.
	ServerKernelShare float64 `json:"server_kernel_share"`
	// ServerCPUByNode is ServerCPUPerOp per server process, in node
	// order (n1..n3, m1..m3): which node does the work.
	ServerCPUByNode []float64 `json:"server_cpu_us_per_op_by_node"`
	// ForeignPercent is, per round, the CPU that processes outside the
	// benchmark used during the run, in percent of one core.
	ForeignPercent []float64        `json:"foreign_cpu_percent_rounds"`
	Ops            int64            `json:"ops"`
	Misses         int64            `json:"misses,omitempty"`
	Errors         int64            `json:"errors"`
	ErrorKinds     map[string]int64 `json:"error_kinds,omitempty"`
	FirstError     string           `json:"first_error,omitempty"`
}

func newReport(cfg config, root string, workloads []workload) *report {
	host, _ := os.Hostname()
	return &report{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Machine:  fmt.Sprintf("%s/%s %s", runtime.GOOS, runtime.GOARCH, host),
		CPUs:     runtime.NumCPU(),
		Go:       runtime.Version(),
		QuorumKV: repoVersion(root),
		Etcd:     etcdVersion(),
		Settings: settings{Clients: cfg.Clients, Keys: cfg.Keys, Preload: cfg.Preload, ValueBytes: cfg.ValueBytes,
			Duration: cfg.Duration.String(), Rounds: cfg.Rounds, KVDFlags: strings.Join(cfg.KVDFlags, " "), ClockTickHz: clockTicks,
			ForeignLimit: cfg.ForeignLimit},
		workloads: workloads,
		runs:      map[string][]runResult{},
	}
}

// etcdVersion is the etcd server module's version as built in, or the
// API's version constant.
func etcdVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "go.etcd.io/etcd/server/v3" {
				return m.Version
			}
		}
	}
	return version.Version
}

func (r *report) add(s step, res runResult) {
	k := s.system() + "/" + s.key()
	r.runs[k] = append(r.runs[k], res)
}

// finish computes the rows from the runs.
func (r *report) finish() {
	r.Rows = r.Rows[:0]
	for _, w := range r.workloads {
		e := summarizeSide(r.runs["etcd/"+w.baselineKey()])
		q := summarizeSide(r.runs["quorumkv/"+w.name])
		clients := r.Settings.Clients
		if w.single {
			clients = 1
		}
		r.Rows = append(r.Rows, row{Workload: w.name, Doc: w.doc, Clients: clients, Etcd: e, QuorumKV: q,
			ThroughputRatio: ratio(q.OpsPerSec, e.OpsPerSec), CPURatio: ratio(q.ServerCPUPerOp, e.ServerCPUPerOp)})
	}
}

func summarizeSide(runs []runResult) side {
	var s side
	if len(runs) == 0 {
		return s
	}
	hist := newHist()
	var server, serverSys, clientCPU time.Duration
	var byNode []time.Duration
	s.ErrorKinds = map[string]int64{}
	for _, run := range runs {
		s.Rounds = append(s.Rounds, run.OpsPerSec())
		s.OpsPerSec += run.OpsPerSec() / float64(len(runs))
		s.Ops += run.Ops
		s.Misses += run.Misses
		s.Errors += run.Errors
		for k, n := range run.ErrorKind {
			s.ErrorKinds[k] += n
		}
		if s.FirstError == "" {
			s.FirstError = run.FirstErr
		}
		server += run.CPU.Server
		serverSys += run.CPU.ServerSys
		clientCPU += run.CPU.Client
		for i, d := range run.CPU.ServerByProcess {
			if i == len(byNode) {
				byNode = append(byNode, 0)
			}
			byNode[i] += d
		}
		s.ForeignPercent = append(s.ForeignPercent, percentOfCore(run.CPU.Foreign, run.Elapsed))
		if run.hist != nil {
			hist.Merge(run.hist)
		}
	}
	s.P50Ms, s.P99Ms = quantileMs(hist, 50), quantileMs(hist, 99)
	s.ServerCPUPerOp, s.ClientCPUPerOp = perOp(server, s.Ops), perOp(clientCPU, s.Ops)
	s.ServerKernelShare = ratio(serverSys.Seconds(), server.Seconds())
	for _, d := range byNode {
		s.ServerCPUByNode = append(s.ServerCPUByNode, perOp(d, s.Ops))
	}
	return s
}

func quantileMs(h *hdrhistogram.Histogram, q float64) float64 {
	if h.TotalCount() == 0 {
		return 0
	}
	return float64(h.ValueAtQuantile(q)) / 1000
}

// perOp is d per operation in microseconds; 0 without operations.
func perOp(d time.Duration, ops int64) float64 {
	if ops == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(ops)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *report) writeJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.writeJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeTable prints the header lines, the table and a line per error
// kind seen.
func (r *report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%s  %s, %d CPUs, %s  quorumkv %s  etcd %s\n", r.Date, r.Machine, r.CPUs, r.Go, r.QuorumKV, r.Etcd)
	s := r.Settings
	fmt.Fprintf(w, "3 nodes each on loopback, fsync on; %d closed-loop clients, %d B values, %d keys (%d preloaded, read by gets), %s per run, rounds: %d\n",
		s.Clients, s.ValueBytes, s.Keys, s.Preload, s.Duration, s.Rounds)
	if r.Idle.Window > 0 {
		fmt.Fprintf(w, "idle CPU (%s): etcd %.1f%% of a core, quorumkv %.1f%%, other processes %.1f%%\n",
			r.Idle.Window.Round(time.Millisecond), r.Idle.EtcdPercent, r.Idle.QuorumKVPercent, r.Idle.ForeignPercent)
	}
	fmt.Fprintf(w, "other processes during the kept runs: up to %.0f%% of a core (%d runs repeated for more than %.0f%%)\n",
		r.maxForeign(), r.Retries, r.Settings.ForeignLimit)
	fmt.Fprintf(w, "range leaders per node: %s (after the runs: %s)\n\n", fmtLeaders(r.Leaders), fmtLeaders(r.LeadersAfter))

	cells := [][]string{{"workload", "clients", "etcd ops/s", "quorumkv ops/s", "ratio q/e", "etcd p50/p99 ms", "quorumkv p50/p99 ms",
		"etcd CPU µs/op", "quorumkv CPU µs/op", "ratio q/e", "client CPU µs/op etcd/quorumkv", "others' CPU %"}}
	for _, row := range r.Rows {
		e, q := row.Etcd, row.QuorumKV
		cells = append(cells, []string{row.Workload, fmt.Sprint(row.Clients),
			fmt.Sprintf("%.0f", e.OpsPerSec), fmt.Sprintf("%.0f", q.OpsPerSec), fmt.Sprintf("%.2f×", row.ThroughputRatio),
			fmtLatency(e), fmtLatency(q),
			fmt.Sprintf("%.0f", e.ServerCPUPerOp), fmt.Sprintf("%.0f", q.ServerCPUPerOp), fmt.Sprintf("%.2f×", row.CPURatio),
			fmt.Sprintf("%.0f / %.0f", e.ClientCPUPerOp, q.ClientCPUPerOp), fmt.Sprintf("%.0f", row.maxForeign())})
	}
	if err := writeAligned(w, cells); err != nil {
		return err
	}
	for _, row := range r.Rows {
		for _, sys := range []struct {
			name string
			s    side
		}{{"etcd", row.Etcd}, {"quorumkv", row.QuorumKV}} {
			if sys.s.Errors > 0 {
				fmt.Fprintf(w, "%s %s: %d errors %v, first: %s\n", row.Workload, sys.name, sys.s.Errors, sys.s.ErrorKinds, sys.s.FirstError)
			}
			if sys.s.Misses > 0 {
				fmt.Fprintf(w, "%s %s: %d gets found no key\n", row.Workload, sys.name, sys.s.Misses)
			}
		}
	}
	return nil
}

// writeAligned prints cells as columns two spaces apart: the first
// column aligned left, the others, numbers, aligned right.
func writeAligned(w io.Writer, cells [][]string) error {
	var widths []int
	for _, line := range cells {
		for i, c := range line {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxForeign is the most CPU that processes outside the benchmark took
// during a kept run, in percent of a core.
func (r *report) maxForeign() float64 {
	var m float64
	for _, row := range r.Rows {
		m = max(m, row.maxForeign())
	}
	return m
}

// maxForeign is maxForeign over the row's runs, both systems'.
func (row row) maxForeign() float64 {
	var m float64
	for _, p := range append(slices.Clone(row.Etcd.ForeignPercent), row.QuorumKV.ForeignPercent...) {
		m = max(m, p)
	}
	return m
}

func fmtLatency(s side) string { return fmt.Sprintf("%.2f / %.2f", s.P50Ms, s.P99Ms) }

func fmtLeaders(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, ks := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(ks, "versus-"), m[ks]))
	}
	return strings.Join(parts, ", ")
}
