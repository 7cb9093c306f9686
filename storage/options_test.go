package storage

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestOptionsDefaultsAreValid(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for name, got := range map[string]bool{
		"Logger":                      o.Logger != nil,
		"CacheSizeBytes":              o.CacheSizeBytes == defaultCacheSizeBytes,
		"MemTableSizeBytes":           o.MemTableSizeBytes == defaultMemTableSizeBytes,
		"MemTableStopWritesThreshold": o.MemTableStopWritesThreshold == defaultMemTableStopWritesThreshold,
		"L0CompactionThreshold":       o.L0CompactionThreshold == defaultL0CompactionThreshold,
		"L0StopWritesThreshold":       o.L0StopWritesThreshold == defaultL0StopWritesThreshold,
		"MaxConcurrentCompactions":    o.MaxConcurrentCompactions == defaultMaxConcurrentCompactions,
		"MaxOpenFiles":                o.MaxOpenFiles == defaultMaxOpenFiles,
		"MaxBatchBytes":               o.MaxBatchBytes == defaultMaxBatchBytes,
		"DiskSlowThreshold":           o.DiskSlowThreshold == defaultDiskSlowThreshold,
	} {
		if !got {
			t.Errorf("EnsureDefaults did not set %s to its default", name)
		}
	}
}

func TestOptionsEnsureDefaultsKeepsSetFields(t *testing.T) {
	l := slog.New(slog.DiscardHandler)
	o := Options{Logger: l, CacheSizeBytes: 1 << 20, L0StopWritesThreshold: 50, DiskSlowThreshold: time.Second}
	o.EnsureDefaults()
	if o.Logger != l || o.CacheSizeBytes != 1<<20 || o.L0StopWritesThreshold != 50 || o.DiskSlowThreshold != time.Second {
		t.Fatalf("EnsureDefaults overwrote set fields: %+v", o)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"nil logger", func(o *Options) { o.Logger = nil }, "Logger"},
		{"negative cache", func(o *Options) { o.CacheSizeBytes = -1 }, "CacheSizeBytes"},
		{"tiny memtable", func(o *Options) { o.MemTableSizeBytes = 1 << 10 }, "MemTableSizeBytes"},
		{"huge memtable", func(o *Options) { o.MemTableSizeBytes = 4 << 30 }, "MemTableSizeBytes"},
		{"largest memtable", func(o *Options) { o.MemTableSizeBytes = 4<<30 - 1 }, ""},
		{"one memtable", func(o *Options) { o.MemTableStopWritesThreshold = 1 }, "MemTableStopWritesThreshold"},
		{"zero L0 compaction", func(o *Options) { o.L0CompactionThreshold = -1 }, "L0CompactionThreshold"},
		{"stop before compaction", func(o *Options) {
			o.L0CompactionThreshold, o.L0StopWritesThreshold = 8, 8
		}, "L0StopWritesThreshold (8) must be greater than L0CompactionThreshold (8)"},
		{"stop after compaction", func(o *Options) {
			o.L0CompactionThreshold, o.L0StopWritesThreshold = 8, 9
		}, ""},
		{"no compactions", func(o *Options) { o.MaxConcurrentCompactions = -1 }, "MaxConcurrentCompactions"},
		{"few files", func(o *Options) { o.MaxOpenFiles = 3 }, "MaxOpenFiles"},
		{"tiny batches", func(o *Options) { o.MaxBatchBytes = 100 }, "MaxBatchBytes"},
		{"huge batches", func(o *Options) { o.MaxBatchBytes = 4 << 30 }, "MaxBatchBytes"},
		{"negative slow disk", func(o *Options) { o.DiskSlowThreshold = -time.Second }, "DiskSlowThreshold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			o.EnsureDefaults()
			tc.modify(&o)
			err := o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalidOptions mentioning %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "storage: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestOpenRejectsInvalidOptions(t *testing.T) {
	_, err := Open("db", Options{FS: vfs.NewMem(), L0CompactionThreshold: 10, L0StopWritesThreshold: 5})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Open = %v, want ErrInvalidOptions", err)
	}
}

func TestPebbleOptionsAreExplicit(t *testing.T) {
	o := Options{}
	o.EnsureDefaults()
	po := pebbleOptions(&o, vfs.NewMem(), o.Logger, &pebble.EventListener{})
	if po.FormatMajorVersion != formatMajorVersion || po.DisableWAL || po.WALBytesPerSync != 0 ||
		po.WALMinSyncInterval() != 0 || po.NoSyncOnClose {
		t.Errorf("WAL or format settings differ from the documented ones: %+v", po)
	}
	if po.MemTableSize != o.MemTableSizeBytes || po.CacheSize != o.CacheSizeBytes ||
		po.L0CompactionThreshold != o.L0CompactionThreshold || po.L0StopWritesThreshold != o.L0StopWritesThreshold ||
		po.MemTableStopWritesThreshold != o.MemTableStopWritesThreshold || po.MaxOpenFiles != o.MaxOpenFiles {
		t.Errorf("sizes not passed through: %+v", po)
	}
	if lo, hi := po.CompactionConcurrencyRange(); lo != 1 || hi != o.MaxConcurrentCompactions {
		t.Errorf("compaction concurrency = [%d, %d], want [1, %d]", lo, hi, o.MaxConcurrentCompactions)
	}
	for i, l := range po.Levels {
		if l.FilterPolicy == nil || l.Compression == nil {
			t.Errorf("level %d: filter policy or compression not set", i)
		}
	}
	// Pebble must accept them as they are.
	po.EnsureDefaults()
	if err := po.Validate(); err != nil {
		t.Errorf("Pebble rejects the options: %v", err)
	}
}

// TestFormatMajorVersionIsReleased guards the pin: it must be a format this
// Pebble supports and not an experimental one.
func TestFormatMajorVersionIsReleased(t *testing.T) {
	if formatMajorVersion < pebble.FormatMinSupported || formatMajorVersion > pebble.FormatNewest {
		t.Fatalf("formatMajorVersion %d outside [%d, %d]",
			formatMajorVersion, pebble.FormatMinSupported, pebble.FormatNewest)
	}
}
