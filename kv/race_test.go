//go:build race

package kv

// raceEnabled: the race detector slows Pebble and the simulator tenfold
// and more, so the tests that move many MiB move less under it (they run
// in full without it).
const raceEnabled = true
