// Package codec is the byte codec under the node's own formats: log
// entries, hard states, commands, records, hints and peer messages. Enc
// appends uvarints and length-prefixed byte strings; Dec reads them back,
// and its first error sticks.
//
// It imports only the standard library.
//
// Invariants: bytes that do not decode are ErrCorrupt, never a panic and
// never an allocation larger than the input; every format built on it
// starts with a version byte, so it can evolve.
package codec
