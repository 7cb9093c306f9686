package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every container, network and image the harness makes carries two
// labels: labelRun names the run (one test binary's life), labelPID the
// process that made it. Cleanup removes a run's resources by its label;
// RemoveOrphans removes those of runs whose process is gone (a run killed
// with SIGKILL, which no handler sees).
const (
	labelRun = "io.quorumkv.faults.run"
	labelPID = "io.quorumkv.faults.pid"
)

// dockerTimeout bounds one docker command. A docker kill of a paused
// container or a build of a 40 MB image takes seconds; one that takes
// minutes is a stuck daemon, and the test should say so.
const dockerTimeout = 2 * time.Minute

// docker runs the docker CLI and returns its trimmed standard output. A
// failure carries the command and its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Available reports why Docker cannot be used here, or nil if it can: the
// CLI must be installed and its daemon must answer.
func Available() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("no docker command: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("the Docker daemon does not answer: %w", err)
	}
	return nil
}

// labels are the docker flags that mark a resource of run.
func labels(run string) []string {
	return []string{"--label", labelRun + "=" + run, "--label", labelPID + "=" + strconv.Itoa(os.Getpid())}
}

// Cleanup removes every container, network and image of run, whatever
// state they are in. It returns the first error but tries everything.
func Cleanup(run string) error {
	return removeWhere(func(labelsOf map[string]string) bool { return labelsOf[labelRun] == run })
}

// RemoveOrphans removes the resources of earlier runs whose process is no
// longer alive: a run ended by SIGKILL, or a crash, leaves them behind.
func RemoveOrphans() error {
	return removeWhere(func(labelsOf map[string]string) bool {
		pid, err := strconv.Atoi(labelsOf[labelPID])
		return err == nil && !processAlive(pid)
	})
}

func processAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	// Signal 0 checks that the process exists; EPERM means it does, as
	// another user's.
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// removeWhere removes containers first (a network in use cannot go, nor
// an image a container runs), then networks, then images, of the
// resources labelled by the harness that match.
func removeWhere(match func(map[string]string) bool) error {
	ctx := context.Background()
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, kind := range []struct {
		list   []string
		remove []string
	}{
		{[]string{"ps", "-a"}, []string{"rm", "-f", "-v"}},
		{[]string{"network", "ls"}, []string{"network", "rm"}},
		{[]string{"images"}, []string{"rmi", "-f"}},
	} {
		args := append(append([]string{}, kind.list...), "-q", "--no-trunc", "--filter", "label="+labelRun)
		out, err := docker(ctx, args...)
		if err != nil {
			note(err)
			continue
		}
		seen := map[string]bool{}
		for _, id := range strings.Fields(out) {
			if seen[id] {
				continue // an image listed under two tags
			}
			seen[id] = true
			lbl, err := resourceLabels(ctx, id)
			if err != nil {
				note(err)
				continue
			}
			if match(lbl) {
				_, err := docker(ctx, append(append([]string{}, kind.remove...), id)...)
				note(err)
			}
		}
	}
	return first
}

// resourceLabels reads the labels of a container, network or image.
func resourceLabels(ctx context.Context, id string) (map[string]string, error) {
	out, err := docker(ctx, "inspect", "--format", `{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}`, id)
	if err != nil {
		// A network's labels are not under .Config.
		out, err = docker(ctx, "inspect", "--format", `{{range $k, $v := .Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}`, id)
		if err != nil {
			return nil, err
		}
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// dockerCombined runs the docker CLI and returns its standard output and
// error together (docker logs writes the container's stderr to its own).
func dockerCombined(ctx context.Context, args ...string) (string, error) {
	return execOut(ctx, "docker", args...)
}

// execOut runs a command with dockerTimeout and returns its combined
// output.
func execOut(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
