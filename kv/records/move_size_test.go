package records

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

// How fast a replica moves a split eventual range's upper half
// (kv/eventual/split.go's sweep: KeysOutside and MoveKey, a batch of
// 1024 keys at a time), on disk: a range of QKV_SWEEP_MIB MiB of 1 KiB
// records, half of them moved. Skipped unless QKV_SWEEP_MIB is set; it
// logs the figures.
func TestSweepThroughput(t *testing.T) {
	v := os.Getenv("QKV_SWEEP_MIB")
	if v == "" {
		t.Skip("QKV_SWEEP_MIB not set")
	}
	mib, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("QKV_SWEEP_MIB=%q: %v", v, err)
	}
	const valueSize = 1 << 10
	db, err := storage.Open(t.TempDir(), storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const from, to = 12, 13
	n := mib << 20 / valueSize
	value := make([]byte, valueSize)
	b := db.NewBatch()
	for i := range n {
		rec := EncodeRecord(wrn.Record{Version: ver(int64(i+1), 0, 1), Value: value})
		if err := b.Set(storage.DataKey(from, []byte(fmt.Sprintf("key-%09d", i))), rec); err != nil {
			t.Fatal(err)
		}
		if i%4096 == 4095 || i == n-1 {
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	b.Close()
	s := NewStore(db)
	left, _, _ := catalog.Span{}.Split()
	inSpan := func(key []byte) bool { return left.Contains(catalog.HashKey(key)) }
	start := time.Now()
	moved := 0
	var after []byte
	for {
		keys, next, err := s.KeysOutside(from, false, inSpan, after, 1024)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, err := s.MoveKey(from, to, k, MoveCanaries{}); err != nil {
				t.Fatal(err)
			}
		}
		moved += len(keys)
		if next == nil {
			break
		}
		after = next
	}
	if err := db.SyncWAL(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("moved %d of %d records of %d bytes (%.1f of %d MiB) in %v: %.0f records/s, %.1f MiB/s",
		moved, n, valueSize, float64(moved*valueSize)/(1<<20), mib, took.Round(time.Millisecond),
		float64(moved)/took.Seconds(), float64(moved*valueSize)/(1<<20)/took.Seconds())
	if moved < n/3 || moved > 2*n/3 {
		t.Errorf("moved %d of %d: not about half", moved, n)
	}
}
