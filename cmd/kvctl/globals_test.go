package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// globalsSeen runs kvctl with args, the get and keyspace list commands
// replaced by one that records the value each global flag resolves to.
func globalsSeen(t *testing.T, args ...string) map[string]string {
	t.Helper()
	seen := map[string]string{}
	record := func(c *cli.Context) error {
		for name := range globalEnv {
			seen[name] = lookupString(c, name)
		}
		d, err := timeout(c)
		seen["timeout"] = fmt.Sprint(d, err)
		return nil
	}
	var stderr bytes.Buffer
	app := newApp(strings.NewReader(""), &bytes.Buffer{}, &stderr)
	find(app.Commands, "get").Action = record
	find(find(app.Commands, "keyspace").Subcommands, "list").Action = record
	full, err := interspersed(app, append([]string{"kvctl"}, args...))
	if err == nil {
		err = app.Run(full)
	}
	if err != nil {
		t.Fatalf("kvctl %v: %v (%s)", args, err, stderr.String())
	}
	return seen
}

// A global flag given on the command line beats its environment
// variable, before or after the command; the variable applies when the
// command line does not give the flag; the innermost, then the last,
// occurrence on the command line wins.
func TestGlobalFlagBeatsEnvironment(t *testing.T) {
	values := map[string][2]string{ // flag: environment value, command-line value
		"endpoints": {"10.0.0.1:1", "127.0.0.1:7171"},
		"output":    {"yaml", "json"},
		"timeout":   {"7s", "9s"},
		"keyspace":  {"orders", "default"},
		"certs-dir": {"/env/certs", "/flag/certs"},
		"user":      {"envuser", "flaguser"},
		"password":  {"envpw", "flagpw"},
	}
	want := func(name, v string) string {
		if name == "timeout" {
			return v + " <nil>"
		}
		return v
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			t.Setenv(globalEnv[name], v[0])
			flag, other := "--"+name, "other"
			if name == "timeout" {
				other = "3s"
			}
			if got := globalsSeen(t, "get", "k")[name]; got != want(name, v[0]) {
				t.Errorf("%s=%s, no flag: %q, want the environment's %q", globalEnv[name], v[0], got, v[0])
			}
			for _, args := range [][]string{
				{flag, v[1], "get", "k"},
				{"get", "k", flag, v[1]},
				{"get", flag, v[1], "k"},
				{flag, v[1], "keyspace", "list"},
				{"keyspace", "list", flag, v[1]},
				{"keyspace", flag, v[1], "list"},
				{flag, other, "get", "k", flag, v[1]}, // innermost
				{"get", flag, other, "k", flag, v[1]}, // last
			} {
				if got := globalsSeen(t, args...)[name]; got != want(name, v[1]) {
					t.Errorf("%s=%s kvctl %s: %q, want the flag's %q", globalEnv[name], v[0], strings.Join(args, " "), got, v[1])
				}
			}
		})
	}
	// Without either, the default.
	if got := globalsSeen(t, "get", "k"); got["keyspace"] != "default" || got["endpoints"] != "127.0.0.1:7070" || got["timeout"] != "5s <nil>" {
		t.Errorf("defaults: %v", got)
	}
	// The short alias is the flag too.
	t.Setenv("KVCTL_KEYSPACE", "orders")
	if got := globalsSeen(t, "get", "k", "-k", "default")["keyspace"]; got != "default" {
		t.Errorf("KVCTL_KEYSPACE=orders kvctl get k -k default: %q", got)
	}
}

// A bad KVCTL_TIMEOUT is a usage error naming the variable, when no
// --timeout overrides it.
func TestTimeoutEnvironment(t *testing.T) {
	t.Setenv("KVCTL_TIMEOUT", "soon")
	code, _, errOut := kvctl(t, "get", "k", "--endpoints", "127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, `$KVCTL_TIMEOUT "soon": want a duration`) {
		t.Errorf("KVCTL_TIMEOUT=soon: exit %d, %s", code, errOut)
	}
	t.Setenv("KVCTL_TIMEOUT", "-1s")
	if code, _, errOut := kvctl(t, "get", "k"); code != 2 || !strings.Contains(errOut, "$KVCTL_TIMEOUT -1s: want a positive duration") {
		t.Errorf("KVCTL_TIMEOUT=-1s: exit %d, %s", code, errOut)
	}
}

// The cases, on a real node.
func TestGlobalFlagBeatsEnvironmentOnANode(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	t.Setenv("KVCTL_ENDPOINTS", "127.0.0.1:1") // nothing listens there
	t.Setenv("KVCTL_KEYSPACE", "orders")       // no such keyspace
	if code, _, errOut := kvctl(t, "--endpoints", ep, "-k", "default", "put", "k", "v"); code != 0 {
		t.Fatalf("kvctl --endpoints %s -k default put k v: exit %d, %s", ep, code, errOut)
	}
	if code, out, errOut := kvctl(t, "get", "k", "--endpoints", ep, "-k", "default"); code != 0 || out != "v" {
		t.Fatalf("kvctl get k --endpoints %s -k default: exit %d, %q, %s", ep, code, out, errOut)
	}
	if code, _, errOut := kvctl(t, "get", "k", "--endpoints", ep); code != 1 || !strings.Contains(errOut, "orders") {
		t.Errorf("KVCTL_KEYSPACE=orders kvctl get k: exit %d, %s; want the keyspace orders not found", code, errOut)
	}
	if code, _, errOut := kvctl(t, "get", "k", "-k", "default"); code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("KVCTL_ENDPOINTS=127.0.0.1:1 kvctl get k: exit %d, %s; want the dead endpoint named", code, errOut)
	}
}
