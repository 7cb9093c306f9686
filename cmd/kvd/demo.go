package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/records"
)

// MaxDemoNodes bounds kvd demo: every node runs in this one process.
const MaxDemoNodes = 9

func demoCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "start a local cluster of N nodes in this process, on free loopback ports",
		Description: `Like cockroach demo: a throwaway cluster to try kvctl against. Node 1 founds
the cluster and the others join it; data lives in a temporary directory
(removed on exit) unless --data-dir is given. Ctrl-C drains and stops every
node.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Usage: "number of nodes, 1 to 9", Value: 3},
			&cli.StringFlag{Name: "data-dir", Usage: "keep the nodes' data under this directory"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "warn"},
			&cli.BoolFlag{Name: "enable-pprof", Usage: "serve Go's profiles under /debug/pprof/ on every node's address (one process: each shows all nodes)"},
		},
		Action: func(c *cli.Context) error { return demo(c, stdout, stderr) },
	}
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func demo(c *cli.Context, stdout, stderr io.Writer) error {
	count := c.Int("nodes")
	if count < 1 || count > MaxDemoNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", count, MaxDemoNodes)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	root := c.String("data-dir")
	if root == "" {
		dir, err := os.MkdirTemp("", "kvd-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		root = dir
	}

	var nodes []*runningNode
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].close()
		}
	}()
	var endpoints []string
	var seed string
	for i := 1; i <= count; i++ {
		listen, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		gossip, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		cfg := config{
			nodeID: fmt.Sprintf("n%d", i), dataDir: filepath.Join(root, fmt.Sprintf("n%d", i)),
			listen: listen, advertise: listen, gossip: gossip, zone: fmt.Sprintf("zone-%d", i), weight: 1,
			logLevel: level, drainTimeout: defaultDrainTimeout,
			antiEntropyInterval: eventual.DefaultAntiEntropyInterval, hintWindow: records.DefaultMaxHintAge,
			deadAfter: kv.DefaultDeadAfter, enablePprof: c.Bool("enable-pprof"),
		}
		if seed != "" {
			cfg.join = []string{seed}
		}
		n, err := startNode(cfg, newLogger(cfg, stderr))
		if err != nil {
			return fmt.Errorf("node %s: %w", cfg.nodeID, err)
		}
		nodes = append(nodes, n)
		if seed == "" {
			seed = n.gossip.LocalAddr()
		}
		endpoints = append(endpoints, n.addr)
		fmt.Fprintf(stdout, "node n%d: api %s, gossip %s, zone %s, data %s\n", i, n.addr, cfg.gossip, cfg.zone, cfg.dataDir)
	}
	fmt.Fprintf(stdout, "\nA %d-node quorumkv cluster is running. Try:\n\n", count)
	eps := strings.Join(endpoints, ",")
	fmt.Fprintf(stdout, "  export KVCTL_ENDPOINTS=%s\n", eps)
	fmt.Fprintf(stdout, "  kvctl keyspace create orders --mode raft --replicas %d\n", min(count, 3))
	fmt.Fprintf(stdout, "  kvctl -k orders put phone 'for sale' && kvctl -k orders cas phone alice --expect 'for sale'\n")
	fmt.Fprintf(stdout, "  kvctl cluster ranges --all\n\nConsole: http://%s/   Ctrl-C stops the cluster.\n", endpoints[0])

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	failed := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { failed <- <-n.failed }()
	}
	select {
	case err := <-failed:
		return err
	case <-sigs:
	}
	fmt.Fprintln(stdout, "stopping the cluster")
	// Every node stops, at once: leaderships have nowhere to go.
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.drain(true) })
	}
	wg.Wait()
	return nil
}
