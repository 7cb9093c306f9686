package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

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

// A connection refused on every endpoint fails at once, not at the
// timeout, naming the endpoints tried.
func TestRefusedConnectionFailsFast(t *testing.T) {
	dead := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	a, b := dead(), dead()
	start := time.Now()
	code, _, errOut := kvctl(t, "--endpoints", a+","+b, "--timeout", "30s", "get", "k")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("kvctl get took %v with nothing listening", took)
	}
	if code != 1 || !strings.Contains(errOut, a) || !strings.Contains(errOut, b) || !strings.Contains(errOut, "connection refused") {
		t.Errorf("kvctl get: exit %d, %s; want exit 1 naming %s and %s, refused", code, errOut, a, b)
	}
}

// On a terminal, get ends the value with a newline.
func TestGetOnATerminalAddsANewline(t *testing.T) {
	ep := startNode(t, catalog.Limits{})
	if code, _, errOut := kvctl(t, "--endpoints", ep, "put", "k", "v"); code != 0 {
		t.Fatalf("put: exit %d, %s", code, errOut)
	}
	master, tty := openPTY(t)
	var stderr bytes.Buffer
	if code := run([]string{"kvctl", "--endpoints", ep, "get", "k"}, strings.NewReader(""), tty, &stderr); code != 0 {
		t.Fatalf("get: exit %d, %s", code, stderr.String())
	}
	buf := make([]byte, 64)
	n, err := master.Read(buf)
	if err != nil || string(buf[:n]) != "v\r\n" { // the terminal writes a newline as \r\n
		t.Errorf("get on a terminal printed %q, %v; want v and a newline", buf[:n], err)
	}
}
