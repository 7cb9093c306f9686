//go:build !linux

package main

import (
	"os"
	"testing"
)

// openPTY skips the test: the tests open pseudo-terminals on Linux only.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	t.Skip("pseudo-terminals are opened on Linux only")
	return nil, nil
}
