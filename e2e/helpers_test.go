package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	// The tests run binaries built from these packages; importing them
	// makes "go test" rerun the tests when they change instead of
	// replaying a cached result. (Changes to cmd/ alone need -count=1.)
	"github.com/quorumkv/quorumkv/certs"
	_ "github.com/quorumkv/quorumkv/client"
	_ "github.com/quorumkv/quorumkv/kv"
	_ "github.com/quorumkv/quorumkv/membership"
)

// bin holds the binaries built once for the package's tests.
var bin struct{ kvd, kvctl string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qkv-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.kvd, bin.kvctl = filepath.Join(dir, "kvd"), filepath.Join(dir, "kvctl")
	for _, b := range []struct{ out, pkg string }{{bin.kvd, "../cmd/kvd"}, {bin.kvctl, "../cmd/kvctl"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pickAddr is how startKVD picks an address: freeAddr (a test of the
// retry replaces it).
var pickAddr = freeAddr

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// addrs returns the nodes' API addresses, for clients' endpoints.
func addrs(nodes []*kvd) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.addr
	}
	return out
}

// kvd is one kvd process.
type kvd struct {
	t       testing.TB
	dataDir string
	addr    string
	gossip  string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	exited  chan struct{} // closed once the process is gone
	waitErr error         // cmd.Wait's result, once exited is closed
	killed  bool          // by the test, through kill or stop
	// certsDir is the node's --certs-dir: it serves TLS, and kvctl and
	// the readiness checks use the directory's CA and root's certificate.
	certsDir string
}

// httpClient returns a client for the node's HTTP routes: over TLS with
// root's certificate if the node serves TLS.
func (k *kvd) httpClient() (*http.Client, string) {
	if k.certsDir == "" {
		return http.DefaultClient, "http://" + k.addr
	}
	b, err := certs.Load(k.certsDir)
	if err != nil {
		k.t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: b.ClientTLS("root")}}, "https://" + k.addr
}

// startKVD starts a node on free loopback addresses and waits until it
// is ready. freeAddr's port is free when it looks, not when kvd binds it:
// another process, or an outgoing connection given it as its local port,
// may take it in between. A new node (dataDir did not exist) that exits
// on such a bind is started again on a fresh data dir and new addresses,
// at most three times in all.
func startKVD(t testing.TB, dataDir string, extra ...string) *kvd {
	t.Helper()
	_, err := os.Stat(dataDir)
	fresh := errors.Is(err, os.ErrNotExist)
	for attempt := 1; ; attempt++ {
		k := launchKVD(t, dataDir, pickAddr(t), pickAddr(t), extra...)
		err := k.readyWithin(20 * time.Second)
		if err == nil {
			return k
		}
		if attempt < 3 && fresh && k.lostBind() {
			t.Logf("kvd could not bind an address it was given (attempt %d), starting it again on new ones", attempt)
			k.killed = true // not a failure to report
			if err := os.RemoveAll(dataDir); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Fatal(err)
	}
}

// lostBind says whether the process exited because an address it was
// to listen on was taken.
func (k *kvd) lostBind() bool {
	select {
	case <-k.exited:
		return strings.Contains(k.log.String(), "address already in use")
	default:
		return false
	}
}

// restartKVD starts a node again on its data dir and its old addresses,
// as a restarted server with the same configuration would.
func restartKVD(t testing.TB, old *kvd, extra ...string) *kvd {
	t.Helper()
	return startKVDAt(t, old.dataDir, old.addr, old.gossip, extra...)
}

func startKVDAt(t testing.TB, dataDir, addr, gossip string, extra ...string) *kvd {
	t.Helper()
	k := launchKVD(t, dataDir, addr, gossip, extra...)
	k.waitReady()
	return k
}

// launchKVD starts a node and returns at once, ready or not: a node of a
// cluster restarted whole is ready only once a quorum of the others is up.
func launchKVD(t testing.TB, dataDir, addr, gossip string, extra ...string) *kvd {
	t.Helper()
	k := &kvd{t: t, dataDir: dataDir, addr: addr, gossip: gossip, log: &bytes.Buffer{}, exited: make(chan struct{})}
	if i := slices.Index(extra, "--certs-dir"); i >= 0 && i+1 < len(extra) {
		k.certsDir = extra[i+1]
	}
	args := append([]string{"--node-id", "n1", "--data-dir", dataDir, "--listen", k.addr, "--gossip", k.gossip}, extra...)
	k.cmd = exec.Command(bin.kvd, args...)
	k.cmd.Stdout, k.cmd.Stderr = k.log, k.log
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.waitErr = k.cmd.Wait(); close(k.exited) }()
	t.Cleanup(func() {
		// A node that died on its own is the likeliest cause of a
		// failure: its last words are worth more than the test's.
		select {
		case <-k.exited:
			if t.Failed() && !k.killed {
				t.Logf("kvd %s exited on its own (%v); the end of its log:\n%s", k.addr, k.waitErr, tail(k.log.String(), 16<<10))
			}
		default:
		}
		k.kill()
	})
	return k
}

func (k *kvd) waitReady() {
	k.t.Helper()
	k.waitReadyWithin(20 * time.Second)
}

// waitReadyWithin waits for /readyz to answer 200 for at most d.
func (k *kvd) waitReadyWithin(d time.Duration) {
	k.t.Helper()
	if err := k.readyWithin(d); err != nil {
		k.t.Fatal(err)
	}
}

// readyWithin waits for /readyz to answer 200 for at most d, and says why
// it did not.
func (k *kvd) readyWithin(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-k.exited:
			return fmt.Errorf("kvd exited before it was ready: %v\n%s", k.waitErr, k.log)
		default:
		}
		cl, base := k.httpClient()
		bounded := *cl
		bounded.Timeout = time.Second // whatever holds the address may never answer
		resp, err := bounded.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("kvd at %s not ready after %v\n%s", k.addr, d, k.log)
}

// stop sends SIGTERM and waits for a clean exit: the drain path.
func (k *kvd) stop() {
	k.t.Helper()
	k.killed = true
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		k.t.Fatal(err)
	}
	select {
	case <-k.exited:
		if k.waitErr != nil {
			k.t.Fatalf("kvd exited with %v after SIGTERM\n%s", k.waitErr, k.log)
		}
	case <-time.After(30 * time.Second):
		k.t.Fatalf("kvd did not stop within 30s of SIGTERM\n%s", k.log)
	}
}

// kill ends the process if it still runs (it is ours: we started it).
func (k *kvd) kill() {
	k.killed = true
	select {
	case <-k.exited:
	default:
		k.cmd.Process.Kill()
		<-k.exited
	}
}

// kvctl runs kvctl against the node and returns its exit code and output.
func (k *kvd) kvctl(stdin string, args ...string) (int, string, string) {
	k.t.Helper()
	global := []string{"--endpoints", k.addr}
	if k.certsDir != "" {
		global = append(global, "--certs-dir", k.certsDir)
	}
	cmd := exec.Command(bin.kvctl, append(global, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		k.t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// must runs kvctl and fails the test unless it exits with code.
func (k *kvd) must(code int, args ...string) string {
	k.t.Helper()
	got, out, errOut := k.kvctl("", args...)
	if got != code {
		k.t.Fatalf("kvctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errOut)
	}
	return out + errOut
}

// tail returns the last n bytes of s, from a line start where it can.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
