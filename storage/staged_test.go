package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A staged file's range deletion clears the keys the database held in its
// span, but not the file's own keys there; the ingest is all or nothing
// across a crash, and the file must be finished (synced) to survive one.
func TestStagedIngest(t *testing.T) {
	db := openMem(t)
	set(t, db, "b1", "old", true)
	set(t, db, "b2", "old", true)
	set(t, db, "c", "outside", true)
	w, err := db.CreateStaged("s1")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(Span{Start: []byte("b"), End: []byte("bz")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]byte("b2"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := w.Set([]byte("b1"), []byte("x")); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("a key out of order: %v, want ErrInvalidOptions", err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	set(t, db, "a", "gone after ingest", true)
	before, err := db.CrashClone(vfs.CrashCloneCfg{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.IngestStaged(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	after, err := db.CrashClone(vfs.CrashCloneCfg{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"b2": "new", "c": "outside"}
	check := func(db *DB, want map[string]string) {
		t.Helper()
		for _, k := range []string{"a", "b1", "b2", "c"} {
			v, err := db.Get([]byte(k))
			if w, ok := want[k]; ok != (err == nil) || string(v) != w {
				t.Errorf("%s = %q, %v; want %q", k, v, err, w)
			}
		}
	}
	check(db, want)
	if err := db.RemoveStaged("s1"); err != nil {
		t.Fatal(err)
	}
	check(db, want) // Pebble linked the file: removing the staged name leaves the data
	for name, tc := range map[string]struct {
		fs   *vfs.MemFS
		want map[string]string
	}{
		"before": {before, map[string]string{"a": "gone after ingest", "b1": "old", "b2": "old", "c": "outside"}},
		"after":  {after, want},
	} {
		t.Run(name, func(t *testing.T) {
			re, err := Open(db.Dir(), Options{FS: tc.fs, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer closeDB(t, re)
			check(re, tc.want)
			names, err := re.StagedFiles()
			if err != nil || len(names) != 1 || names[0] != "s1" {
				t.Fatalf("staged files after the crash: %v, %v; want [s1]", names, err)
			}
		})
	}
}

func TestStagedNames(t *testing.T) {
	db := openMem(t)
	for _, name := range []string{"", "..", "a/b", `a\b`} {
		if _, err := db.CreateStaged(name); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("CreateStaged(%q): %v, want ErrInvalidOptions", name, err)
		}
	}
	if err := db.RemoveStaged("missing"); err != nil {
		t.Errorf("RemoveStaged of a missing file: %v", err)
	}
}
