package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func kvctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"kvctl"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// The acceptance cases of the foundation issue, and the exit codes of SPEC.md.
func TestQuorumCheck(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want []string // substrings of stdout, or of stderr when code is 2
	}{
		{[]string{"quorum", "check", "--quorum", "grid:3x3", "--nodes", "9"}, 0,
			[]string{"quorum size 3 (3 minimal quorums)", "every phase-1 quorum meets every phase-2 quorum", "{n1,n5,n9}"}},
		{[]string{"quorum", "check", "--quorum", "flexible:2,2", "--nodes", "5"}, 1,
			[]string{"COUNTEREXAMPLE phase-1 quorum {n1,n2} and phase-2 quorum {n4,n5}", "UNSAFE"}},
		{[]string{"quorum", "check", "--quorum", "flexible:2,2", "--nodes", "5", "--mode", "paxos"}, 1,
			[]string{"paxos      UNSAFE"}},
		{[]string{"quorum", "check", "--quorum", "zones", "--nodes", "a@x,b@x,c@y,d@y,e@z,f@z"}, 0,
			[]string{"phase 1    a voter in every zone (x, y, z)\n           quorum size 3",
				"phase 2    every voter of one zone (x, y, z)\n           quorum size 2"}},
		{[]string{"quorum", "check", "--quorum", "weighted", "--nodes", "a:2,b,c,d", "--mode", "raft"}, 0,
			[]string{"more than 2 of 5 votes", "raft       safe"}},
		{[]string{"quorum", "check", "--quorum", "grid:3x3", "--nodes", "8"}, 2,
			[]string{"grid:3x3 needs exactly 9 voters, the cluster has 8"}},
		{[]string{"quorum", "check", "--quorum", "hexagon", "--nodes", "3"}, 2,
			[]string{`invalid geometry "hexagon"`}},
		{[]string{"quorum", "check", "--nodes", "3"}, 2, []string{"needs --quorum"}},
		{[]string{"quorum", "check", "--quorum", "majority", "--nodes", "3", "--mode", "dynamo"}, 2,
			[]string{`unknown mode "dynamo"`}},
		{[]string{"quorum", "check", "--quorum", "majority", "--nodes", "3", "--bogus"}, 2,
			[]string{"flag provided but not defined"}},
		{[]string{"quorum", "check", "--quorum", "majority", "--nodes", "25"}, 2,
			[]string{"at most 24 voters"}},
		{[]string{"quorum", "check", "--quorum", "majority", "--nodes", "3", "-o", "yaml"}, 2,
			[]string{`--output "yaml"`}},
	} {
		code, out, errOut := kvctl(t, c.args...)
		if code != c.code {
			t.Errorf("kvctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.code, out, errOut)
			continue
		}
		got := out
		if c.code == 2 {
			got = errOut
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("kvctl %s: output lacks %q:\n%s", strings.Join(c.args, " "), w, got)
			}
		}
	}
}

func TestQuorumCheckJSON(t *testing.T) {
	code, out, errOut := kvctl(t, "quorum", "check", "--quorum", "flexible:2,2", "--nodes", "5", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	var r reportJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	if r.Safe || r.Intersect || r.Counterexample == nil || len(r.Verdicts) != 3 || r.Phase1.MinSize != 2 {
		t.Fatalf("unexpected report: %+v", r)
	}
	// The global flag works before the command too, and from the environment.
	t.Setenv("KVCTL_OUTPUT", "json")
	if code, out, _ := kvctl(t, "quorum", "check", "--quorum", "grid:3x3", "--nodes", "9"); code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("KVCTL_OUTPUT=json: exit %d, output %s", code, out)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if code, out, errOut := kvctl(t, "completion", shell); code != 0 || !strings.Contains(out, "kvctl") {
			t.Errorf("completion %s: exit %d, stderr %s", shell, code, errOut)
		}
	}
	if code, _, _ := kvctl(t, "completion", "powershell"); code != 2 {
		t.Errorf("completion powershell: exit %d, want 2", code)
	}
}

func TestInterspersed(t *testing.T) {
	app := newApp(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range []struct{ in, want string }{
		{"kvctl put k v --w 2", "kvctl put --w 2 k v"},
		{"kvctl -o json put k - --w=2", "kvctl -o json put --w=2 k -"},
		{"kvctl cas k new --expect old -k ks", "kvctl cas --expect old -k ks k new"},
		{"kvctl cas k new --expect-absent --timeout 1s", "kvctl cas --expect-absent --timeout 1s k new"},
		{"kvctl keyspace create ev --mode eventual --replicas 3", "kvctl keyspace create --mode eventual --replicas 3 ev"},
		{"kvctl put -- -k v", "kvctl put -- -k v"},
		{"kvctl put k -- -5", "kvctl put -- k -5"},
		{"kvctl put --w 2 k -- -5 --w", "kvctl put --w 2 -- k -5 --w"},
		{"kvctl keyspace create x --help", "kvctl keyspace create --help"},
		{"kvctl -o json keyspace lst --help", "kvctl keyspace --help"},
		{"kvctl help keyspace", "kvctl keyspace --help"},
		{"kvctl keyspace -o json list", "kvctl keyspace list -o json"},
		{"kvctl -k a keyspace --timeout=1s describe x -o json", "kvctl -k a keyspace describe --timeout=1s -o json x"},
		{"kvctl quorum check --quorum grid:3x3 --nodes 9", "kvctl quorum check --quorum grid:3x3 --nodes 9"},
	} {
		args, err := interspersed(app, strings.Fields(c.in))
		if got := strings.Join(args, " "); err != nil || got != c.want {
			t.Errorf("interspersed(%q) = %q, %v, want %q", c.in, got, err, c.want)
		}
	}
}

// Usage errors of the data commands exit 2 before any request is made.
func TestDataCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"get"},
		{"put", "k"},
		{"cas", "k", "v"},
		{"cas", "k", "v", "--expect", "a", "--expect-absent"},
		{"put", "k", "v", "--w", "some"},
		{"scan", "--limit", "-1"},
		{"keyspace", "create", "x", "--mode", "dynamo", "--replicas", "3"},
		{"get", "k", "--timeout", "0s"},
	} {
		if code, _, errOut := kvctl(t, args...); code != 2 {
			t.Errorf("kvctl %v: exit %d, want 2 (stderr %s)", args, code, errOut)
		}
	}
}

// Every bench flag out of its bounds is a usage error naming the flag,
// found before any request is sent (nothing listens on the endpoint).
func TestBenchUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--clients", "0"}, "--clients 0: want 1 to 1024"},
		{[]string{"--clients", "5000"}, "--clients 5000: want 1 to 1024"},
		{[]string{"--keys", "0"}, "--keys 0: want 1 to 1000000"},
		{[]string{"--reads", "1.5"}, "--reads 1.5: want a fraction from 0 to 1"},
		{[]string{"--reads", "-0.1"}, "--reads -0.1: want a fraction from 0 to 1"},
		{[]string{"--reads", "half"}, "invalid value \"half\" for flag -reads"},
		{[]string{"--reads", "0.8", "--cas", "0.3"}, "--cas 0.3: want at most 0.2"},
		{[]string{"--value-size", "2000000"}, "--value-size 2000000: want 16 (room for the tag that makes every value unique) to 1048576 (the server's 1 MiB value limit)"},
		{[]string{"--value-size", "8"}, "--value-size 8: want 16"},
		{[]string{"--duration", "0s"}, "--duration 0s: want more than 0"},
		{[]string{"--duration", "-1s"}, "--duration -1s: want more than 0"},
		{[]string{"--duration", "3h"}, "--duration 3h0m0s: want more than 0 and at most 1h0m0s"},
		{[]string{"--ops", "-1"}, "--ops -1: want 0 (no bound but the duration) or more"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{[]string{"--w", "some"}, `--w "some": want a positive count, one, quorum or all`},
		{[]string{"--r", "0"}, `--r "0": want a positive count, one, quorum or all`},
		{[]string{"--replicas", "5"}, "--replicas applies to --sweep only"},
		{[]string{"--wr", "1,1"}, "--wr applies to --sweep only"},
		{[]string{"--keep"}, "--keep applies to --sweep only"},
		{[]string{"--sweep", "--w", "1"}, "--w sets the quorum of a single run; --sweep takes its W,R pairs from --wr"},
		{[]string{"--sweep", "--replicas", "0"}, "--replicas 0: want 1 to 24"},
		{[]string{"--sweep", "--replicas", "25"}, "--replicas 25: want 1 to 24"},
		{[]string{"--sweep", "--ranges", "0"}, "--ranges 0: want 1 to 4096"},
		{[]string{"--sweep", "--wr", "4,1"}, `--wr "4,1": W=4, R=1: want each from 1 to the 3 replicas (--replicas)`},
		{[]string{"--sweep", "--wr", "1,1:2,0"}, `--wr "1,1:2,0": W=2, R=0: want each from 1 to the 3 replicas`},
		{[]string{"--sweep", "--replicas", "5", "--wr", "1,5:3,3"}, ""}, // valid: fails later, on the request
		{[]string{"--sweep", "--wr", "1;1"}, `--wr "1;1": want W,R pairs separated by colons, such as 1,1:2,2:1,3`},
		{[]string{"--sweep", "--wr", ""}, `--wr "": want W,R pairs`},
		{[]string{"--sweep", "--clients", "0"}, "--clients 0: want 1 to 1024"},
		{[]string{"-o", "yaml"}, `--output "yaml"`},
		{[]string{"extra"}, "bench needs 0 argument(s)"},
	} {
		args := append([]string{"bench", "--endpoints", "127.0.0.1:1", "--timeout", "200ms"}, c.args...)
		code, _, errOut := kvctl(t, args...)
		if c.want == "" {
			if code == 2 {
				t.Errorf("kvctl %s: exit 2 (%s), want a request error", strings.Join(args, " "), errOut)
			}
			continue
		}
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("kvctl %s: exit %d, stderr:\n%s\nwant exit 2 and %q", strings.Join(args, " "), code, errOut, c.want)
		}
	}
}

func TestParseWR(t *testing.T) {
	pairs, err := parseWR("1,1: 2,2:1,3", 3)
	if err != nil || len(pairs) != 3 || pairs[1].W != 2 || pairs[2].R != 3 {
		t.Fatalf("got %v, %v", pairs, err)
	}
}
