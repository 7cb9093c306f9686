package replsim

import (
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// RunSeeds runs sc on proto for sim.Seeds(t, defaultSeeds) seeds, each a
// parallel subtest; a failing seed prints the command that reruns it.
func RunSeeds(t *testing.T, proto Protocol, sc Scenario, defaultSeeds int) {
	sim.RunSeeds(t, DefaultSeeds(defaultSeeds), func(t *testing.T, seed uint64) {
		if f := Run(t, proto, sc, seed); f != nil {
			t.Fatalf("%s %s seed %d: %v", proto.Name, sc.Name, seed, f)
		}
	})
}

// DefaultSeeds scales a suite's default seed count to the build: a tenth
// of it under the race detector.
func DefaultSeeds(n int) int {
	if raceEnabled {
		return max(1, n/10)
	}
	return n
}

// EnvCanarySeeds overrides how many seeds a canary hunt may use.
const EnvCanarySeeds = sim.EnvCanarySeeds

// CatchCanary runs the scenarios, seed after seed, with a planted bug
// (set up by proto), until a seed fails a safety check: an invariant or
// linearizability. It passes then and logs the first catching seed; it
// fails if maxSeeds seeds catch nothing. A panic of a core or of the
// harness does not count as a catch (it is logged): the point is that the
// simulator's checks see the bug.
func CatchCanary(t *testing.T, proto Protocol, scs []Scenario, maxSeeds int) {
	t.Helper()
	seeds := sim.CanarySeeds(t, maxSeeds)
	other := 0
	for _, seed := range seeds {
		for _, sc := range scs {
			f, panicked := runRecover(proto, sc, seed)
			switch {
			case panicked != "":
				t.Logf("seed %d on %s: panic (not counted as a catch): %.300s", seed, sc.Name, panicked)
			case f.Safety():
				t.Logf("%s caught by seed %d on %s (after %d other failures): %v\nrerun: %s",
					t.Name(), seed, sc.Name, other, f, sim.RerunCommand(t, seed))
				return
			case f != nil:
				other++
			}
		}
	}
	t.Fatalf("%s: no safety violation in %d seeds of %d scenarios (%d non-safety failures)", proto.Name, len(seeds), len(scs), other)
}

func runRecover(proto Protocol, sc Scenario, seed uint64) (f *Failure, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	return Run(nil, proto, sc, seed), ""
}
