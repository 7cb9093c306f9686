package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/client"
)

// A workload compares one quorumkv request with the etcd request that
// does the same job. Several workloads share an etcd baseline (every put
// workload is compared with etcd's put): within a round the baseline runs
// once, right before the first quorumkv run that needs it, and is shared
// by all of them, which saves a run per workload and keeps the total
// within a few minutes.
type workload struct {
	name     string
	baseline baseline
	// put: the requests write a value; otherwise they read, among the
	// preloaded keys only.
	put bool
	// single: one client instead of Config.Clients.
	single bool
	// qkv sends one quorumkv request.
	qkv func(qc *qkvCluster) op
	doc string
}

// baseline is an etcd run that workloads compare against.
type baseline struct {
	name string
	op   func(ec *etcdCluster) op
}

var (
	etcdPut = baseline{"put", func(ec *etcdCluster) op {
		return func(ctx context.Context, _ int, _ uint64, key, value []byte) error { return ec.put(ctx, key, value) }
	}}
	etcdGet = baseline{"get", func(ec *etcdCluster) op {
		return func(ctx context.Context, _ int, _ uint64, key, _ []byte) error { return ec.get(ctx, key) }
	}}
)

func qkvPut(ks string, q client.Quorum) func(*qkvCluster) op {
	return func(qc *qkvCluster) op {
		return func(ctx context.Context, _ int, _ uint64, key, value []byte) error {
			return qc.put(ctx, ks, key, value, q)
		}
	}
}

func qkvGet(ks string) func(*qkvCluster) op {
	return func(qc *qkvCluster) op {
		return func(ctx context.Context, _ int, _ uint64, key, _ []byte) error { return qc.get(ctx, ks, key) }
	}
}

// The REST workloads send client i's j-th request to node (i+j) mod 3.
func qkvRESTPut(ks string) func(*qkvCluster) op {
	return func(qc *qkvCluster) op {
		return func(ctx context.Context, worker int, seq uint64, key, value []byte) error {
			return qc.restPut(ctx, worker+int(seq%3), ks, key, value)
		}
	}
}

func qkvRESTGet(ks string) func(*qkvCluster) op {
	return func(qc *qkvCluster) op {
		return func(ctx context.Context, worker int, seq uint64, key, _ []byte) error {
			return qc.restGet(ctx, worker+int(seq%3), ks, key)
		}
	}
}

// allWorkloads in the order a round runs them: puts first, so that the
// gets read stores that hold the puts' data too.
var allWorkloads = []workload{
	{name: "raft-put", baseline: etcdPut, put: true, qkv: qkvPut(ksRaft, client.Quorum{}),
		doc: "raft keyspace N=3, Put through the Go client"},
	{name: "paxos-put", baseline: etcdPut, put: true, qkv: qkvPut(ksPaxos, client.Quorum{}),
		doc: "paxos keyspace N=3, Put through the Go client"},
	{name: "eventual-w1-put", baseline: etcdPut, put: true, qkv: qkvPut(ksEventual, client.Quorum{W: 1}),
		doc: "eventual keyspace N=3, Put with W=1 through the Go client"},
	{name: "raft-put-rest", baseline: etcdPut, put: true, qkv: qkvRESTPut(ksRaft),
		doc: "raft keyspace, PUT /v1/kv/... over HTTP/1.1, spread over the 3 nodes"},
	{name: "raft-get", baseline: etcdGet, qkv: qkvGet(ksRaft),
		doc: "raft keyspace, linearizable Get through the Go client"},
	{name: "paxos-get", baseline: etcdGet, qkv: qkvGet(ksPaxos),
		doc: "paxos keyspace, linearizable Get through the Go client"},
	{name: "raft-get-rest", baseline: etcdGet, qkv: qkvRESTGet(ksRaft),
		doc: "raft keyspace, GET /v1/kv/... over HTTP/1.1, spread over the 3 nodes"},
	{name: "raft-put-1-client", baseline: etcdPut, put: true, single: true, qkv: qkvPut(ksRaft, client.Quorum{}),
		doc: "raft keyspace, Put through the Go client, one client: latency"},
}

// baselineKey tells the etcd runs apart: the same request with another
// number of clients is another run.
func (w workload) baselineKey() string {
	if w.single {
		return w.baseline.name + "/1"
	}
	return w.baseline.name
}

// selectWorkloads returns the workloads named in list (comma separated,
// "all" for every one), in allWorkloads' order.
func selectWorkloads(list string) ([]workload, error) {
	if list == "all" {
		return allWorkloads, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []workload
	for _, w := range allWorkloads {
		if want[w.name] {
			out = append(out, w)
			delete(want, w.name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown workload %q; known: %s", n, workloadNames())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload selected; known: %s", workloadNames())
	}
	return out, nil
}

func workloadNames() string {
	names := make([]string, len(allWorkloads))
	for i, w := range allWorkloads {
		names[i] = w.name
	}
	return strings.Join(names, ", ")
}
