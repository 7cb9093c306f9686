package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromiumPath finds Debian's chromium, or skips the test, except under
// CI=true, where a missing browser fails it: CI must never skip the
// console's test silently (.ci/run installs chromium).
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is not installed, and CI=true: the console's browser test must run in CI (.ci/run installs it): %v", err)
	}
	t.Skipf("SKIPPED: chromium is not installed (apt-get install -y --no-install-recommends chromium): %v", err)
	return ""
}

// runChromium runs headless chromium on url with args, in a profile of
// its own, and returns its standard output.
func runChromium(t *testing.T, chromium, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--window-size=1400,2000", "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, chromium, append(append(base, args...), url)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(errOut.String(), 4000))
	}
	return out.String()
}

// startConsoleCluster starts n nodes as startCluster does (n1 founds the
// cluster, the others join it; node i is in zone zi), and waits until
// n1's console lists them all alive in the catalog. It leaves the
// first keyspace's creation to wait for placement.
func startConsoleCluster(t *testing.T, n int) []*kvd {
	t.Helper()
	root := t.TempDir()
	nodes := []*kvd{startKVD(t, filepath.Join(root, "n1"), "--node-id", "n1", "--zone", "z1")}
	for i := 2; i <= n; i++ {
		nodes = append(nodes, startKVD(t, filepath.Join(root, fmt.Sprintf("n%d", i)),
			"--node-id", fmt.Sprintf("n%d", i), "--zone", fmt.Sprintf("z%d", i), "--join", nodes[0].gossip))
	}
	waitFor(t, "every node alive in n1's catalog", func() bool {
		v, err := consoleJSON(nodes[0])
		return err == nil && v.Health.Nodes == n && v.Health.NodesAlive == n
	})
	return nodes
}

// consoleView is the part of /console.json the test reads.
type consoleView struct {
	Health struct {
		OK         bool `json:"ok"`
		Nodes      int  `json:"nodes"`
		NodesAlive int  `json:"nodes_alive"`
	}
}

func consoleJSON(k *kvd) (consoleView, error) {
	var v consoleView
	resp, err := http.Get("http://" + k.addr + "/console.json")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("/console.json: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// TestConsole loads the console of a 3-node cluster in a real browser,
// headless Chromium, while clients write to a raft, a paxos (zones
// geometry) and an eventual keyspace, and checks what it shows after its
// JavaScript ran: the health line, the three members, each keyspace with
// a live, non-zero request rate, the range map with a leader for every
// consensus range, and a geometry picture per keyspace. It keeps a
// screenshot in $QKV_ARTIFACTS (a temporary directory without it).
func TestConsole(t *testing.T) {
	chromium := chromiumPath(t)
	nodes := startConsoleCluster(t, 3)
	n1 := nodes[0]
	keyspaces := []struct{ name, mode string }{{"cr", "raft"}, {"cp", "paxos"}, {"ce", "eventual"}}
	waitFor(t, "keyspace cr placed on 3 nodes", func() bool {
		code, _, _ := n1.kvctl("", "keyspace", "create", "cr", "--mode", "raft", "--replicas", "3", "--ranges", "2")
		return code == 0
	})
	n1.must(0, "keyspace", "create", "cp", "--mode", "paxos", "--replicas", "3", "--ranges", "2", "--quorum", "zones")
	n1.must(0, "keyspace", "create", "ce", "--mode", "eventual", "--replicas", "3", "--ranges", "2", "--w", "2", "--r", "2")
	base := "http://" + n1.addr
	put := func(ks string, i int) error {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/kv/%s/key-%d", base, ks, i%20), strings.NewReader(strconv.Itoa(i)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("PUT %s: %s", req.URL.Path, resp.Status)
		}
		return nil
	}
	for _, ks := range keyspaces {
		waitFor(t, "a write to "+ks.name, func() bool { return put(ks.name, 0) == nil })
	}

	// Clients write to every keyspace, and read the eventual one, while
	// the browser looks.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for _, ks := range keyspaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				put(ks.name, i)
				if ks.mode == "eventual" {
					if resp, err := http.Get(fmt.Sprintf("%s/v1/kv/%s/key-%d", base, ks.name, i%20)); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	// /console.json says healthy once every range has a leader; it also
	// takes the nodes' first samples, so that the page's rates are known
	// when the browser loads it a second later.
	waitFor(t, "console.json to say healthy", func() bool {
		v, err := consoleJSON(n1)
		return err == nil && v.Health.OK
	})
	time.Sleep(1500 * time.Millisecond)

	dom := runChromium(t, chromium, base+"/", "--dump-dom")
	artifacts := os.Getenv("QKV_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "console.png")
	runChromium(t, chromium, base+"/", "--screenshot="+shot)
	if b, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("no PNG screenshot at %s: %v", shot, err)
	} else {
		t.Logf("the console's screenshot: %s (%d bytes)", shot, len(b))
	}
	if err := os.WriteFile(filepath.Join(artifacts, "console.html"), []byte(dom), 0o644); err != nil {
		t.Error(err)
	}

	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("the console does not show %s", what)
		}
	}
	// console.js ran: it swapped in the live part at least once.
	polls := regexp.MustCompile(`<body data-polls="(\d+)"`).FindStringSubmatch(dom)
	check("that its script refreshed it (body data-polls)", polls != nil && polls[1] != "0")
	health := regexp.MustCompile(`<p id="health" class="ok">healthy: 3/3 nodes alive, (\d+)/(\d+) ranges with a leader, 0 under-replicated</p>`).FindStringSubmatch(dom)
	// meta, default's 8 ranges, cr's 2 and cp's 2: ce's are eventual.
	check("the health line, healthy, with 13/13 ranges led", health != nil && health[1] == "13" && health[2] == "13")
	check("three live members", strings.Count(dom, `<tr class="member state-alive">`) == 3)
	for _, ks := range keyspaces {
		row := regexp.MustCompile(`<tr class="keyspace" data-keyspace="` + ks.name + `"><td>` + ks.name + `</td><td>` + ks.mode +
			`</td>.*?<td class="rps" title="over the last [0-9.]+ s">([0-9.]+)</td>`).FindStringSubmatch(dom)
		check(ks.name+"'s row with a non-zero request rate", row != nil && row[1] != "0")
		check(ks.name+"'s geometry picture", regexp.MustCompile(`(?s)<figure class="geometry" data-keyspace="`+ks.name+`">.*?<svg class="quorum".*?</svg>.*?tolerates \d+ failure`).MatchString(dom))
		ranges := regexp.MustCompile(`<tr class="range" data-range="\d+"><td>`+ks.name+`</td><td>\d+</td><td class="leader">([^<]*)</td>`).FindAllStringSubmatch(dom, -1)
		check(ks.name+"'s 2 ranges in the range map, without problems", len(ranges) == 2)
		for _, r := range ranges {
			if want := ks.mode != "eventual"; want != strings.HasPrefix(r[1], "n") {
				t.Errorf("%s's range map row names leader %q", ks.name, r[1])
			}
		}
	}
	check("a geometry per keyspace", strings.Count(dom, `<svg class="quorum"`) == 4)
	// cp's zones geometry on z1, z2, z3: phase 1 a node in every zone, phase 2 a whole zone (one node).
	check("cp's phase-1 quorum of all three zones", regexp.MustCompile(`(?s)data-keyspace="cp">.*?phase-1 quorum \{n\d,n\d,n\d\}.*?phase-2 quorum \{n\d\}`).MatchString(dom))
	// Every consensus range has one leader cell, every node one replica in it.
	check("a leader cell in each of the 13 consensus ranges", strings.Count(dom, `class="cell leader"`) == 13)
	// The errors the console counts, by node, for whoever reads the log.
	for _, n := range nodes {
		if resp, err := http.Get("http://" + n.addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "quorumkv_request_duration_seconds_count") && !strings.Contains(l, `result="ok"`) {
					t.Logf("%s: %s", n.addr, l)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("the DOM after the script ran:\n%s", dom)
		return
	}

	// n3 dies: the console says so at the top, and highlights every range
	// with a replica on it.
	nodes[2].kill()
	waitFor(t, "n1's console to see n3 dead", func() bool {
		v, err := consoleJSON(n1)
		return err == nil && v.Health.NodesAlive == 2
	})
	dom = runChromium(t, chromium, base+"/", "--dump-dom")
	runChromium(t, chromium, base+"/", "--screenshot="+filepath.Join(artifacts, "console-n3-dead.png"))
	t.Logf("the console with n3 dead: %s", filepath.Join(artifacts, "console-n3-dead.png"))
	line := regexp.MustCompile(`<p id="health" class="bad">unhealthy: 2/3 nodes alive, \d+/13 ranges with a leader, (\d+) under-replicated`).FindStringSubmatch(dom)
	check("the health line, unhealthy, with n3 down", line != nil)
	check("n3 as dead in the members", regexp.MustCompile(`<tr class="member state-dead"><td>\d+</td><td>n3</td>`).MatchString(dom))
	// meta and cr's, cp's and ce's ranges have a replica on n3, and so
	// have default's once it grew to three replicas.
	problems := regexp.MustCompile(`<tr class="range problem" data-range="\d+">.*?<td class="cell bad">dead</td><td>[^<]*replica on n3, which is dead`).FindAllString(dom, -1)
	check("the ranges with a replica on n3 highlighted, its cell dead, as many as the health line counts",
		line != nil && len(problems) >= 7 && strconv.Itoa(len(problems)) == line[1])
	if t.Failed() {
		t.Logf("the DOM with n3 dead:\n%s", dom)
	}
}
