package install

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labelRun marks the image the test builds; the compose project's
// resources carry com.docker.compose.project=<project> (compose's own).
const labelRun = "io.quorumkv.install.run"

// TestCompose builds the image from the repository's Dockerfile, as
// docs/install.md does, brings up compose.yaml's three nodes, checks that
// they form one cluster and that a put through each node reads back
// through every node, then removes the project (containers, network,
// volumes) and the image.
func TestCompose(t *testing.T) {
	if os.Getenv("QKV_DOCKER") != "1" {
		t.Skip("needs Docker and docker-compose; run it with: QKV_DOCKER=1 go test -count=1 -run TestCompose ./e2e/install/")
	}
	compose := composeCommand(t)
	root := moduleRoot(t)
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	image := "quorumkv/kvd:install-test-" + run
	project := "qkv-install-" + run
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// The documented build: static binaries, then docker build with the
	// Dockerfile (and .dockerignore) of the repository. The binaries go to
	// a directory of the test's, not the shared work tree.
	build := t.TempDir()
	for _, cmd := range []string{"kvd", "kvctl"} {
		sh(t, ctx, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(build, cmd), "./cmd/"+cmd)
	}
	copyFile(t, filepath.Join(root, ".dockerignore"), filepath.Join(build, ".dockerignore"))
	t.Cleanup(func() {
		// Only what this run made: the image by its run label.
		out, _ := exec.Command("docker", "images", "-q", "--filter", "label="+labelRun+"="+run).Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command("docker", "rmi", "-f", id).Run()
		}
	})
	sh(t, ctx, build, nil, "docker", "build", "-q", "--label", labelRun+"="+run, "-t", image, "-f", filepath.Join(root, "Dockerfile"), build)
	if out := output(t, ctx, "go", "version", "-m", filepath.Join(build, "kvd")); !strings.Contains(out, "CGO_ENABLED=0") {
		t.Errorf("go version -m kvd does not show CGO_ENABLED=0:\n%s", out)
	}

	// The image alone: --version works; serving needs a security choice.
	if out := output(t, ctx, "docker", "run", "--rm", "--label", labelRun+"="+run, image, "--version"); !strings.HasPrefix(out, "kvd version ") {
		t.Errorf("docker run IMAGE --version: %q", out)
	}
	c := exec.CommandContext(ctx, "docker", "run", "--rm", "--label", labelRun+"="+run, image)
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "--insecure") || !strings.Contains(string(out), "--certs-dir") {
		t.Errorf("docker run IMAGE with no flags: %v, %q; want an error naming --certs-dir and --insecure", err, out)
	}

	secret := filepath.Join(t.TempDir(), "cluster-secret")
	sh(t, ctx, root, nil, filepath.Join(build, "kvd"), "cert", "create-cluster-secret", secret)
	port := strconv.Itoa(freePort(t))
	env := []string{"QKV_IMAGE=" + image, "QKV_PORT=" + port, "QKV_CLUSTER_SECRET=" + secret}
	up := append(compose, "-f", filepath.Join(root, "compose.yaml"), "-p", project)
	t.Cleanup(func() {
		c := exec.Command(up[0], append(up[1:], "down", "-v", "--remove-orphans", "--timeout", "5")...)
		c.Env = append(os.Environ(), env...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	sh(t, ctx, root, env, up[0], append(up[1:], "up", "-d")...)
	logs := func() string {
		c := exec.Command(up[0], append(up[1:], "logs", "--no-color", "--tail", "30")...)
		c.Env = append(os.Environ(), env...)
		out, _ := c.CombinedOutput()
		return string(out)
	}
	kvctl := func(node string, args ...string) (string, error) {
		a := append(append([]string{}, up[1:]...), "exec", "-T", node, "/kvctl", "--endpoints", node+":7070", "--timeout", "10s")
		c := exec.CommandContext(ctx, up[0], append(a, args...)...)
		c.Env = append(os.Environ(), env...)
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		err := c.Run()
		if err != nil {
			err = fmt.Errorf("kvctl %v on %s: %w: %s", args, node, err, errOut.String())
		}
		return out.String(), err
	}

	// Three members, alive, with catalog IDs, as every node sees them.
	waitMembers := func(when string) {
		t.Helper()
		for _, node := range []string{"n1", "n2", "n3"} {
			var last string
			deadline := time.Now().Add(3 * time.Minute)
			for {
				out, err := kvctl(node, "cluster", "members", "-o", "json")
				last = fmt.Sprint(out, err)
				if err == nil && aliveMembers(t, out) == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s does not see 3 alive members after 3 minutes; last: %s\nlogs:\n%s", when, node, last, logs())
				}
				time.Sleep(time.Second)
			}
		}
	}
	waitMembers("up")
	// A put through each node reads back through every node.
	for _, via := range []string{"n1", "n2", "n3"} {
		if _, err := kvctl(via, "put", "key-"+via, "value-"+via); err != nil {
			t.Fatalf("%v\nlogs:\n%s", err, logs())
		}
	}
	readAll := func(when string) {
		t.Helper()
		for _, via := range []string{"n1", "n2", "n3"} {
			for _, from := range []string{"n1", "n2", "n3"} {
				out, err := kvctl(via, "get", "key-"+from)
				if err != nil || strings.TrimSpace(out) != "value-"+from {
					t.Errorf("%s: get key-%s through %s: %q, %v", when, from, via, out, err)
				}
			}
		}
	}
	readAll("up")
	// From the host, through n1's published port.
	hostKvctl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, filepath.Join(build, "kvctl"), append([]string{"--endpoints", "127.0.0.1:" + port, "--timeout", "10s"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := hostKvctl("put", "hello", "world"); err != nil {
		t.Errorf("kvctl put from the host: %v: %s", err, out)
	}
	if out, err := hostKvctl("get", "key-n3"); err != nil || out != "value-n3" {
		t.Errorf("kvctl get from the host: %q, %v", out, err)
	}

	// down without -v keeps the volumes: up again, the data is there.
	sh(t, ctx, root, env, up[0], append(up[1:], "down", "--timeout", "30")...)
	sh(t, ctx, root, env, up[0], append(up[1:], "up", "-d")...)
	waitMembers("after down and up")
	readAll("after down and up")
}

// aliveMembers counts the alive members with a catalog ID in kvctl
// cluster members -o json.
func aliveMembers(t *testing.T, out string) int {
	var resp struct {
		Members []struct {
			ID    json.Number `json:"id"`
			State string      `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return 0
	}
	n := 0
	for _, m := range resp.Members {
		if m.State == "alive" && m.ID != "" && m.ID != "0" {
			n++
		}
	}
	return n
}

// composeCommand is docker compose (the plugin) or docker-compose,
// whichever answers.
func composeCommand(t *testing.T) []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}
	}
	t.Fatal("QKV_DOCKER=1, but neither docker compose nor docker-compose runs")
	return nil
}

// sh runs a command in dir with env added, failing the test with its
// output if it fails.
func sh(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) {
	t.Helper()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("not inside the quorumkv module: go env GOMOD %q, %v", gomod, err)
	}
	return filepath.Dir(gomod)
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort is a loopback port nothing listens on, for n1's published API.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// output runs a command and returns its combined output, failing the
// test if it fails.
func output(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
