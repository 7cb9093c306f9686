package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// preloadAll writes keys 0 to Preload-1 into etcd and into the raft and
// paxos keyspaces, so that the gets find their keys. It is not timed; in
// the new keyspaces it also absorbs the first leader elections.
func preloadAll(ctx context.Context, cfg config, ec *etcdCluster, qc *qkvCluster) error {
	targets := []struct {
		name string
		put  func(ctx context.Context, key, value []byte) error
	}{
		{"etcd", ec.put},
		{ksRaft, func(ctx context.Context, key, value []byte) error {
			return qc.put(ctx, ksRaft, key, value, client.Quorum{})
		}},
		{ksPaxos, func(ctx context.Context, key, value []byte) error {
			return qc.put(ctx, ksPaxos, key, value, client.Quorum{})
		}},
	}
	for _, t := range targets {
		if err := preload(ctx, cfg, t.put); err != nil {
			return fmt.Errorf("preload %s: %w", t.name, err)
		}
	}
	return nil
}

// preloadTries is how often a key's write is tried before the preload
// fails: a leader election may refuse a few.
const preloadTries = 5

// preload writes keys 0 to cfg.Preload-1 through put, cfg.Clients at a
// time.
func preload(ctx context.Context, cfg config, put func(ctx context.Context, key, value []byte) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			for k := int(next.Add(1) - 1); k < cfg.Preload && ctx.Err() == nil; k = int(next.Add(1) - 1) {
				if err := putRetrying(ctx, cfg.RequestTimeout, put, keyName(k), newValue(rng, cfg.ValueBytes)); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func putRetrying(ctx context.Context, timeout time.Duration, put func(ctx context.Context, key, value []byte) error, key, value []byte) error {
	var err error
	for range preloadTries {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err = put(rctx, key, value)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("key %s: %w", key, err)
}
