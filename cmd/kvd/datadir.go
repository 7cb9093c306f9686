package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// pidFileName is the file in the data dir that says which kvd holds it:
// its PID on the first line (kill $(head -1 kvd.pid) works), then its
// listen address and its start time. The kvd holding the data dir keeps
// it locked; a second kvd on the same data dir reads it to say who is in
// the way, instead of Pebble's bare "resource temporarily unavailable".
const pidFileName = "kvd.pid"

// errDataDirInUse marks the error of lockDataDir when another kvd holds
// the data dir.
var errDataDirInUse = errors.New("data dir in use")

// dataDirLock is a data dir held by this process.
type dataDirLock struct {
	f *os.File
}

// lockDataDir creates dir if needed, locks its pid file and writes this
// process's PID, listen address and start time into it. If another
// process (or another node of this one) holds it, the error names that
// process and wraps errDataDirInUse.
func lockDataDir(dir, listen string, now time.Time) (*dataDirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, pidFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data dir %s is in use by %s; stop it or use another --data-dir: %w", dir, describeHolder(path), errDataDirInUse)
		}
		return nil, fmt.Errorf("data dir %s: locking %s: %w", dir, path, err)
	}
	body := fmt.Sprintf("%d\nlisten %s\nsince %s\n", os.Getpid(), listen, now.UTC().Format(time.RFC3339))
	if err := writeAt0(f, body); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s: writing %s: %w", dir, path, err)
	}
	return &dataDirLock{f: f}, nil
}

// Close empties the pid file (nobody holds the data dir any more) and
// releases it.
func (l *dataDirLock) Close() error {
	return errors.Join(l.f.Truncate(0), l.f.Close())
}

func writeAt0(f *os.File, s string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(s), 0)
	return err
}

// describeHolder reads the pid file of the kvd that holds a data dir:
// "kvd pid N (listening on A) since T", or as much of it as the file
// says (the holder may not have written it yet).
func describeHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another kvd"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil {
		return "another kvd"
	}
	s := "kvd pid " + strconv.Itoa(pid)
	for _, l := range lines[1:] {
		if addr, ok := strings.CutPrefix(l, "listen "); ok {
			s += " (listening on " + addr + ")"
		}
		if since, ok := strings.CutPrefix(l, "since "); ok {
			s += " since " + since
		}
	}
	return s
}
