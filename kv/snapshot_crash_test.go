package kv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/storage"
)

// A crash at any step of a snapshot's arrival and install leaves the
// replica as it was or holding the whole snapshot, never a mix: the
// receiver's disk is cloned as a crash would leave it (vfs CrashClone:
// what was not synced is lost) at every step (StoreConfig.SnapshotHook),
// and each clone is opened as a restarted node would open it.
func TestSnapshotInstallCrashPoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &memTransport{stores: map[uint64]*store.Store{}}
	type clone struct {
		step string
		fs   *vfs.MemFS
	}
	var mu sync.Mutex
	var clones []clone
	var dbB *storage.DB
	cfg := func(name string, weight int) store.StoreConfig {
		c := store.StoreConfig{TickInterval: 5 * time.Millisecond, Logger: kvtest.Quiet(), Seed: uint64(weight),
			LogTruncateEntries: 8, LogKeepEntries: 2, SnapshotChunkBytes: 4 << 10, NoLeaderBalancing: true,
			Self: catalog.NodeDescriptor{Name: name, Addr: name, Zone: "z" + name, Weight: weight}}
		if name == "b" {
			c.SnapshotHook = func(step string) {
				fs, err := dbB.CrashClone(vfs.CrashCloneCfg{})
				if err != nil {
					panic(err)
				}
				mu.Lock()
				clones = append(clones, clone{step, fs})
				mu.Unlock()
			}
		}
		return c
	}
	dbA, err := storage.OpenMem(storage.Options{Logger: kvtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	a, err := store.OpenStore(dbA, cfg("a", 2), tr, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tr.mu.Lock()
	tr.stores[a.NodeID()] = a
	tr.mu.Unlock()
	na, err := NewNode(a, NodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer na.Close()
	if dbB, err = storage.OpenMem(storage.Options{Logger: kvtest.Quiet()}); err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	b, rangeID := joinWeighted(t, ctx, na, dbB, cfg("b", 1), tr, "rx", catalog.ModeRaft)
	defer b.Close()
	put := func(i int) {
		t.Helper()
		if _, err := kvtest.Retry(t, func() (string, error) {
			return na.Put(ctx, "rx", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d-%0500d", i, 0))
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(0)
	waitUntil(t, "b to apply the first write", func() bool {
		return replicaStatus(t, b, rangeID).Applied >= replicaStatus(t, a, rangeID).Applied
	})
	oldApplied := replicaStatus(t, b, rangeID).Applied

	tr.cut.Store(rangeID)
	const n = 40
	for i := 1; i < n; i++ {
		put(i)
	}
	tr.cut.Store(0)
	waitUntil(t, "b to catch up", func() bool {
		return replicaStatus(t, b, rangeID).Applied >= replicaStatus(t, a, rangeID).Applied
	})

	mu.Lock()
	defer mu.Unlock()
	steps := map[string]int{}
	for _, c := range clones {
		steps[c.step]++
	}
	if steps["chunk"] < 3 || steps["staged"] != 1 || steps["before-ingest"] != 1 || steps["after-ingest"] != 1 {
		t.Fatalf("crash points seen: %v; want several chunks and one of every other step", steps)
	}
	for i, c := range clones {
		t.Run(fmt.Sprintf("%02d-%s", i, c.step), func(t *testing.T) {
			db, err := storage.Open("db", storage.Options{FS: c.fs, Logger: kvtest.Quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := store.OpenDriven(db, cfg("b", 1), nil, false); err != nil {
				t.Fatalf("the node does not restart: %v", err)
			}
			applied, err := consensus.LoadApplied(db, rangeID)
			if err != nil {
				t.Fatal(err)
			}
			keys := 0
			if err := command.EachData(db, rangeID, nil, nil, func(k, v []byte) (bool, error) { keys++; return true, nil }); err != nil {
				t.Fatal(err)
			}
			installed := c.step == "before-ingest" || c.step == "after-ingest"
			// The old replica's apply of the one write is in an unsynced
			// batch (the round that commits does not sync): the crash may
			// lose it, and the restarted node applies it again from its
			// log, which holds it durably.
			oldKeys := 0
			if applied == oldApplied {
				oldKeys = 1
			}
			var last uint64
			if !installed {
				log, err := consensus.LoadRaftLog(db, rangeID)
				if err != nil {
					t.Fatal(err)
				}
				last = log.Last
			}
			switch {
			case !installed && (applied > oldApplied || keys != oldKeys || last < oldApplied):
				t.Errorf("the old replica should be whole: applied %d (want at most %d), %d keys (want %d), log up to %d (want at least %d)",
					applied, oldApplied, keys, oldKeys, last, oldApplied)
			case installed && (applied <= oldApplied || keys < n-5):
				t.Errorf("the snapshot should be whole: applied %d (was %d), %d keys (want about %d)", applied, oldApplied, keys, n)
			}
			if files, err := db.StagedFiles(); err != nil || len(files) != 0 {
				t.Errorf("staged files left after the restart: %v, %v", files, err)
			}
		})
	}
}
