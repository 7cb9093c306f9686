// Package simpebble gives simulated nodes a Pebble file system that loses
// what was not synced when the node crashes.
//
// It lives apart from package sim so that the protocol cores' tests, which
// use sim with its plain in-memory Disk, do not link Pebble.
//
//	d := simpebble.New()
//	s.AddNode(1, func(env *sim.Env) sim.Process {
//		db, err := pebble.Open("db", &pebble.Options{FS: d.FS()})
//		...
//		return &replica{db: db} // its Stop method closes db
//	}, d)
//
// On a crash the simulator calls d.Crash, which swaps in
// MemFS.CrashClone of the current file system, and then the process's Stop,
// which closes the old DB (its last writes go to the old file system and
// are lost). Restart reopens Pebble on d.FS(), the crashed copy.
package simpebble

import (
	"math/rand/v2"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Disk is a crashable in-memory file system for one node. It implements
// sim.Storage.
type Disk struct {
	fs                  *vfs.MemFS
	unsyncedDataPercent int
	crashes             int
}

// New returns an empty Disk whose crashes keep exactly the synced data.
func New() *Disk {
	return &Disk{fs: vfs.NewCrashableMem()}
}

// FS returns the current file system. After a crash it is a new one, so
// processes must call FS again when they restart, never keep it across
// incarnations.
func (d *Disk) FS() *vfs.MemFS { return d.fs }

// SetUnsyncedDataPercent sets the chance, 0–100, that each unsynced file
// block or directory entry survives a crash (vfs.CrashCloneCfg). 0, the
// default, keeps exactly what was synced.
//
// Above 0 a crash is no longer reproducible from the seed: MemFS.CrashClone
// walks directories in Go map order, so which entries get which random
// draws differs between runs. The simulation's own random stream is not
// disturbed (the clone draws from a private generator seeded from it), but
// the surviving files, and so the rest of the run, may differ.
func (d *Disk) SetUnsyncedDataPercent(p int) {
	d.unsyncedDataPercent = min(max(p, 0), 100)
}

// Crashes returns how many crashes the disk has been through.
func (d *Disk) Crashes() int { return d.crashes }

// Crash replaces the file system with what a crash now would leave. Files
// the old incarnation still has open keep writing to the old file system,
// which nothing reads again.
func (d *Disk) Crash(rng *rand.Rand) {
	cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: d.unsyncedDataPercent}
	// Always draw two words, whatever the percentage, so that changing it
	// does not shift the simulation's random stream.
	seed1, seed2 := rng.Uint64(), rng.Uint64()
	if cfg.UnsyncedDataPercent > 0 {
		cfg.RNG = rand.New(rand.NewPCG(seed1, seed2))
	}
	d.fs = d.fs.CrashClone(cfg)
	d.crashes++
}
