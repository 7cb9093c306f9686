package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLabList(t *testing.T) {
	code, out, errOut := kvctl(t, "lab", "list")
	if code != 0 {
		t.Fatalf("kvctl lab list: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"async-backup", "wrn", "basic-paxos", "naive-raft-any-vote", "grid", "consensus", "sim+cluster"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab list lacks %q:\n%s", want, out)
		}
	}
}

// One run tells its story, and --svg draws it.
func TestLabRun(t *testing.T) {
	pic := filepath.Join(t.TempDir(), "a.svg")
	code, out, errOut := kvctl(t, "lab", "async-backup", "--svg", pic)
	if code != 0 {
		t.Fatalf("kvctl lab async-backup: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"2  Primary with an asynchronous backup  (sim, seed 1)", "double sales", "Verdict: SELLS TWICE"} {
		if !strings.Contains(out, want) {
			t.Errorf("story lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(pic)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, new(struct{})); err != nil {
		t.Errorf("%s is not XML: %v", pic, err)
	}

	// The same seed gives the same run; JSON carries the counts.
	_, a, _ := kvctl(t, "lab", "async-backup", "-o", "json", "--seed", "3")
	_, b2, _ := kvctl(t, "lab", "async-backup", "-o", "json", "--seed", "3")
	if a != b2 {
		t.Error("two runs of seed 3 printed different JSON")
	}
	var r struct {
		Scenario    string   `json:"scenario"`
		Seed        string   `json:"seed"`
		ToldSold    []string `json:"told_sold"`
		DoubleSales int      `json:"double_sales"`
		Verdict     string   `json:"verdict"`
	}
	if err := json.Unmarshal([]byte(a), &r); err != nil {
		t.Fatalf("lab -o json: %v\n%s", err, a)
	}
	if r.Scenario != "async-backup" || r.Seed != "3" || r.DoubleSales != max(0, len(r.ToldSold)-1) {
		t.Errorf("lab -o json: %+v", r)
	}
}

// A sweep counts the verdicts and names a seed to replay.
func TestLabSeeds(t *testing.T) {
	code, out, errOut := kvctl(t, "lab", "wrn", "--seeds", "20")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "1-20") || !strings.Contains(out, "kvctl lab wrn --seed ") {
		t.Errorf("sweep output:\n%s", out)
	}
}

func TestLabUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "nope"}, `no lab scenario "nope"; the scenarios are: single-crash`},
		{[]string{"lab", "a", "b"}, "lab takes one scenario, all or list"},
		{[]string{"lab", "wrn", "--seeds", "0"}, "--seeds 0: want 1 to 100000"},
		{[]string{"lab", "async-backup", "--cluster"}, "lab async-backup runs only in the simulator"},
		{[]string{"lab", "consensus"}, "lab consensus runs only on a cluster: add --cluster"},
		{[]string{"lab", "wrn", "--cluster", "--seeds", "5"}, "--seeds counts simulator runs"},
		{[]string{"lab", "wrn", "--local", "0"}, "--local 0: want 1 to 9 nodes"},
		{[]string{"lab", "wrn", "--svg-dir", "x"}, "--svg-dir is for lab all"},
		{[]string{"lab", "all", "--svg", "x.svg"}, "--svg is for one scenario"},
	} {
		code, _, errOut := kvctl(t, append([]string{"--endpoints", "127.0.0.1:1"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("kvctl %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}

// --local's node options are checked before any kvd starts.
func TestLabLocalUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lab", "consensus", "--zones", "a,b"}, "--zones is for --local"},
		{[]string{"lab", "wrn", "--buyers", "3"}, "--buyers is for --cluster and --local"},
		{[]string{"lab", "wrn", "--cluster", "--buyers", "0"}, "--buyers 0: want 1 to 1000"},
		{[]string{"lab", "consensus", "--local", "3", "--zones", "a,b"}, "--zones names 2 zones for 3 nodes"},
		{[]string{"lab", "consensus", "--local", "3", "--weights", "1,x,1"}, `--weights "1,x,1": want a positive whole number per node`},
		{[]string{"lab", "consensus", "--local", "2", "--weights", "1,0"}, `want a positive whole number per node`},
		{[]string{"lab", "consensus", "--local", "2", "--weights", "1,1,1"}, "--weights gives 3 weights for 2 nodes"},
	} {
		code, _, errOut := kvctl(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("kvctl %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}
