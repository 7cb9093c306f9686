package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// Staged sstables: files written beside the LSM, key by key in order, and
// then ingested into it in one atomic step (IngestStaged). A range
// snapshot that arrives in chunks is written this way (kv/store), so that
// neither side holds the range in memory and a crash leaves either none of
// it in the database or all of it.
//
// They live in the directory stagingDir inside the database's directory,
// on the same filesystem (Pebble links them in when it ingests them;
// Pebble ignores a directory it does not know in its own).
const stagingDir = "staging"

// stagedPath is the path of the staged file name.
func (db *DB) stagedPath(name string) string {
	return db.fs.PathJoin(db.dir, stagingDir, name)
}

// checkStagedName refuses names that would leave the staging directory.
func checkStagedName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("%w: staged file name %q", ErrInvalidOptions, name)
	}
	return nil
}

// SSTWriter writes one staged sstable. Keys must be added in strictly
// increasing order, range deletions in order of their start and not
// overlapping; a point key and a range deletion in the same file do not
// delete each other (they get one sequence number at ingest). It copies
// the keys and values it is given. Not safe for concurrent use.
type SSTWriter struct {
	db   *DB
	name string
	w    *sstable.Writer
	last []byte
	done bool
}

// CreateStaged creates the staged sstable name, replacing one of that
// name. The caller must Finish or Abort it.
func (db *DB) CreateStaged(name string) (*SSTWriter, error) {
	if err := checkStagedName(name); err != nil {
		return nil, err
	}
	dir := db.fs.PathJoin(db.dir, stagingDir)
	if err := db.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: staging directory: %w", err)
	}
	// The directory's entry must survive a crash as the files in it must.
	if err := syncDir(db, db.dir); err != nil {
		return nil, err
	}
	f, err := db.fs.Create(db.stagedPath(name), "")
	if err != nil {
		return nil, fmt.Errorf("storage: create staged %s: %w", name, err)
	}
	opts := sstable.WriterOptions{TableFormat: db.pdb.TableFormat(), Comparer: pebble.DefaultComparer}
	return &SSTWriter{db: db, name: name, w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), opts)}, nil
}

// Name is the staged file's name, for IngestStaged and RemoveStaged.
func (w *SSTWriter) Name() string { return w.name }

// Set adds key with value. key must sort after every key added before.
func (w *SSTWriter) Set(key, value []byte) error {
	if err := w.order(key); err != nil {
		return err
	}
	return w.w.Set(key, value)
}

// Delete adds a point deletion of key, under the same order as Set.
func (w *SSTWriter) Delete(key []byte) error {
	if err := w.order(key); err != nil {
		return err
	}
	return w.w.Delete(key)
}

// DeleteRange deletes every key of span from the database at ingest (but
// none of this file's own keys).
func (w *SSTWriter) DeleteRange(span Span) error {
	return w.w.DeleteRange(span.Start, span.End)
}

func (w *SSTWriter) order(key []byte) error {
	if w.last != nil && bytes.Compare(key, w.last) <= 0 {
		return fmt.Errorf("storage: staged %s: key %s after %s: %w", w.name, FormatKey(key), FormatKey(w.last), ErrInvalidOptions)
	}
	w.last = append(w.last[:0], key...)
	return nil
}

// EstimatedSize is about how many bytes the file holds so far.
func (w *SSTWriter) EstimatedSize() uint64 { return w.w.Raw().EstimatedSize() }

// Finish writes the rest of the file and syncs it and its directory entry:
// once it returns, the file survives a crash.
func (w *SSTWriter) Finish() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("storage: finish staged %s: %w", w.name, err)
	}
	return syncDir(w.db, w.db.fs.PathJoin(w.db.dir, stagingDir))
}

// Abort closes the file unfinished and removes it.
func (w *SSTWriter) Abort() error {
	if !w.done {
		w.done = true
		_ = w.w.Close() // the file is removed: its error says nothing more
	}
	return w.db.RemoveStaged(w.name)
}

// IngestStaged adds the finished staged files to the database in one
// atomic step: after a crash the database holds all of their keys (and
// their range deletions took effect) or none. The files must not overlap
// each other. They stay in the staging directory; remove them with
// RemoveStaged.
func (db *DB) IngestStaged(ctx context.Context, names ...string) error {
	paths := make([]string, len(names))
	for i, n := range names {
		if err := checkStagedName(n); err != nil {
			return err
		}
		paths[i] = db.stagedPath(n)
	}
	if err := db.pdb.Ingest(ctx, paths); err != nil {
		return fmt.Errorf("storage: ingest %v: %w", names, err)
	}
	return nil
}

// RemoveStaged removes a staged file; a missing one is not an error.
func (db *DB) RemoveStaged(name string) error {
	if err := checkStagedName(name); err != nil {
		return err
	}
	if err := db.fs.Remove(db.stagedPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: remove staged %s: %w", name, err)
	}
	return nil
}

// StagedFiles lists the staged files, finished or not.
func (db *DB) StagedFiles() ([]string, error) {
	names, err := db.fs.List(db.fs.PathJoin(db.dir, stagingDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: list staged files: %w", err)
	}
	return names, nil
}

func syncDir(db *DB, dir string) error {
	d, err := db.fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("storage: open %s: %w", dir, err)
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
