package storage

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestPebbleLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := pebbleLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Infof("chatter %d", 1)
	if buf.Len() != 0 {
		t.Fatalf("Infof logged at Info: %q", buf.String())
	}
	l.Errorf("broken %d", 2)
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "broken 2") {
		t.Fatalf("Errorf logged %q", buf.String())
	}

	buf.Reset()
	debug := pebbleLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	debug.Infof("chatter %d", 1)
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "chatter 1") {
		t.Fatalf("Infof at Debug logged %q", buf.String())
	}
}

func TestPebbleLoggerFatalfPanics(t *testing.T) {
	var buf bytes.Buffer
	l := pebbleLogger{l: slog.New(slog.NewTextHandler(&buf, nil))}
	defer func() {
		r := recover()
		if s, ok := r.(string); !ok || !strings.Contains(s, "storage: pebble: cannot go on") {
			t.Fatalf("recovered %v, want a storage panic", r)
		}
		if !strings.Contains(buf.String(), "fatal=true") {
			t.Fatalf("Fatalf did not log before panicking: %q", buf.String())
		}
	}()
	l.Fatalf("cannot go %s", "on")
}

func TestEventListenerCounts(t *testing.T) {
	var buf bytes.Buffer
	stats := &eventStats{}
	el := newEventListener(slog.New(slog.NewTextHandler(&buf, nil)), stats)

	el.BackgroundError(errors.New("compaction failed"))
	el.DataCorruption(pebble.DataCorruptionInfo{Path: "000001.sst", Details: errors.New("bad checksum")})
	el.DiskSlow(vfs.DiskSlowInfo{Path: "000002.log"})
	el.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	el.WriteStallEnd()
	el.WriteStallEnd() // an end without a begin measures nothing

	switch {
	case stats.backgroundErrors.Load() != 1:
		t.Error("background error not counted")
	case stats.corruptions.Load() != 1:
		t.Error("corruption not counted")
	case stats.diskSlow.Load() != 1:
		t.Error("slow disk not counted")
	case stats.writeStalls.Load() != 1:
		t.Error("write stall not counted")
	case stats.writeStallNanos.Load() < 0 || stats.writeStallNanos.Load() > int64(1e10):
		t.Errorf("write stall duration %d ns is implausible", stats.writeStallNanos.Load())
	}
	for _, want := range []string{"compaction failed", "bad checksum", "memtable count limit reached"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
	// DiskSlow must not do IO: it logs nothing.
	if strings.Contains(buf.String(), "000002.log") {
		t.Error("DiskSlow logged")
	}
}
