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
		{"kvctl quorum check --quorum grid:3x3 --nodes 9", "kvctl quorum check --quorum grid:3x3 --nodes 9"},
		{"kvctl nosuch a --b", "kvctl nosuch a --b"},
	} {
		if got := strings.Join(interspersed(app, strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("interspersed(%q) = %q, want %q", c.in, got, c.want)
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
