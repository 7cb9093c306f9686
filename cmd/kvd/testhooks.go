package main

import (
	"log/slog"

	"github.com/quorumkv/quorumkv/kv"
	"github.com/quorumkv/quorumkv/kv/eventual"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// testHooks are what a test-only build of kvd changes in a node: the
// failpoints of the qkv_failpoints build tag (failpoints_on.go) and the
// planted bugs of the qkv_canary tag (canary_on.go). A release build has
// neither: its hooks are the zero value, which changes nothing.
type testHooks struct {
	// clock, if set, is the node's physical clock (kv.NodeConfig).
	clock func() int64
	// disk, if set, fails or delays the node's disk (storage.Options).
	disk *storage.DiskFaults
	// canary plants bugs in the store (store.StoreConfig).
	canary store.Canary
	// eventual are the eventual coordinator's canaries, which plantNode
	// plants.
	eventual eventual.Hooks
	// plantNode, if set, plants bugs in the node's configuration.
	plantNode func(*kv.NodeConfig)
	// stop stops what the hooks started; nil if nothing.
	stop func()
}

// loadTestHooks reads the hooks this build has from the environment.
func loadTestHooks(logger *slog.Logger) (testHooks, error) {
	var h testHooks
	if err := loadFailpoints(&h, logger); err != nil {
		return h, err
	}
	if err := loadCanary(&h, logger); err != nil {
		return h, err
	}
	return h, nil
}
