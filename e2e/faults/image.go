package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildTags are the build tags of the kvd the suite runs: failpoints
// compiles in the test-only failpoints (cmd/kvd/failpoints_on.go), and
// canary, in a second image, the planted bugs the suite must catch
// (cmd/kvd/canary_on.go).
const (
	TagFailpoints = "qkv_failpoints"
	TagCanary     = "qkv_canary"
)

// BuildImage builds a static kvd with the given build tags and an image
// FROM scratch holding it alone (SPEC.md: the binaries build with
// CGO_ENABLED=0), labelled as run's, and returns its name. dir is a
// scratch directory for the build context.
func BuildImage(ctx context.Context, run, dir string, tags ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kvd")
	build := exec.CommandContext(ctx, "go", "build", "-tags", strings.Join(tags, ","), "-o", bin, "./cmd/kvd")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kvd with tags %v: %w\n%s", tags, err, out)
	}
	dockerfile := "FROM scratch\nCOPY kvd /kvd\nENTRYPOINT [\"/kvd\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return "", err
	}
	name := "quorumkv-faults:" + run
	if len(tags) > 0 {
		name += "-" + strings.ReplaceAll(strings.Join(tags, "-"), "_", "-")
	}
	args := append([]string{"build", "-q", "-t", name}, labels(run)...)
	if _, err := docker(ctx, append(args, dir)...); err != nil {
		return "", err
	}
	return name, nil
}

// moduleRoot is the directory of the quorumkv module (go.mod), where
// ./cmd/kvd builds from.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the quorumkv module (go env GOMOD is %q)", gomod)
	}
	return filepath.Dir(gomod), nil
}
