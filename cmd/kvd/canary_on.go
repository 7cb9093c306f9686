//go:build qkv_canary

package main

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/kv"
)

// canaries are the bugs a canary build plants when KVD_TEST_CANARY names
// them (comma-separated), for the container fault suite to catch: a
// suite that cannot fail proves nothing. store.Canary and eventual.Hooks
// say what each does.
var canaries = map[string]func(*testHooks){
	"skip-read-barrier":   func(h *testHooks) { h.canary.SkipReadBarrier = true },
	"read-any-replica":    func(h *testHooks) { h.canary.ReadAnyReplica = true },
	"cas-at-propose":      func(h *testHooks) { h.canary.CasAtPropose = true },
	"no-dedup":            func(h *testHooks) { h.canary.NoDedup = true },
	"ack-before-sync":     func(h *testHooks) { h.canary.AckBeforeSync = true },
	"cas-ignore-accepted": func(h *testHooks) { h.eventual.IgnoreAccepted = true },
}

// loadCanary plants the bugs KVD_TEST_CANARY names. Test-only: release
// builds plant none.
func loadCanary(h *testHooks, logger *slog.Logger) error {
	names := os.Getenv(canaryEnv)
	if names == "" {
		return nil
	}
	for _, name := range strings.Split(names, ",") {
		plant, ok := canaries[strings.TrimSpace(name)]
		if !ok {
			known := make([]string, 0, len(canaries))
			for k := range canaries {
				known = append(known, k)
			}
			slices.Sort(known)
			return fmt.Errorf("%s=%s: unknown canary %q (%s)", canaryEnv, names, name, strings.Join(known, ", "))
		}
		plant(h)
	}
	ev := h.eventual
	h.plantNode = func(cfg *kv.NodeConfig) { kv.PlantEventualCanary(cfg, ev) }
	logger.Warn("TEST-ONLY CANARY BUILD: this kvd has bugs planted on purpose", "canaries", names)
	return nil
}
