package main

import (
	"fmt"
	"strings"
	"time"
)

// failpointsEnv names the file of a test-only build's failpoints
// (failpoints_on.go); canaryEnv the bugs a canary build plants
// (canary_on.go). Release builds ignore both, with a warning.
const (
	failpointsEnv = "KVD_TEST_FAILPOINTS"
	canaryEnv     = "KVD_TEST_CANARY"
)

// failpointSettings is what a failpoints file says. The file holds one
// "name=value" per line; blank lines and lines starting with # are
// skipped; a name missing means its default:
//
//	clock-offset=-3s     # the physical clock runs this far from the host's (default 0)
//	disk-sync=fail       # every sync fails; or delay:200ms; or ok (default)
//	disk-write=fail      # every file write fails; or ok (default)
type failpointSettings struct {
	clockOffset time.Duration
	failSyncs   bool
	syncDelay   time.Duration
	failWrites  bool
}

// parseFailpoints parses a failpoints file. An unknown name or a bad value
// is an error naming the line: a test that asks for a fault this build does
// not know must not run without it.
func parseFailpoints(text string) (failpointSettings, error) {
	var s failpointSettings
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		bad := func(want string) error {
			return fmt.Errorf("failpoints line %d %q: %s wants %s", i+1, line, name, want)
		}
		switch {
		case !ok:
			return s, fmt.Errorf("failpoints line %d %q: want name=value", i+1, line)
		case name == "clock-offset":
			d, err := time.ParseDuration(value)
			if err != nil {
				return s, bad("a duration such as -3s")
			}
			s.clockOffset = d
		case name == "disk-sync" && value == "ok":
			s.failSyncs, s.syncDelay = false, 0
		case name == "disk-sync" && value == "fail":
			s.failSyncs = true
		case name == "disk-sync" && strings.HasPrefix(value, "delay:"):
			d, err := time.ParseDuration(strings.TrimPrefix(value, "delay:"))
			if err != nil || d < 0 {
				return s, bad("ok, fail or delay:DURATION")
			}
			s.syncDelay = d
		case name == "disk-sync":
			return s, bad("ok, fail or delay:DURATION")
		case name == "disk-write" && (value == "ok" || value == "fail"):
			s.failWrites = value == "fail"
		case name == "disk-write":
			return s, bad("ok or fail")
		default:
			return s, fmt.Errorf("failpoints line %d %q: unknown failpoint %q (clock-offset, disk-sync, disk-write)", i+1, line, name)
		}
	}
	return s, nil
}
