package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// BenchmarkEventualStaleness measures how stale the reads of an eventual
// keyspace are under load, on three kvd processes (keyspace ev: N=3,
// defaults W=2 R=2), for the request quorums (W,R) = (1,1), (2,2) and
// (1,3). Per setting, 8 writers and 8 readers run for the staleness time
// on 20 keys, every request through the next of the three nodes, writers
// with the setting's W and unique values, readers with its R. Two
// measures are reported:
//
//   - the server's: the growth of quorumkv_wrn_stale_reads_total over that
//     of quorumkv_wrn_reads_total, summed over the nodes. A read counts as
//     stale there if any replica held a newer version when it answered,
//     an unacknowledged write still in flight included.
//   - the client's, independent of the server: a read is missed-ack stale
//     if it returned a version older than (or no record instead of) a
//     write to its key acknowledged before the read was sent. W+R>N
//     promises none, so (2,2) and (1,3) fail the benchmark on one.
//
// More than 1% of requests failing (timeouts) fails it too.
//
//	go test ./e2e -run '^$' -bench EventualStaleness -benchtime 1x -count 1 -v
//
// b.N is not used: each setting runs for the staleness time, 5s unless
// QKV_STALENESS_TIME (a Go duration) says otherwise. -benchtime 1x
// keeps the testing package from running a setting again when the
// staleness time is shorter than the bench time.
func BenchmarkEventualStaleness(b *testing.B) {
	duration := stalenessTime(b)
	nodes := startCluster(b, 3)
	nodes[0].must(0, "keyspace", "create", "ev", "--mode", "eventual", "--replicas", "3", "--w", "2", "--r", "2")
	var clients []*client.Client
	for _, n := range nodes {
		cl, err := client.New(client.Config{Endpoints: []string{n.addr}, Timeout: stalenessRequestTimeout})
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)
	}
	// Every node coordinates a write before the load starts.
	waitFor(b, "every node to serve keyspace ev", func() bool {
		for _, cl := range clients {
			if _, err := cl.Put(context.Background(), "ev", []byte("probe"), []byte("p"), client.Quorum{}); err != nil {
				return false
			}
		}
		return true
	})
	for _, q := range []client.Quorum{{W: 1, R: 1}, {W: 2, R: 2}, {W: 1, R: 3}} {
		name := fmt.Sprintf("w=%d,r=%d", q.W, q.R)
		b.Run(name, func(b *testing.B) { benchStaleness(b, nodes, clients, name, q, duration) })
	}
}

const (
	stalenessWriters = 8
	stalenessReaders = 8
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
	// stalenessSeed seeds the goroutines' key choices.
	stalenessSeed = 6
)

// The staleness measure of eventual reads (docs/operations.md "Metrics").
const (
	metricWRNReads      = `quorumkv_wrn_reads_total{keyspace="ev"}`
	metricWRNStaleReads = `quorumkv_wrn_stale_reads_total{keyspace="ev"}`
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

// ack is a write acknowledged to the client: its key, its version, and
// when the Put returned, as time since the setting began (monotonic).
type ack struct {
	key     int
	at      time.Duration
	version string
}

// read is a successful read: its key, when it was sent, and the version
// it returned ("" for not found).
type read struct {
	key     int
	sent    time.Duration
	version string
}

// loadPart is what one goroutine did, or all of a setting's together:
// the acknowledged writes, the successful reads, the failed requests and
// the first few errors.
type loadPart struct {
	acks                []ack
	reads               []read
	writeErrs, readErrs int
	firstErrs           []error
}

// maxLoggedErrs is how many request errors a loadPart keeps for the log.
const maxLoggedErrs = 3

func (p *loadPart) keep(err error) {
	if len(p.firstErrs) < maxLoggedErrs {
		p.firstErrs = append(p.firstErrs, err)
	}
}

func (p *loadPart) merge(o loadPart) {
	p.acks = append(p.acks, o.acks...)
	p.reads = append(p.reads, o.reads...)
	p.writeErrs += o.writeErrs
	p.readErrs += o.readErrs
	for _, err := range o.firstErrs {
		p.keep(err)
	}
}

func stalenessKey(setting string, i int) []byte {
	return fmt.Appendf(nil, "%s/k%02d", setting, i)
}

// benchStaleness runs one setting on keys of its own, so that the
// settings do not read each other's writes.
func benchStaleness(b *testing.B, nodes []*kvd, clients []*client.Client, setting string, q client.Quorum, duration time.Duration) {
	begin := time.Now()
	prefill := prefillKeys(b, clients, setting, begin)
	serverReads0, serverStale0 := sum(b, nodes, metricWRNReads), sum(b, nodes, metricWRNStaleReads)
	b.ResetTimer()
	load, elapsed := runStalenessLoad(begin, duration, clients, setting, q)
	b.StopTimer()
	time.Sleep(stalenessSettle)
	res := stalenessResult{
		setting: setting, q: q, elapsed: elapsed, load: load, writes: len(load.acks),
		serverReads: sum(b, nodes, metricWRNReads) - serverReads0,
		serverStale: sum(b, nodes, metricWRNStaleReads) - serverStale0,
	}
	if len(load.reads) == 0 || res.writes == 0 {
		b.Fatalf("%s: %d reads and %d writes succeeded (%d and %d failed): %v",
			setting, len(load.reads), res.writes, load.readErrs, load.writeErrs, load.firstErrs)
	}
	var err error
	res.missed, res.notFound, res.examples, err = missedAcks(append(prefill, load.acks...), load.reads)
	if err != nil {
		b.Fatalf("%s: %v", setting, err)
	}
	res.report(b)
}

// prefillKeys writes every key of the setting to every replica (W=N) and
// returns the acks, timed from begin.
func prefillKeys(b *testing.B, clients []*client.Client, setting string, begin time.Time) []ack {
	var acks []ack
	for i := range stalenessKeys {
		key := stalenessKey(setting, i)
		v, err := clients[i%len(clients)].Put(context.Background(), "ev", key, []byte("prefill"), client.Quorum{W: client.SizeAll})
		if err != nil {
			b.Fatalf("prefill %s: %v", key, err)
		}
		acks = append(acks, ack{key: i, at: time.Since(begin), version: v})
	}
	return acks
}

// runStalenessLoad runs the writers and readers for duration and returns
// what they did and how long they took (the last requests end after
// duration).
func runStalenessLoad(begin time.Time, duration time.Duration, clients []*client.Client, setting string, q client.Quorum) (loadPart, time.Duration) {
	start := time.Since(begin)
	deadline := begin.Add(start + duration)
	// One part per goroutine, each written by its goroutine alone.
	parts := make([]loadPart, stalenessWriters+stalenessReaders)
	var wg sync.WaitGroup
	for g := range stalenessWriters {
		wg.Go(func() { parts[g] = writeLoad(begin, deadline, clients, setting, g, q.W) })
	}
	for g := range stalenessReaders {
		wg.Go(func() { parts[stalenessWriters+g] = readLoad(begin, deadline, clients, setting, g, q.R) })
	}
	wg.Wait()
	elapsed := time.Since(begin) - start
	var all loadPart
	for _, p := range parts {
		all.merge(p)
	}
	return all, elapsed
}

// stalenessResult is one setting's measurement.
type stalenessResult struct {
	setting                  string
	q                        client.Quorum
	elapsed                  time.Duration
	load                     loadPart
	writes                   int // acknowledged in the load (the prefill excluded)
	serverReads, serverStale float64
	missed, notFound         int
	examples                 []string
}

// report reports the result's metrics and log line, and fails the
// benchmark on a broken W+R>N promise or too many failed requests.
func (r stalenessResult) report(b *testing.B) {
	reads, secs := len(r.load.reads), r.elapsed.Seconds()
	pct := func(n, of float64) float64 { return 100 * n / max(of, 1) }
	b.ReportMetric(float64(reads)/secs, "reads/s")
	b.ReportMetric(float64(r.writes)/secs, "writes/s")
	b.ReportMetric(pct(r.serverStale, r.serverReads), "server-stale-%")
	b.ReportMetric(pct(float64(r.missed), float64(reads)), "missed-ack-%")
	b.ReportMetric(float64(reads), "reads")
	b.ReportMetric(float64(r.writes), "writes")
	b.ReportMetric(r.serverReads, "server-reads")
	b.ReportMetric(r.serverStale, "server-stale")
	b.ReportMetric(float64(r.missed), "missed-ack")
	b.ReportMetric(float64(r.load.readErrs), "read-errors")
	b.ReportMetric(float64(r.load.writeErrs), "write-errors")
	b.ReportMetric(0, "ns/op") // b.N does not count operations here
	b.Logf("%s: %v; writes %d (%.0f/s, %d failed), reads %d (%.0f/s, %d failed, %d not found); "+
		"server: %v of %v reads stale (%.2f%%); client: %d of %d reads missed an acknowledged write (%.2f%%)",
		r.setting, r.elapsed.Round(time.Millisecond), r.writes, float64(r.writes)/secs, r.load.writeErrs,
		reads, float64(reads)/secs, r.load.readErrs, r.notFound,
		r.serverStale, r.serverReads, pct(r.serverStale, r.serverReads), r.missed, reads, pct(float64(r.missed), float64(reads)))
	for _, e := range r.examples {
		b.Logf("%s: missed-ack read: %s", r.setting, e)
	}

	if r.q.W+r.q.R > stalenessN && r.missed > 0 {
		b.Errorf("%s: W+R=%d > N=%d, yet %d reads missed a write acknowledged before they were sent", r.setting, r.q.W+r.q.R, stalenessN, r.missed)
	}
	failed := r.load.readErrs + r.load.writeErrs
	if total := failed + reads + r.writes; float64(failed) > stalenessMaxFailed*float64(total) {
		b.Errorf("%s: %d of %d requests failed (over %.0f%%); first errors: %v", r.setting, failed, total, 100*stalenessMaxFailed, r.load.firstErrs)
	}
}

// writeLoad is one writer: until deadline, a unique value to a random key
// with W=w, through the next node each time.
func writeLoad(begin, deadline time.Time, clients []*client.Client, setting string, g, w int) loadPart {
	rng := rand.New(rand.NewPCG(stalenessSeed, uint64(g)))
	var p loadPart
	for j := 0; time.Now().Before(deadline); j++ {
		key := rng.IntN(stalenessKeys)
		cl := clients[(g+j)%len(clients)]
		v, err := cl.Put(context.Background(), "ev", stalenessKey(setting, key), fmt.Appendf(nil, "w%d-%d", g, j), client.Quorum{W: w})
		at := time.Since(begin) // after the ack: never earlier than it
		if err != nil {
			p.writeErrs++
			p.keep(err)
			continue
		}
		p.acks = append(p.acks, ack{key: key, at: at, version: v})
	}
	return p
}

// readLoad is one reader: until deadline, a random key with R=r, through
// the next node each time.
func readLoad(begin, deadline time.Time, clients []*client.Client, setting string, g, r int) loadPart {
	rng := rand.New(rand.NewPCG(stalenessSeed, uint64(stalenessWriters+g)))
	var p loadPart
	for j := 0; time.Now().Before(deadline); j++ {
		key := rng.IntN(stalenessKeys)
		cl := clients[(g+j)%len(clients)]
		sent := time.Since(begin) // before the request: never later than it
		kv, err := cl.Get(context.Background(), "ev", stalenessKey(setting, key), client.Quorum{R: r})
		switch {
		case errors.Is(err, client.ErrNotFound):
			p.reads = append(p.reads, read{key: key, sent: sent})
		case err != nil:
			p.readErrs++
			p.keep(err)
		default:
			p.reads = append(p.reads, read{key: key, sent: sent, version: kv.Version})
		}
	}
	return p
}

// missedAcks counts the reads that returned an older version than the
// newest write to their key acknowledged strictly before they were sent,
// or no record when one was; it also counts the not-found reads and
// describes the first few missed ones. It sorts acks.
func missedAcks(acks []ack, reads []read) (missed, notFound int, examples []string, err error) {
	slices.SortFunc(acks, func(a, b ack) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.at, b.at)) })
	// Per key, the ack times in order and the newest version acknowledged
	// up to each of them.
	type acked struct {
		at     time.Duration
		newest recordVersion
		raw    string
	}
	byKey := make(map[int][]acked)
	for _, a := range acks {
		v, err := parseRecordVersion(a.version)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("acknowledged write: %w", err)
		}
		prev := byKey[a.key]
		next := acked{at: a.at, newest: v, raw: a.version}
		if len(prev) > 0 && v.compare(prev[len(prev)-1].newest) < 0 {
			next.newest, next.raw = prev[len(prev)-1].newest, prev[len(prev)-1].raw
		}
		byKey[a.key] = append(prev, next)
	}
	for _, r := range reads {
		if r.version == "" {
			notFound++
		}
		history := byKey[r.key]
		i, _ := slices.BinarySearchFunc(history, r.sent, func(a acked, t time.Duration) int { return cmp.Compare(a.at, t) })
		if i == 0 {
			continue // nothing acknowledged before the read was sent
		}
		newest := history[i-1]
		if r.version != "" {
			v, err := parseRecordVersion(r.version)
			if err != nil {
				return 0, 0, nil, fmt.Errorf("read: %w", err)
			}
			if v.compare(newest.newest) >= 0 {
				continue
			}
		}
		missed++
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("key %d sent at %v returned %q; %q was acknowledged at %v",
				r.key, r.sent, r.version, newest.raw, newest.at))
		}
	}
	return missed, notFound, examples, nil
}

// recordVersion is an eventual version as the API shows it,
// WALL.LOGICAL.NODE, ordered by those integers in turn.
type recordVersion struct {
	wall    int64
	logical uint64
	node    uint64
}

func parseRecordVersion(s string) (recordVersion, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return recordVersion{}, fmt.Errorf("version %q: want WALL.LOGICAL.NODE", s)
	}
	wall, err1 := strconv.ParseInt(parts[0], 10, 64)
	logical, err2 := strconv.ParseUint(parts[1], 10, 32)
	node, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return recordVersion{}, fmt.Errorf("version %q: %w", s, err)
	}
	return recordVersion{wall: wall, logical: logical, node: node}, nil
}

func (v recordVersion) compare(o recordVersion) int {
	return cmp.Or(cmp.Compare(v.wall, o.wall), cmp.Compare(v.logical, o.logical), cmp.Compare(v.node, o.node))
}

// TestMissedAcks checks the client-side staleness check on its own.
func TestMissedAcks(t *testing.T) {
	acks := []ack{
		{key: 0, at: 10, version: "100.0.1"},
		{key: 0, at: 20, version: "90.5.2"}, // acknowledged later, yet older
		{key: 0, at: 30, version: "100.1.1"},
		{key: 1, at: 10, version: "100.0.2"},
	}
	for _, tc := range []struct {
		name   string
		read   read
		missed int
	}{
		{"before any ack", read{key: 0, sent: 5}, 0},
		{"the newest acked", read{key: 0, sent: 25, version: "100.0.1"}, 0},
		{"older than acked", read{key: 0, sent: 25, version: "90.5.2"}, 1},
		{"sent as the ack came: not before", read{key: 0, sent: 30, version: "100.0.1"}, 0},
		{"logical orders after wall", read{key: 0, sent: 31, version: "100.0.9"}, 1},
		{"newer than acked", read{key: 0, sent: 31, version: "100.1.2"}, 0},
		{"not found after an ack", read{key: 1, sent: 11}, 1},
		{"another key's ack", read{key: 2, sent: 50, version: "1.0.1"}, 0},
	} {
		missed, _, _, err := missedAcks(slices.Clone(acks), []read{tc.read})
		if err != nil || missed != tc.missed {
			t.Errorf("%s: missed %d, %v; want %d", tc.name, missed, err, tc.missed)
		}
	}
	for _, bad := range []string{"1.2", "1.x.3", "1.2.3.4", "-"} {
		if _, _, _, err := missedAcks([]ack{{version: "1.0.1"}}, []read{{sent: 1, version: bad}}); err == nil {
			t.Errorf("read version %q accepted", bad)
		}
	}
}
