package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// kvctlIn is kvctl with stdin.
func kvctlIn(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"kvctl"}, args...), bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// Piped, get prints the value's bytes exactly: no newline added, binary
// bytes untouched.
func TestGetPrintsValueBytesExactly(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	for _, v := range [][]byte{
		[]byte("no newline"),
		[]byte("ends in a newline\n"),
		{0xff, 0xfe, 0x00, 0x80, '\n', 0xc3},
		{},
	} {
		if code, _, errOut := kvctlIn(t, v, "--endpoints", ep, "put", "k", "-"); code != 0 {
			t.Fatalf("put: exit %d, %s", code, errOut)
		}
		code, out, errOut := kvctl(t, "--endpoints", ep, "get", "k")
		if code != 0 || !bytes.Equal([]byte(out), v) {
			t.Errorf("get of %q: exit %d, printed %q, %s", v, code, out, errOut)
		}
	}
}

// After "--", wherever it is, every word is an argument: keys and values
// may start with '-'.
func TestDashDashArguments(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	for _, c := range []struct {
		put        []string
		key, value string
	}{
		{[]string{"put", "k", "--", "-5"}, "k", "-5"},
		{[]string{"put", "--", "-k", "-v"}, "-k", "-v"},
		{[]string{"put", "--", "--w", "2"}, "--w", "2"},
		{[]string{"put", "k2", "-k", "default", "--", "-x"}, "k2", "-x"},
		{[]string{"put", "--", "-", "--"}, "-", "--"},
	} {
		code, _, errOut := kvctl(t, append([]string{"--endpoints", ep}, c.put...)...)
		if code != 0 {
			t.Errorf("kvctl %s: exit %d, %s", strings.Join(c.put, " "), code, errOut)
			continue
		}
		if code, out, errOut := kvctl(t, "--endpoints", ep, "get", "--", c.key); code != 0 || out != c.value {
			t.Errorf("after kvctl %s: get -- %s: exit %d, %q, %s; want %q", strings.Join(c.put, " "), c.key, code, out, errOut, c.value)
		}
	}
	// Without "--", a word starting with '-' is a flag.
	if code, _, errOut := kvctl(t, "--endpoints", ep, "put", "k", "-5"); code != 2 || !strings.Contains(errOut, "flag provided but not defined: -5") {
		t.Errorf("kvctl put k -5: exit %d, %s", code, errOut)
	}
}
