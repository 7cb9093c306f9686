package main

import (
	"bytes"
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
