package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/bench"
	"github.com/quorumkv/quorumkv/client"
)

// BenchmarkEventualStaleness measures how stale the reads of an eventual
// keyspace are under load, on three kvd processes (keyspace ev: N=3,
// defaults W=2 R=2), for the request quorums (W,R) = (1,1), (2,2) and
// (1,3). Per setting, the workload engine of bench/ runs 16 closed-loop
// clients for the staleness time on 20 keys of the setting's own, half
// reads with the setting's R and half puts of unique values with its W,
// every request through the next of the three nodes. Two measures are
// reported (docs/bench.md):
//
//   - the server's: the growth of quorumkv_wrn_stale_reads_total over that
//     of quorumkv_wrn_reads_total, summed over the nodes. A read counts as
//     stale there if any replica held a newer version when it answered,
//     an unacknowledged write still in flight included.
//   - the client's, independent of the server (bench.MissedAcks): a read
//     missed an acknowledged write if it returned a version older than
//     (or no record instead of) a write to its key acknowledged before
//     the read was sent. W+R>N promises none, so (2,2) and (1,3) fail the
//     benchmark on one.
//
// More than 1% of requests failing (timeouts) fails it too.
//
//	go test ./e2e -run '^$' -bench EventualStaleness -benchtime 1x -count 1 -v
//
// b.N is not used: each setting runs for the staleness time, 5s unless
// QKV_STALENESS_TIME (a Go duration) says otherwise. -benchtime 1x
// keeps the testing package from running a setting again when the
// staleness time is shorter than the bench time. kvctl bench --sweep
// measures the same with any workload, on any cluster.
func BenchmarkEventualStaleness(b *testing.B) {
	duration := stalenessTime(b)
	nodes := startCluster(b, 3)
	nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
	endpoints := addrs(nodes)
	// Every node coordinates a write before the load starts.
	waitFor(b, "every node to serve keyspace ev", func() bool {
		for _, n := range nodes {
			if _, err := newClient(b, n).Put(context.Background(), "ev", []byte("probe"), []byte("p"), client.Quorum{}); err != nil {
				return false
			}
		}
		return true
	})
	kvs, err := bench.Clients(endpoints, client.Config{Timeout: stalenessRequestTimeout})
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []client.Quorum{{W: 1, R: 1}, {W: 2, R: 2}, {W: 1, R: 3}} {
		name := fmt.Sprintf("w=%d,r=%d", q.W, q.R)
		b.Run(name, func(b *testing.B) { benchStaleness(b, endpoints, kvs, name, q, duration) })
	}
}

const (
	stalenessClients = 16
	stalenessKeys    = 20
	// stalenessN is the keyspace's replica count, for the W+R>N check.
	stalenessN = 3
	// stalenessSettle is the wait after the load before the counters are
	// read: a coordinator counts a read stale once the late answers are
	// in, after the read returned. Replicas answer within milliseconds
	// here; one slower than this (up to the replica timeout, 2s) is left
	// out, making the server's rate a lower bound.
	stalenessSettle = time.Second
	// stalenessRequestTimeout bounds one request, retries included. Too
	// low counts a slow moment of the shared 2-core load as failures;
	// too high lets a hung request outlast the load by that much.
	stalenessRequestTimeout = 2 * time.Second
	// stalenessMaxFailed is the fraction of failed requests that fails
	// the benchmark.
	stalenessMaxFailed = 0.01
	// stalenessSeed seeds the clients' key choices.
	stalenessSeed = 6
)

// stalenessTime is how long each setting runs: QKV_STALENESS_TIME, or 5s.
func stalenessTime(t testing.TB) time.Duration {
	s := os.Getenv("QKV_STALENESS_TIME")
	if s == "" {
		return 5 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("QKV_STALENESS_TIME=%q: want a positive duration such as 5s", s)
	}
	return d
}

// benchStaleness runs one setting on keys of its own (prefix setting/),
// so that the settings do not read each other's writes.
func benchStaleness(b *testing.B, endpoints []string, kvs []bench.KV, setting string, q client.Quorum, duration time.Duration) {
	w := bench.Workload{
		Keyspace: bench.Keyspace{Name: "ev", Mode: bench.ModeEventual, Replicas: stalenessN, W: 2, R: 2},
		Clients:  stalenessClients, Duration: duration, Keys: stalenessKeys, KeyPrefix: setting + "/",
		ValueSize: bench.MinValueBytes, ReadFraction: 0.5, Quorum: q, Seed: stalenessSeed,
		Timeout: stalenessRequestTimeout, MetricsEndpoints: endpoints, Settle: stalenessSettle,
	}
	b.ResetTimer()
	res, err := bench.Run(context.Background(), w, kvs)
	b.StopTimer()
	if err != nil {
		b.Fatalf("%s: %v", setting, err)
	}
	if res.Read.Ops == 0 || res.Write.Ops == 0 {
		b.Fatalf("%s: %d reads and %d writes answered (%d requests failed): %v",
			setting, res.Read.Ops, res.Write.Ops, res.Errors, res.FirstErrors)
	}
	if res.Server == nil || res.Server.Error != "" {
		b.Fatalf("%s: the server's measure is missing: %+v", setting, res.Server)
	}
	reportStaleness(b, setting, q, res)
}

// reportStaleness reports the result's metrics and log line, and fails
// the benchmark on a broken W+R>N promise or too many failed requests.
func reportStaleness(b *testing.B, setting string, q client.Quorum, r bench.Result) {
	reads, writes, missed, srv := float64(r.Read.Ops), float64(r.Write.Ops), float64(r.Stale.Missed), r.Server
	pct := func(n, of float64) float64 { return 100 * n / max(of, 1) }
	readErrs, writeErrs := r.Read.Errors, r.Write.Errors
	failed := func(m map[string]int64) (n float64) {
		for _, c := range m {
			n += float64(c)
		}
		return n
	}
	b.ReportMetric(reads/r.ElapsedSeconds, "reads/s")
	b.ReportMetric(writes/r.ElapsedSeconds, "writes/s")
	b.ReportMetric(srv.StalePercent, "server-stale-%")
	b.ReportMetric(pct(missed, float64(r.Stale.Reads)), "missed-ack-%")
	b.ReportMetric(reads, "reads")
	b.ReportMetric(writes, "writes")
	b.ReportMetric(srv.Reads, "server-reads")
	b.ReportMetric(srv.StaleReads, "server-stale")
	b.ReportMetric(missed, "missed-ack")
	b.ReportMetric(failed(readErrs), "read-errors")
	b.ReportMetric(failed(writeErrs), "write-errors")
	b.ReportMetric(0, "ns/op") // b.N does not count operations here
	b.Logf("%s: %.3fs; writes %.0f (%.0f/s, %v failed), reads %.0f (%.0f/s, %v failed, %d not found); "+
		"server: %v of %v reads stale (%.2f%%); client: %d of %d reads missed an acknowledged write (%.2f%%)",
		setting, r.ElapsedSeconds, writes, writes/r.ElapsedSeconds, failed(writeErrs), reads, reads/r.ElapsedSeconds, failed(readErrs),
		r.Stale.NotFound, srv.StaleReads, srv.Reads, srv.StalePercent, r.Stale.Missed, r.Stale.Reads, pct(missed, float64(r.Stale.Reads)))
	for _, e := range r.Stale.Examples {
		b.Logf("%s: missed-ack read: %s", setting, e)
	}

	if q.W+q.R > stalenessN && r.Stale.Missed > 0 {
		b.Errorf("%s: W+R=%d > N=%d, yet %d reads missed a write acknowledged before they were sent", setting, q.W+q.R, stalenessN, r.Stale.Missed)
	}
	if total := r.Ops + r.Errors; float64(r.Errors) > stalenessMaxFailed*float64(total) {
		b.Errorf("%s: %d of %d requests failed (over %.0f%%); first errors: %v", setting, r.Errors, total, 100*stalenessMaxFailed, r.FirstErrors)
	}
}
