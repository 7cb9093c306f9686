package e2e

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// BenchmarkThreeNodes measures a 3-node cluster of real kvd processes on
// loopback (the node issue's benchmark): 100 concurrent clients, 256-byte
// values, each client bound to one node (forwarding to leaders as a real
// deployment does). It reports operations per second and latency
// percentiles for puts, and for linearizable gets, per keyspace mode.
//
//	go test ./e2e -run '^$' -bench ThreeNodes -benchtime 5s
//
// b.N is not used as an operation count: each sub-benchmark runs for the
// bench time (default 1s) with all clients, since throughput under
// concurrency is the point.
func BenchmarkThreeNodes(b *testing.B) {
	nodes := startCluster(b, 3)
	endpoints := addrs(nodes)
	for _, mode := range benchModes(nodes[0]) {
		b.Run(mode+"/put", func(b *testing.B) { benchOps(b, endpoints, "bench-"+mode, true) })
		b.Run(mode+"/get", func(b *testing.B) { benchOps(b, endpoints, "bench-"+mode, false) })
	}
}

// benchModes creates one keyspace per mode the cluster serves.
func benchModes(n *kvd) []string {
	var modes []string
	for _, mode := range []string{"raft", "paxos"} {
		code, _, _ := n.kvctl("", "keyspace", "create", "bench-"+mode, "--mode", mode, "--replicas", "3", "--ranges", "8")
		if code == 0 {
			modes = append(modes, mode)
		}
	}
	return modes
}

const (
	benchClients   = 100
	benchValueSize = 256
	benchKeys      = 10000
)

func benchOps(b *testing.B, endpoints []string, keyspace string, put bool) {
	duration := benchTime()
	value := make([]byte, benchValueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	// Fill the keys gets read (and wait out the first elections).
	{
		cl, _ := client.New(client.Config{Endpoints: endpoints, Timeout: 10 * time.Second})
		for i := range 200 {
			if _, err := cl.Put(context.Background(), keyspace, []byte(fmt.Sprintf("k%05d", i)), value, client.Quorum{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		ep := endpoints[c%len(endpoints)]
		cl, err := client.New(client.Config{Endpoints: []string{ep}, Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for i := 0; time.Now().Before(deadline); i++ {
				key := []byte(fmt.Sprintf("k%05d", (c*7919+i)%benchKeys))
				if !put {
					key = []byte(fmt.Sprintf("k%05d", (c*7919+i)%200))
				}
				t0 := time.Now()
				var err error
				if put {
					_, err = cl.Put(context.Background(), keyspace, key, value, client.Quorum{})
				} else {
					_, err = cl.Get(context.Background(), keyspace, key, client.Quorum{})
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatalf("no operation succeeded (%d errors)", errs)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(0, "ns/op") // b.N does not count operations here
}

// benchTime is -test.benchtime as a duration (1s when it is a count).
func benchTime() time.Duration {
	if f := flag.Lookup("test.benchtime"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 {
			return d
		}
	}
	return time.Second
}
