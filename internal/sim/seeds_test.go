package sim_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestSeedsFromEnvironment(t *testing.T) {
	t.Setenv(sim.EnvSeed, "")
	t.Setenv(sim.EnvSeeds, "")
	t.Setenv(sim.EnvSeedStart, "")
	want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if testing.Short() {
		want = want[:1]
	}
	if got := sim.Seeds(t, 10); !slices.Equal(got, want) {
		t.Errorf("default: %v, want %v", got, want)
	}
	t.Setenv(sim.EnvSeeds, "3")
	t.Setenv(sim.EnvSeedStart, "100")
	if got := sim.Seeds(t, 10); !slices.Equal(got, []uint64{100, 101, 102}) {
		t.Errorf("QKV_SIM_SEEDS=3 QKV_SIM_SEED_START=100: %v", got)
	}
	t.Setenv(sim.EnvSeed, "1234")
	if got := sim.Seeds(t, 10); !slices.Equal(got, []uint64{1234}) {
		t.Errorf("QKV_SIM_SEED=1234: %v", got)
	}
}

func TestRerunCommand(t *testing.T) {
	t.Run("seed=17", func(t *testing.T) {
		got := sim.RerunCommand(t, 17)
		want := `QKV_SIM_SEED=17 go test ./internal/sim -run '^TestRerunCommand$' -count=1 -v`
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
	t.Run("n=3 r=2", func(t *testing.T) {
		got := sim.RerunCommand(t, 5)
		if !strings.Contains(got, `-run '^TestRerunCommand$/^n=3_r=2$'`) {
			t.Errorf("nested test name not quoted as a -run pattern: %s", got)
		}
	})
}
