package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that a node's goroutines may log into while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Every record of a founding node carries the "node" key once, in text
// and in JSON, also those in which kv/ logs a node's numeric ID (the
// founding record's "node-id").
func TestLogRecordsCarryNodeOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cfg, err := parse(t, "--node-id", "alpha", "--data-dir", dir, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
				"--log-level", "debug", "--log-format", format)
			if err != nil {
				t.Fatal(err)
			}
			var out syncBuffer
			n, err := startNode(cfg, newLogger(cfg, &out))
			if err != nil {
				t.Fatal(err)
			}
			n.close()
			founded := false
			for line := range strings.Lines(out.String()) {
				keys := nodeKeys(t, format, line)
				if keys != 1 {
					t.Errorf("%d node keys in %s", keys, line)
				}
				if strings.Contains(line, "founded a new cluster") {
					founded = true
					if !strings.Contains(line, "node-id") {
						t.Errorf("the founding record lost the node's ID: %s", line)
					}
				}
			}
			if !founded {
				t.Fatalf("no founding record in the log:\n%s", out.String())
			}
		})
	}
}

var textNodeKey = regexp.MustCompile(`(^| )node=`)

// nodeKeys counts the top-level "node" keys of one log line.
func nodeKeys(t *testing.T, format, line string) int {
	if format == "text" {
		return len(textNodeKey.FindAllString(line, -1))
	}
	// encoding/json keeps the last of two equal keys: count them with
	// the token stream.
	dec := json.NewDecoder(strings.NewReader(line))
	count, depth := 0, 0
	key := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return count
		}
		if err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				depth++
			} else {
				depth--
			}
			key = depth == 1
			continue
		case string:
			if key && depth == 1 && v == "node" {
				count++
			}
		}
		if depth == 1 {
			key = !key
		}
	}
}

// With --join to a seed nobody answers on, kvd says at info level at once
// which seeds it joins, warns of the failed attempts, and serves /livez
// (200) and /readyz (503, naming the seeds) on --listen meanwhile.
func TestJoinUnreachableSeedServesHealth(t *testing.T) {
	listen, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	closed, err := freeLoopbackAddr() // nothing listens there any more
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(t, "--node-id", "joiner", "--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", listen,
		"--gossip", "127.0.0.1:0", "--join", closed)
	if err != nil {
		t.Fatal(err)
	}
	cfg.joinTimeout = 4 * time.Second
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		n, err := startNode(cfg, newLogger(cfg, &out))
		if err == nil {
			n.close()
		}
		done <- err
	}()

	// Within 3 s: the log says so at info, /livez answers 200, /readyz
	// 503 with the reason.
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(3 * time.Second)
	var live, ready string
	for time.Now().Before(deadline) {
		live, ready = get(hc, "http://"+listen+"/livez"), get(hc, "http://"+listen+"/readyz")
		if strings.HasPrefix(live, "200") && strings.Contains(ready, "unreachable") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(live, "200") {
		t.Errorf("/livez while joining: %q, want 200", live)
	}
	if want := "503 not ready: joining: seeds " + closed + " unreachable"; !strings.HasPrefix(ready, want) {
		t.Errorf("/readyz while joining: %q, want %q", ready, want)
	}
	log := out.String()
	if !strings.Contains(log, `level=INFO msg="joining gossip" node=joiner seeds=`+closed) {
		t.Errorf("no info record of the join in the log:\n%s", log)
	}
	if !strings.Contains(log, `level=WARN msg="gossip seeds unreachable; retrying"`) || !strings.Contains(log, "connection refused") {
		t.Errorf("no warning with the error in the log:\n%s", log)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "--join") {
			t.Errorf("kvd gave up joining with %v, want an error naming --join", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kvd still joining 30 s after its join timeout")
	}
	// Five attempts or more in 4 s, but the warnings rate-limited.
	if warns := strings.Count(out.String(), "gossip seeds unreachable"); warns < 1 || warns > 2 {
		t.Errorf("%d warnings in 4 s of retries, want 1 (one per %v):\n%s", warns, joinWarnEvery, out.String())
	}
}

// get returns "STATUS BODY" of a GET, or the error.
func get(hc *http.Client, url string) string {
	resp, err := hc.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strconv.Itoa(resp.StatusCode) + " " + string(b)
}

// Bad flags are refused with an error naming the flag, before the data
// dir is created.
func TestBadFlagsLeaveNoDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": the port must be`},
		{[]string{"--listen", ":99999"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:-1"}, "--listen"},
		{[]string{"--gossip", "127.0.0.1:70000"}, "--gossip"},
		{[]string{"--gossip", ":7946"}, "--gossip"},
		{[]string{"--advertise", "0.0.0.0:7070"}, "--advertise"},
		{[]string{"--advertise", "db1:0"}, "--advertise"},
		{[]string{"--join", "10.0.0.1:7946,10.0.0.2"}, "--join"},
		{[]string{"--join", "10.0.0.1:65536"}, "--join"},
		{[]string{"--zone", "east coast"}, "--zone"},
		{[]string{"--zone", ""}, "--zone"},
		{[]string{"--node-id", "a@b"}, "--node-id"},
		{[]string{"--node-id", strings.Repeat("n", 64)}, "--node-id"},
		{[]string{"--weight", "2000000"}, "--weight"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--max-value-bytes", "1TiB"}, "--max-value-bytes"},
		{[]string{"--dead-after", "0s"}, "--dead-after"},
		{[]string{"--certs-dir", filepath.Join(t.TempDir(), "none")}, "--certs-dir"},
		{[]string{"--cluster-secret-file", filepath.Join(t.TempDir(), "none")}, "--cluster-secret-file"},
		{[]string{"--data-dir", file}, "--data-dir"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		args := append([]string{"kvd", "--node-id", "n1", "--data-dir", dir, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}, c.args...)
		// Flags are checked before anything starts: a flag that passed
		// would start a node that serves until it is signalled.
		if _, err := parse(t, args[1:]...); err == nil {
			t.Errorf("kvd %v: accepted", c.args)
			continue
		}
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("kvd %v: exit %d, %q; want exit 1 and an error naming %s", c.args, code, stderr.String(), c.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("kvd %v created the data dir %s", c.args, dir)
		}
	}
}

// A port in use is refused before the data dir is created too: kvd binds
// --listen first.
func TestListenInUseLeavesNoDataDir(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	args := []string{"kvd", "--node-id", "n1", "--data-dir", dir, "--listen", taken.Addr().String(), "--gossip", "127.0.0.1:0"}
	if code := run(args, &stdout, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), "--listen "+taken.Addr().String()) {
		t.Errorf("exit %d, %q; want exit 1 naming --listen", code, stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data dir %s was created", dir)
	}
}

// So is a gossip port in use, TCP or UDP.
func TestGossipInUseLeavesNoDataDir(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, taken := range []string{tcp.Addr().String(), udp.LocalAddr().String()} {
		dir := filepath.Join(t.TempDir(), "data")
		var stdout, stderr bytes.Buffer
		args := []string{"kvd", "--node-id", "n1", "--data-dir", dir, "--listen", "127.0.0.1:0", "--gossip", taken}
		if code := run(args, &stdout, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), "--gossip "+taken) {
			t.Errorf("--gossip %s in use: exit %d, %q; want exit 1 naming --gossip", taken, code, stderr.String())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("--gossip %s in use: the data dir %s was created", taken, dir)
		}
	}
}

// A second kvd on a data dir in use is refused with the first one's PID,
// listen address and start time, and the data dir is free again once the
// first stops.
func TestDataDirInUseNamesHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := testNode(t, "alpha", dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = testNode(t, "alpha", dir)
	if err == nil {
		t.Fatal("a second node opened a data dir in use")
	}
	want := "data dir " + dir + " is in use by kvd pid " + strconv.Itoa(os.Getpid()) + " (listening on " + first.addr + ") since "
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "use another --data-dir") {
		t.Errorf("second open: %v\nwant it to say %q", err, want)
	}
	first.close()
	if _, err := testNode(t, "alpha", dir); err != nil {
		t.Fatalf("reopening after the first stopped: %v", err)
	}
}

// The same through kvd itself: the second exits 1 with the message.
func TestDataDirInUseExit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	lock, err := lockDataDir(dir, "127.0.0.1:7070", time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"kvd", "--node-id", "n1", "--data-dir", dir, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}
	want := "kvd: data dir " + dir + " is in use by kvd pid " + strconv.Itoa(os.Getpid()) +
		" (listening on 127.0.0.1:7070) since 2026-12-06T22:00:00Z; stop it or use another --data-dir"
	if code := run(args, &stdout, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, %q\nwant exit 1 and %q", code, stderr.String(), want)
	}
}

// kvd --version and kvd version print the version and exit 0.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"kvd", "--version"}, {"kvd", "version"}} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr, nil)
		line, _ := bufio.NewReader(&stdout).ReadString('\n')
		if code != 0 || line != "kvd version "+kvdVersion()+"\n" || kvdVersion() == "" || stderr.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 0 and \"kvd version %s\"", args, code, stdout.String(), stderr.String(), kvdVersion())
		}
	}
}

// /metrics has quorumkv_gossip_members: two alive once a second node
// joins, then one alive and one left after it leaves.
func TestGossipMembersMetric(t *testing.T) {
	// Ports of their own: a node advertises its --listen address.
	listenA, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	a, err := testNode(t, "a1", filepath.Join(t.TempDir(), "a"), "--listen", listenA)
	if err != nil {
		t.Fatal(err)
	}
	listenB, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	b, err := testNode(t, "b1", filepath.Join(t.TempDir(), "b"), "--listen", listenB, "--join", a.gossip.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	waitMetric := func(want ...string) {
		t.Helper()
		hc := &http.Client{Timeout: time.Second}
		var got string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			got = get(hc, "http://"+a.addr+"/metrics")
			missing := false
			for _, w := range want {
				missing = missing || !strings.Contains(got, "\n"+w+"\n")
			}
			if !missing {
				return
			}
		}
		var lines []string
		for l := range strings.Lines(got) {
			if strings.HasPrefix(l, "quorumkv_gossip_members") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("want %v, /metrics has:\n%s", want, strings.Join(lines, ""))
	}
	waitMetric(`quorumkv_gossip_members{state="alive"} 2`, `quorumkv_gossip_members{state="dead"} 0`, `quorumkv_gossip_members{state="left"} 0`)
	if err := b.gossip.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	b.gossipLeft = true
	waitMetric(`quorumkv_gossip_members{state="alive"} 1`, `quorumkv_gossip_members{state="dead"} 0`, `quorumkv_gossip_members{state="left"} 1`)
}
