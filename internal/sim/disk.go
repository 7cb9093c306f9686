package sim

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// CrashMode says what a Disk keeps of its unsynced writes when its node
// crashes.
type CrashMode uint8

const (
	// LoseUnsynced keeps exactly what was synced: the strictest reading of
	// fsync, and the default.
	LoseUnsynced CrashMode = iota
	// KeepRandomPrefix keeps what was synced plus a random prefix (possibly
	// empty, possibly all) of the writes issued since, in issue order: a
	// log-structured disk that flushed part of its buffer. A protocol that
	// acknowledges before Sync may then be seen to keep some of those writes
	// and lose others.
	KeepRandomPrefix
)

// Disk is a tiny in-memory key/value disk for toy protocols and the pure
// cores' tests. Writes (Set, Delete) are visible to reads at once, like a
// page cache, but survive a crash only once Sync has returned. Disk is
// not safe for concurrent use.
type Disk struct {
	mode    CrashMode
	synced  map[string][]byte // what a crash keeps
	live    map[string][]byte // synced plus pending: what reads see
	pending []diskWrite       // writes since the last Sync, in order
	syncs   int
}

type diskWrite struct {
	key   string
	value []byte // nil for a delete
}

// NewDisk returns an empty disk in LoseUnsynced mode.
func NewDisk() *Disk {
	return &Disk{synced: make(map[string][]byte), live: make(map[string][]byte)}
}

// SetCrashMode sets what a crash keeps of unsynced writes.
func (d *Disk) SetCrashMode(m CrashMode) { d.mode = m }

// Get returns a copy of the value of key.
func (d *Disk) Get(key string) ([]byte, bool) {
	v, ok := d.live[key]
	return slices.Clone(v), ok
}

// Set writes key; value is copied. The write is lost by a crash before the
// next Sync.
func (d *Disk) Set(key string, value []byte) {
	v := slices.Clone(value)
	if v == nil {
		v = []byte{} // nil marks a delete in pending
	}
	d.live[key] = v
	d.pending = append(d.pending, diskWrite{key: key, value: v})
}

// Delete removes key. The delete is lost by a crash before the next Sync.
func (d *Disk) Delete(key string) {
	delete(d.live, key)
	d.pending = append(d.pending, diskWrite{key: key})
}

// Sync makes every write issued so far durable.
func (d *Disk) Sync() {
	for _, w := range d.pending {
		apply(d.synced, w)
	}
	d.pending = d.pending[:0]
	d.syncs++
}

// Syncs returns how many times Sync was called, for tests that check a
// protocol batches its fsyncs.
func (d *Disk) Syncs() int { return d.syncs }

// Unsynced returns how many writes a crash now would put at risk.
func (d *Disk) Unsynced() int { return len(d.pending) }

// Keys returns the keys with the given prefix, sorted (a log's entries,
// say).
func (d *Disk) Keys(prefix string) []string {
	var keys []string
	for k := range d.live {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Crash reduces the disk to what survives a crash now (see CrashMode). It
// implements Storage; the simulator calls it when the node crashes.
func (d *Disk) Crash(rng *rand.Rand) {
	if d.mode == KeepRandomPrefix && len(d.pending) > 0 {
		for _, w := range d.pending[:rng.IntN(len(d.pending)+1)] {
			apply(d.synced, w)
		}
	}
	d.pending = d.pending[:0]
	d.live = maps.Clone(d.synced)
}

// clone returns an independent copy with the same mode and no unsynced
// writes (it is only called right after Crash).
func (d *Disk) clone() *Disk {
	return &Disk{mode: d.mode, synced: maps.Clone(d.synced), live: maps.Clone(d.live), syncs: d.syncs}
}

func apply(m map[string][]byte, w diskWrite) {
	if w.value == nil {
		delete(m, w.key)
		return
	}
	m[w.key] = w.value
}
