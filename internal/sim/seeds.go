package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Environment variables read by the test helpers.
const (
	// EnvSeeds overrides how many seeds RunSeeds and Seeds use:
	// QKV_SIM_SEEDS=10000 for a long nightly search.
	EnvSeeds = "QKV_SIM_SEEDS"
	// EnvSeed runs exactly one seed: the rerun of a failure.
	EnvSeed = "QKV_SIM_SEED"
	// EnvSeedStart is the first seed (default 1). Seeds are consecutive, so
	// a search can continue where the last one stopped.
	EnvSeedStart = "QKV_SIM_SEED_START"
	// EnvCanarySeeds overrides how many seeds a canary hunt may use
	// (CanarySeeds).
	EnvCanarySeeds = "QKV_CANARY_SEEDS"
	// EnvArtifacts is the directory failure artifacts (full traces,
	// porcupine visualizations) are written to. Default:
	// $TMPDIR/qkv-sim-artifacts.
	EnvArtifacts = "QKV_SIM_ARTIFACTS"
)

// onlySeed returns QKV_SIM_SEED's seed, if it is set.
func onlySeed(t testing.TB) (uint64, bool) {
	t.Helper()
	v := os.Getenv(EnvSeed)
	if v == "" {
		return 0, false
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("sim: bad %s=%q: %v", EnvSeed, v, err)
	}
	return seed, true
}

// CanarySeeds returns the seeds a hunt for a planted bug tries, in order
// until one catches it: QKV_SIM_SEED alone if set, else 1 to maxSeeds, or
// to QKV_CANARY_SEEDS if set. A malformed variable fails the test.
func CanarySeeds(t testing.TB, maxSeeds int) []uint64 {
	t.Helper()
	if seed, ok := onlySeed(t); ok {
		return []uint64{seed}
	}
	if v := os.Getenv(EnvCanarySeeds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("sim: bad %s=%q: want a positive count", EnvCanarySeeds, v)
		}
		maxSeeds = n
	}
	seeds := make([]uint64, maxSeeds)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	return seeds
}

// Seeds returns the seeds a test should run: QKV_SIM_SEED alone if set,
// else QKV_SIM_SEEDS (or defaultCount, a tenth of it under -short)
// consecutive seeds from QKV_SIM_SEED_START (or 1). A malformed variable
// fails the test.
func Seeds(t testing.TB, defaultCount int) []uint64 {
	t.Helper()
	if seed, ok := onlySeed(t); ok {
		return []uint64{seed}
	}
	count := defaultCount
	if testing.Short() {
		count = max(1, defaultCount/10)
	}
	if v := os.Getenv(EnvSeeds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("sim: bad %s=%q: want a positive count", EnvSeeds, v)
		}
		count = n
	}
	start := uint64(1)
	if v := os.Getenv(EnvSeedStart); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("sim: bad %s=%q: %v", EnvSeedStart, v, err)
		}
		start = n
	}
	seeds := make([]uint64, count)
	for i := range seeds {
		seeds[i] = start + uint64(i)
	}
	return seeds
}

// RunSeeds runs fn as a parallel subtest "seed=N" for each seed of
// Seeds(t, defaultCount). A failing seed logs the command that reruns it
// alone; build the Sim with NewForTest so it also logs the trace. fn runs
// in parallel with other seeds: it must build everything from its seed
// (NewForTest(t, Config{Seed: seed})), share nothing with other seeds, and
// not call t.Setenv.
func RunSeeds(t *testing.T, defaultCount int, fn func(t *testing.T, seed uint64)) {
	t.Helper()
	for _, seed := range Seeds(t, defaultCount) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("sim: seed %d failed; rerun it with:\n\t%s", seed, RerunCommand(t, seed))
				}
			})
			fn(t, seed)
		})
	}
}

// RerunCommand returns the shell command that reruns t's test with only
// seed. Called on a "seed=N" subtest of RunSeeds it names the parent test.
func RerunCommand(t testing.TB, seed uint64) string {
	parts := strings.Split(t.Name(), "/")
	if last := parts[len(parts)-1]; strings.HasPrefix(last, "seed=") && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return fmt.Sprintf("%s=%d go test %s -run '%s' -count=1 -v", EnvSeed, seed, packagePattern(), strings.Join(parts, "/"))
}

// packagePattern returns the package under test as a path relative to the
// module root ("./internal/sim"); go test runs a test binary in its
// package's directory.
func packagePattern() string {
	wd, err := os.Getwd()
	if err != nil {
		return "./..."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil || rel == "." {
				return "."
			}
			return "./" + filepath.ToSlash(rel)
		}
		if filepath.Dir(dir) == dir {
			return "./..."
		}
	}
}

// NewForTest returns New(cfg) wired to t: if t fails, the end of the trace
// is logged and the whole kept trace written to an artifact file.
func NewForTest(t testing.TB, cfg Config) *Sim {
	s := New(cfg)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		msg := fmt.Sprintf("sim: seed %d, t=%v, %d steps; last trace events:\n%s", s.seed, s.now, s.steps, s.trace.Tail(60))
		path, err := writeArtifact(t, "trace.txt", func(f *os.File) error {
			_, err := s.trace.WriteTo(f)
			return err
		})
		if err != nil {
			msg += fmt.Sprintf("could not write the full trace: %v", err)
		} else {
			msg += "full trace: " + path
		}
		t.Log(msg)
	})
	return s
}

// ArtifactDir returns the directory for failure artifacts, creating it:
// $QKV_SIM_ARTIFACTS, or $TMPDIR/qkv-sim-artifacts. Not t.TempDir(): that
// is deleted when the test ends, and the path in a failure message must
// still work afterwards.
func ArtifactDir() (string, error) {
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "qkv-sim-artifacts")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// writeArtifact writes <test name>.<suffix> into ArtifactDir and returns
// its path.
func writeArtifact(t testing.TB, suffix string, write func(*os.File) error) (string, error) {
	dir, err := ArtifactDir()
	if err != nil {
		return "", err
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r == '/':
			return '.'
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '=', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, t.Name())
	path := filepath.Join(dir, name+"."+suffix)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := write(f); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}
