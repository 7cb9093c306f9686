package sim_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestDiskCrashKeepsSyncedOnly(t *testing.T) {
	d := sim.NewDisk()
	d.Set("a", []byte("1"))
	d.Set("b", []byte("1"))
	d.Sync()
	d.Set("a", []byte("2")) // overwrite, unsynced
	d.Delete("b")           // delete, unsynced
	d.Set("c", []byte("1")) // new key, unsynced
	if v, _ := d.Get("a"); string(v) != "2" {
		t.Fatalf("unsynced write not visible before the crash: %q", v)
	}
	if d.Unsynced() != 3 {
		t.Fatalf("Unsynced() = %d, want 3", d.Unsynced())
	}
	d.Crash(rand.New(rand.NewPCG(1, 2)))
	if v, _ := d.Get("a"); string(v) != "1" {
		t.Errorf("a = %q after crash, want the synced 1", v)
	}
	if _, ok := d.Get("b"); !ok {
		t.Error("unsynced delete of b survived the crash")
	}
	if _, ok := d.Get("c"); ok {
		t.Error("unsynced write of c survived the crash")
	}
	if got := d.Keys(""); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("keys after crash %v", got)
	}
}

func TestDiskCopiesValues(t *testing.T) {
	d := sim.NewDisk()
	v := []byte("x")
	d.Set("k", v)
	v[0] = 'y'
	got, _ := d.Get("k")
	got[0] = 'z'
	if again, _ := d.Get("k"); string(again) != "x" {
		t.Fatalf("disk shares memory with its callers: %q", again)
	}
}

func TestDiskKeepRandomPrefix(t *testing.T) {
	// Over many crashes, the survivors are always a prefix of the
	// unsynced writes, and both the empty and the full prefix occur.
	rng := rand.New(rand.NewPCG(3, 4))
	lengths := make(map[int]bool)
	for range 200 {
		d := sim.NewDisk()
		d.SetCrashMode(sim.KeepRandomPrefix)
		for i := range 5 {
			d.Set(fmt.Sprintf("k%d", i), []byte("v"))
		}
		d.Crash(rng)
		keys := d.Keys("k")
		for i, k := range keys {
			if k != fmt.Sprintf("k%d", i) {
				t.Fatalf("survivors %v are not a prefix of the writes", keys)
			}
		}
		lengths[len(keys)] = true
	}
	for n := 0; n <= 5; n++ {
		if !lengths[n] {
			t.Errorf("no crash kept exactly %d of 5 unsynced writes", n)
		}
	}
}

func TestNodeCrashLosesUnsyncedWrites(t *testing.T) {
	s := sim.New(sim.Config{})
	s.AddNode(1, func(env *sim.Env) sim.Process {
		if env.Incarnation() == 0 {
			env.Disk().Set("synced", []byte("yes"))
			env.Disk().Sync()
			env.Disk().Set("unsynced", []byte("yes"))
		}
		return sim.ProcessFunc(func(sim.NodeID, any) {})
	})
	s.Crash(1)
	s.Restart(1)
	d := s.Disk(1)
	if _, ok := d.Get("synced"); !ok {
		t.Error("synced write lost")
	}
	if _, ok := d.Get("unsynced"); ok {
		t.Error("unsynced write survived")
	}
}
