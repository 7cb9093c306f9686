//go:build race

package store

// raceEnabled: the race detector slows Pebble tenfold and more, so the
// tests that move many MiB move less under it (they run in full without
// it).
const raceEnabled = true
