//go:build qkv_canary

package kv

import "github.com/quorumkv/quorumkv/kv/eventual"

// PlantEventualCanary plants the eventual coordinator's canaries
// (eventual.Hooks) in cfg. Only canary builds have it (the qkv_canary
// build tag, for the container fault suite, e2e/faults): release builds
// cannot set the hooks at all.
func PlantEventualCanary(cfg *NodeConfig, h eventual.Hooks) { cfg.evHooks = h }
