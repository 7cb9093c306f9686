// Package invariants switches on checks that are too expensive for
// production but cheap enough for tests (Pebble's internal/invariants):
// Enabled is true in builds with the race detector or the `invariants`
// build tag, so that CI's race run of the simulator and node tests runs
// them, and a production binary pays nothing.
package invariants
