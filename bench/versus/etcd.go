package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// memberCommand is the hidden first argument that makes this binary run
// one embedded etcd member instead of the benchmark. Each member runs in
// a process of its own, as a real deployment would, so that its CPU can
// be read from /proc like a kvd node's.
const memberCommand = "__etcd-member"

// runMember runs one etcd member with embed's defaults (fsync on) until
// it is signalled, and returns the exit code.
func runMember(args []string) int {
	fs := flag.NewFlagSet(memberCommand, flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	clientURL := fs.String("client-url", "", "URL to serve clients on")
	peerURL := fs.String("peer-url", "", "URL to serve peers on")
	cluster := fs.String("initial-cluster", "", "name=peer-url,... of every member")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.InitialCluster = *cluster
	cfg.InitialClusterToken = "versus"
	cfg.ClusterState = embed.ClusterStateFlagNew
	for _, u := range []struct {
		raw  string
		dsts []*[]url.URL
	}{
		{*clientURL, []*[]url.URL{&cfg.ListenClientUrls, &cfg.AdvertiseClientUrls}},
		{*peerURL, []*[]url.URL{&cfg.ListenPeerUrls, &cfg.AdvertisePeerUrls}},
	} {
		parsed, err := url.Parse(u.raw)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd member:", err)
			return 2
		}
		for _, dst := range u.dsts {
			*dst = []url.URL{*parsed}
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd member:", err)
		return 1
	}
	defer e.Close()
	select {
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd member:", err)
		return 1
	case <-sigs:
		return 0
	}
}

// etcdCluster is three etcd members, each a child process, and a client
// of all three.
type etcdCluster struct {
	members   []*child
	endpoints []string // client URLs
	client    *clientv3.Client
}

// startEtcd starts three members under dir and waits until every one
// answers and knows the leader.
func startEtcd(ctx context.Context, procs *procSet, dir string) (*etcdCluster, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	const n = 3
	var names, peers, clients []string
	for i := range n {
		names = append(names, fmt.Sprintf("m%d", i+1))
		p, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c, err := freeAddr()
		if err != nil {
			return nil, err
		}
		peers, clients = append(peers, "http://"+p), append(clients, "http://"+c)
	}
	var initial []string
	for i := range n {
		initial = append(initial, names[i]+"="+peers[i])
	}
	ec := &etcdCluster{endpoints: clients}
	for i := range n {
		m, err := procs.start("etcd member "+names[i], self, memberCommand,
			"-name", names[i], "-dir", filepath.Join(dir, names[i]),
			"-client-url", clients[i], "-peer-url", peers[i], "-initial-cluster", strings.Join(initial, ","))
		if err != nil {
			return nil, err
		}
		ec.members = append(ec.members, m)
	}
	ec.client, err = clientv3.New(clientv3.Config{Endpoints: clients, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	if err := ec.waitReady(ctx); err != nil {
		ec.client.Close()
		return nil, err
	}
	return ec, nil
}

// waitReady polls every member's status until each names a leader.
func (ec *etcdCluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		var notReady error
		for i, ep := range ec.endpoints {
			if err := ec.members[i].alive(); err != nil {
				return err
			}
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			st, err := ec.client.Status(sctx, ep)
			scancel()
			switch {
			case err != nil:
				notReady = fmt.Errorf("etcd member at %s: %w", ep, err)
			case st.Leader == 0:
				notReady = fmt.Errorf("etcd member at %s knows no leader", ep)
			}
		}
		if notReady == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd not ready within %v: %w", startTimeout, errors.Join(ctx.Err(), notReady))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pids are the members' process IDs.
func (ec *etcdCluster) pids() []int { return pidsOf(ec.members) }

// alive reports the first member found dead.
func (ec *etcdCluster) alive() error { return firstDead(ec.members) }

// put and get are the benchmark's requests to etcd: a plain Put, and a
// Get with clientv3's defaults, which is linearizable (serializable=false:
// the member confirms its leadership through ReadIndex before reading).
func (ec *etcdCluster) put(ctx context.Context, key, value []byte) error {
	_, err := ec.client.Put(ctx, string(key), string(value))
	return err
}

func (ec *etcdCluster) get(ctx context.Context, key []byte) error {
	resp, err := ec.client.Get(ctx, string(key))
	if err != nil {
		return err
	}
	if resp.Count == 0 {
		return errMiss
	}
	return nil
}
