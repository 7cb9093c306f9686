// Package lint holds the house rules that are checked as tests, in the
// manner of pebble's internal/lint: the dependency direction of DESIGN.md §1
// and, inside the node, of docs/architecture.md.
package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/quorumkv/quorumkv"

// cores are the pure protocol packages: they may import only the standard
// library and each other, so that no third-party type (pebble, memberlist,
// connect, prometheus) and no IO reaches the protocols.
var cores = []string{"quorum", "raft", "paxos", "wrn"}

// nodeOnly are used by the node (kv/), the commands, and test helpers
// under internal/, never by the cores or the client.
var nodeOnly = []string{"storage", "membership"}

// nodeLayers are the node's packages from the bottom up (DESIGN.md §1,
// docs/architecture.md). A package of the node may import only those of
// lower layers: never one above it, never one beside it. A new package
// under kv/ must be given its place here before it may be imported.
var nodeLayers = [][]string{
	{"kv/internal/codec"},
	{"kv/catalog"},
	{"kv/auth"},
	{"kv/identity"},
	{"kv/consensus"},
	{"kv/command"},
	{"kv/metrics"},
	{"kv/records"},
	{"kv/store"},
	{"kv/internal/kvtest"}, // the tests' helpers
	{"kv/transport"},
	{"kv/eventual"},
	{"kv"},
	{"kv/server"},
}

// labAvoids are what the lab (lab/) must not import: it drives the
// product through its client and its pure cores, as a user's program
// would, so that what it shows of a real cluster is what a client sees.
var labAvoids = []string{"kv", "storage", "membership", "cmd"}

// layerOf returns the layer of the node's package rel (a path relative to
// the module), or -1 when it has none.
func layerOf(rel string) int {
	for i, l := range nodeLayers {
		if slices.Contains(l, rel) {
			return i
		}
	}
	return -1
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// violations returns one line per import that breaks the rules.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		top, _, _ := strings.Cut(rel, "/")
		for _, imp := range p.Imports {
			impRel, inModule := strings.CutPrefix(imp, module+"/")
			impTop, _, _ := strings.Cut(impRel, "/")
			switch {
			case slices.Contains(cores, top) && !isStd(imp) && !(inModule && slices.Contains(cores, impTop)):
				out = append(out, fmt.Sprintf("%s imports %s: protocol cores may import only the standard library and %v", p.ImportPath, imp, cores))
			case inModule && slices.Contains(nodeOnly, impTop) && top != impTop &&
				!slices.Contains([]string{"kv", "cmd", "internal"}, top):
				out = append(out, fmt.Sprintf("%s imports %s: %s is used only by kv/, cmd/ and internal/", p.ImportPath, imp, impTop))
			case top == "lab" && inModule && slices.Contains(labAvoids, impTop):
				out = append(out, fmt.Sprintf("%s imports %s: the lab uses the product through client/, api/ and its pure cores, never %v", p.ImportPath, imp, labAvoids))
			case top == "kv" && inModule && impTop == "kv":
				from, to := layerOf(strings.TrimSuffix(rel, "_test")), layerOf(impRel)
				switch {
				case from < 0:
					out = append(out, fmt.Sprintf("%s has no layer among the node's packages: give it one in nodeLayers", p.ImportPath))
				case to < 0:
					out = append(out, fmt.Sprintf("%s imports %s, which has no layer among the node's packages: give it one in nodeLayers", p.ImportPath, imp))
				case to >= from:
					out = append(out, fmt.Sprintf("%s imports %s: the node's packages import only lower layers (%s is at or above %s in nodeLayers)",
						p.ImportPath, imp, impRel, rel))
				}
			}
		}
	}
	return out
}

// isStd reports whether path is in the standard library: its first
// element has no dot, as every module path outside it does.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func TestDependencyDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == module+"/quorum" }) {
		t.Fatalf("go list found no %s/quorum among %d packages: the check would check nothing", module, len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// The rules catch what they are meant to: this is the test that fails on a
// bad import, run on packages that exist only here.
func TestViolationsCatchBadImports(t *testing.T) {
	bad := []pkg{
		{module + "/quorum", []string{"fmt", "github.com/cockroachdb/pebble/v2"}},
		{module + "/raft", []string{module + "/storage"}},
		{module + "/paxos/internal/x", []string{"github.com/hashicorp/memberlist"}},
		{module + "/client", []string{module + "/storage"}},
		{module + "/kv/store", []string{module + "/kv/eventual"}},
		{module + "/kv/catalog", []string{module + "/kv"}},
		{module + "/kv/store", []string{module + "/kv/store/x"}},
		{module + "/lab/cluster", []string{module + "/kv/server"}},
	}
	good := []pkg{
		{module + "/raft", []string{"errors", "math/rand/v2", module + "/quorum"}},
		{module + "/wrn", []string{module + "/quorum", module + "/paxos"}},
		{module + "/kv", []string{module + "/storage", "github.com/cockroachdb/pebble/v2"}},
		{module + "/storage", []string{"github.com/cockroachdb/pebble/v2/vfs"}},
		{module + "/internal/sim", []string{module + "/storage"}},
		{module + "/kv/eventual", []string{module + "/kv/store", module + "/kv/catalog", module + "/kv/internal/codec"}},
		{module + "/kv/server", []string{module + "/kv", module + "/kv/transport"}},
		{module + "/cmd/kvd", []string{module + "/kv/server", module + "/kv/store"}},
		{module + "/lab/cluster", []string{module + "/client", module + "/api/quorumkv/v1", module + "/quorum"}},
	}
	if got := violations(bad); len(got) != len(bad) {
		t.Errorf("violations(bad) found %d of %d:\n%s", len(got), len(bad), strings.Join(got, "\n"))
	}
	if got := violations(good); len(got) != 0 {
		t.Errorf("violations(good) = %v, want none", got)
	}
}
