//go:build !unix

package main

import (
	"errors"
	"os"
)

// errLocked is never returned here: without flock, Pebble's own lock of
// the data dir is the only one, and its error says less.
var errLocked = errors.New("locked")

func lockFile(*os.File) error { return nil }
