package kv

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/store"
)

// The node layer's canaries (kv/store/canary.go): each planted bug must be caught
// by the whole-node simulator's checks (linearizability, exactly-once,
// one leader per term, replicas that agree) within a bounded number of
// seeds. The test logs the first seed that catches it (seeds 1, 2, 1, 1
// and 6 on 2026-12-06).
// QKV_CANARY_SEEDS=n changes the bound; QKV_SIM_SEED=n tries one seed.
func TestNodeCanaries(t *testing.T) {
	for _, c := range []struct {
		name  string
		bug   store.Canary
		shape simShape
		seeds int
		// slow: the hunt takes a minute without the race detector and
		// more than ten under it, so it runs only without (the race
		// step checks for data races, not for canaries).
		slow bool
	}{
		{"ack-before-sync", store.Canary{AckBeforeSync: true}, simShape{nodes: 3, crashAll: true}, 40, false},
		{"skip-read-barrier", store.Canary{SkipReadBarrier: true}, simShape{nodes: 3}, 40, false},
		{"read-any-replica", store.Canary{ReadAnyReplica: true}, simShape{nodes: 3}, 40, false},
		{"decide-cas-at-propose", store.Canary{CasAtPropose: true}, simShape{nodes: 3}, 40, false},
		{"no-dedup", store.Canary{NoDedup: true}, simShape{nodes: 3}, 40, false},
		{"all-eager", store.Canary{AllEager: true}, simShape{nodes: 3, crashAll: true, syncCrashes: true}, 40, true},
		// leaseKeptOnQuiesce needs an idle range to quiesce with its lease,
		// its leader's node cut off, a write through the new leader and a
		// read at the old one: seed 35 lined that up when paxos ranges had
		// no leases, 300 seeds did not once they had (every schedule
		// changed), so TestCanaryLeaseKeptOnQuiesce replays it, in a raft
		// and a paxos keyspace.
		// syncedBeforeSync needs a leader that counted its unsynced copy,
		// then crashed, and the one follower that holds the entry outvoted:
		// 200 seeds of crashes before syncs did not line that up, so
		// TestLeaderCountsItsCopyOnlyOnceSynced holds a leader's sync and
		// checks the answer.
		// waitersByID needs an old entry with a new request's ID to commit
		// after a restart: 40 random seeds of crashes right after elections
		// did not line that up, so TestCanaryWaitersByID replays it.
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.slow && raceEnabled {
				t.Skip("a minute without the race detector, more than ten with it: run without -race")
			}
			huntCanary(t, c.seeds, func(tb testing.TB, seed uint64) {
				sc := newSimClusterWith(tb, seed, c.shape.nodes, simKeyspaces, func(sc *simCluster) { sc.canary = c.bug })
				sc.runWorkload(c.shape)
				sc.check()
			})
		})
	}
}

// huntCanary runs run on seeds 1, 2, ... until one fails, and passes then
// with the first catching seed logged; it fails if maxSeeds seeds catch
// nothing. A panic (a core refusing what the planted bug did to it) is
// logged, not counted as a catch: the point is that the checks see it.
func huntCanary(t *testing.T, maxSeeds int, run func(tb testing.TB, seed uint64)) {
	seeds := sim.CanarySeeds(t, maxSeeds)
	panics := 0
	for _, seed := range seeds {
		ct := &catchT{T: t}
		ct.run(func() { run(ct, seed) })
		switch {
		case ct.panicked != "":
			panics++
			t.Logf("seed %d: panic (not counted as a catch): %.300s", seed, ct.panicked)
		case ct.failed:
			t.Logf("caught by seed %d (after %d panics): %.2000s", seed, panics, strings.Join(ct.msgs, "\n"))
			return
		}
	}
	t.Fatalf("the planted bug went unnoticed for %d seeds (%d panics)", len(seeds), panics)
}

// catchT is a testing.TB that records a failure instead of failing the
// test, so that a seed's failure is the canary hunt's success. Fatal ends
// the seed's goroutine, as it ends a test's.
type catchT struct {
	*testing.T
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
	panicked string
}

func (c *catchT) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				c.panicked = fmt.Sprint(r)
			}
		}()
		f()
	}()
	<-done
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

func (c *catchT) record(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = true
	c.msgs = append(c.msgs, msg)
}

func (c *catchT) Helper()                   {}
func (c *catchT) Log(args ...any)           {}
func (c *catchT) Logf(string, ...any)       {}
func (c *catchT) Fail()                     { c.record("failed") }
func (c *catchT) Error(args ...any)         { c.record(fmt.Sprint(args...)) }
func (c *catchT) Errorf(f string, a ...any) { c.record(fmt.Sprintf(f, a...)) }
func (c *catchT) FailNow()                  { c.record("failed"); runtime.Goexit() }
func (c *catchT) Fatal(args ...any)         { c.record(fmt.Sprint(args...)); runtime.Goexit() }
func (c *catchT) Fatalf(f string, a ...any) { c.record(fmt.Sprintf(f, a...)); runtime.Goexit() }
func (c *catchT) Cleanup(f func())          { c.cleanups = append(c.cleanups, f) }
func (c *catchT) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}
