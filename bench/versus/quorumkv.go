package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
	"github.com/quorumkv/quorumkv/client"
)

// The keyspaces the benchmark creates: N=3 each, majority quorums.
const (
	ksRaft     = "versus-raft"
	ksPaxos    = "versus-paxos"
	ksEventual = "versus-eventual"
	// ranges of the raft and paxos keyspaces, kvctl's default.
	ksRanges = 8
)

// qkvCluster is three kvd processes, a Go client of all three and an HTTP
// client for REST.
type qkvCluster struct {
	nodes  []*child
	addrs  []string
	client *client.Client
	rest   *http.Client
}

// buildKVD builds cmd/kvd of the repository at root into dir, static as
// SPEC.md promises, with the main module's own dependencies (not this
// module's: etcd pulls newer versions of some).
func buildKVD(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "bin", "kvd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/kvd")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kvd in %s: %w\n%s", root, err, b)
	}
	return out, nil
}

// startQuorumKV starts three nodes of kvd under dir as the e2e tests do:
// n1 founds the cluster, n2 and n3 join it through its gossip address,
// each started once the one before is ready. Every node gets extra.
func startQuorumKV(ctx context.Context, procs *procSet, kvd, dir string, extra []string, clients int, timeout time.Duration) (*qkvCluster, error) {
	qc := &qkvCluster{}
	var seed string
	for i := 1; i <= 3; i++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		gossip, err := freeAddr()
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("n%d", i)
		args := []string{"--node-id", id, "--data-dir", filepath.Join(dir, id), "--listen", addr, "--gossip", gossip}
		if seed != "" {
			args = append(args, "--join", seed)
		} else {
			seed = gossip
		}
		node, err := procs.start("kvd "+id, kvd, append(args, extra...)...)
		if err != nil {
			return nil, err
		}
		qc.nodes, qc.addrs = append(qc.nodes, node), append(qc.addrs, addr)
		if err := waitReadyz(ctx, node, addr); err != nil {
			return nil, err
		}
	}
	var err error
	qc.client, err = client.New(client.Config{Endpoints: qc.addrs, Timeout: timeout, Spread: true})
	if err != nil {
		return nil, err
	}
	// Plain HTTP/1.1 with keep-alive, as curl or most REST clients speak;
	// one idle connection per closed-loop client and node at most.
	qc.rest = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute}}
	return qc, nil
}

// waitReadyz polls the node's /readyz until it answers 200.
func waitReadyz(ctx context.Context, node *child, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if err := node.alive(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s at %s not ready within %v: %w\n%s", node.name, addr, startTimeout, ctx.Err(), node.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// createKeyspaces creates the raft, paxos and eventual keyspaces. The
// first is tried until the catalog knows all three nodes, as the e2e
// tests' probe keyspace is. The eventual keyspace keeps the default W =
// R = 2: the server refuses W+R <= N for a keyspace, so W=1 is asked per
// request.
func (qc *qkvCluster) createKeyspaces(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	keyspaces := []*v1.Keyspace{
		{Name: ksRaft, Mode: v1.Mode_MODE_RAFT, Replicas: 3, Ranges: ksRanges},
		{Name: ksPaxos, Mode: v1.Mode_MODE_PAXOS, Replicas: 3, Ranges: ksRanges},
		{Name: ksEventual, Mode: v1.Mode_MODE_EVENTUAL, Replicas: 3},
	}
	for _, ks := range keyspaces {
		for {
			_, err := qc.client.CreateKeyspace(ctx, ks)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("create keyspace %s: %w", ks.Name, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// leaders counts the ranges of keyspace that each node leads, as the
// nodes' answer names them ("n1:5 n2:3"); "-" for none known.
func (qc *qkvCluster) leaders(ctx context.Context, keyspace string) (string, error) {
	ranges, err := qc.client.Ranges(ctx, keyspace)
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, r := range ranges {
		leader := r.GetLeader()
		if leader == "" {
			leader = "none"
		}
		count[leader]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", n, count[n])
	}
	return b.String(), nil
}

func (qc *qkvCluster) pids() []int { return pidsOf(qc.nodes) }

func (qc *qkvCluster) alive() error { return firstDead(qc.nodes) }

// put and get go through the Go client, which sends a raft or paxos
// request to the range's leader as the last answer named it.
func (qc *qkvCluster) put(ctx context.Context, keyspace string, key, value []byte, q client.Quorum) error {
	_, err := qc.client.Put(ctx, keyspace, key, value, q)
	return err
}

func (qc *qkvCluster) get(ctx context.Context, keyspace string, key []byte) error {
	_, err := qc.client.Get(ctx, keyspace, key, client.Quorum{})
	if errors.Is(err, client.ErrNotFound) {
		return errMiss
	}
	return err
}

// restPut and restGet go through REST to node i of the cluster: the
// benchmark spreads them over all three, so two in three land on a node
// that does not lead the key's range and forward it.
func (qc *qkvCluster) restPut(ctx context.Context, node int, keyspace string, key, value []byte) error {
	return qc.rest1(ctx, http.MethodPut, node, keyspace, key, value)
}

func (qc *qkvCluster) restGet(ctx context.Context, node int, keyspace string, key []byte) error {
	return qc.rest1(ctx, http.MethodGet, node, keyspace, key, nil)
}

func (qc *qkvCluster) rest1(ctx context.Context, method string, node int, keyspace string, key, value []byte) error {
	var body io.Reader
	if value != nil {
		body = bytes.NewReader(value)
	}
	// Keys are made of [a-z0-9-] only (keyName): no escaping needed.
	url := "http://" + qc.addrs[node%len(qc.addrs)] + "/v1/kv/" + keyspace + "/" + string(key)
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	resp, err := qc.rest.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read the body whole: the connection is reused only then.
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return err
	case resp.StatusCode == http.StatusNotFound && method == http.MethodGet:
		return errMiss
	case resp.StatusCode/100 != 2:
		return &httpError{status: resp.StatusCode, msg: string(bytes.TrimSpace(msg[:min(len(msg), 200)]))}
	}
	return nil
}

// httpError is a REST answer other than 2xx.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }

// repoVersion is the commit of the repository at root, "unknown" outside git.
func repoVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
