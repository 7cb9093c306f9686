package kv

import (
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/eventual"
)

// Canaries of the eventual coordinator: each plants one bug
// (eventual.Hooks) and runs TestSimEventual's first shape, seed after
// seed, until its checks catch it; the test fails if none of the seeds
// does. A check that cannot fail proves nothing. QKV_SIM_SEEDS=n tries
// that many seeds at most (default 20); the log names the first seed
// that caught each canary, and what it saw.
func TestSimEventualCanaries(t *testing.T) {
	for _, cn := range []struct {
		name  string
		hooks eventual.Hooks
	}{
		// Issue 10, scenario 3: the client retries, and writes again.
		{"unavailable after a partial write", eventual.Hooks{UnavailableAfterPartialWrite: true}},
		// The proposer ignores what phase 1 found accepted.
		{"swap decided without Paxos' phase-1 value", eventual.Hooks{IgnoreAccepted: true}},
		// Scenario 4: a retry is evaluated as a new request.
		{"swap history ignored", eventual.Hooks{ForgetSwaps: true}},
		// Scenario 5: a purge leaves the old accepted value behind.
		{"purge keeps the accepted value", eventual.Hooks{PurgeKeepsAccepted: true}},
	} {
		t.Run(cn.name, func(t *testing.T) {
			shape := simEvShapes[0]
			shape.hooks = cn.hooks
			seeds := sim.Seeds(t, 20)
			for _, seed := range seeds {
				var ev *simEv
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					ev = newSimEv(t, shape, true)
					ev.run(seed)
				})
				if len(ev.violations) > 0 {
					t.Logf("canary %q caught by seed %d (seeds tried: %d..%d); first of %d violations:\n%s",
						cn.name, seed, seeds[0], seed, len(ev.violations), ev.violations[0])
					return
				}
			}
			t.Errorf("canary %q not caught by seeds %d..%d", cn.name, seeds[0], seeds[len(seeds)-1])
		})
	}
}
