package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
	"pgregory.net/rapid"
)

// The chunk protocol of streamed snapshots (snapshot.go), without a store
// around it: a sender's snapSources over one database, a receiver's
// snapFetch into another, and the wire encodings between them.

const testRange = 7

func quietDB(t testing.TB, dir string) *storage.DB {
	t.Helper()
	opts := storage.Options{CacheSizeBytes: 8 << 20, MemTableSizeBytes: 4 << 20}
	var db *storage.DB
	var err error
	if dir == "" {
		db, err = storage.OpenMem(opts)
	} else {
		db, err = storage.Open(dir, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// fillRange writes n keys with values of size bytes to range testRange,
// a dedup horizon, and dedup answers: some kept, some older than the
// horizon (a snapshot leaves those out).
func fillRange(t testing.TB, db *storage.DB, n, size int) {
	t.Helper()
	b := db.NewBatch()
	flush := func() {
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		b = db.NewBatch()
	}
	val := make([]byte, size)
	for i := range n {
		binary.BigEndian.PutUint64(val, uint64(i))
		v := command.Value{Version: uint64(i + 1), Data: val}
		if err := b.Set(storage.DataKey(testRange, fmt.Appendf(nil, "key-%08d", i)), v.Encode()); err != nil {
			t.Fatal(err)
		}
		if b.Len() > 4<<20 {
			flush()
		}
	}
	const horizon = 1000
	if err := b.Set(storage.DedupHorizonKey(testRange), encodeDedupHorizon(horizon)); err != nil {
		t.Fatal(err)
	}
	for i, at := range []int64{500, 1500, 2500} {
		idem := fmt.Appendf(nil, "idem-%d", i)
		e := dedupEntry{at: at, res: command.Result{Version: uint64(i)}}.Encode()
		if err := errors.Join(b.Set(storage.DedupKey(testRange, idem), e),
			b.Set(storage.DedupExpiryKey(testRange, uint64(at), idem), nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Set(storage.AppliedStateKey(testRange), consensus.AppliedState(42)); err != nil {
		t.Fatal(err)
	}
	flush()
	b.Close()
}

func testConfig(chunk int) *StoreConfig {
	cfg := &StoreConfig{SnapshotChunkBytes: chunk}
	cfg.EnsureDefaults()
	return cfg
}

// transfer runs a whole transfer of h from src into dst over the wire
// encodings, passing each response through mangle (nil: untouched); it
// returns the fetch, whether it finished, and the error that ended it.
func transfer(t testing.TB, src *snapSources, dst *storage.DB, h SnapshotHandle, cfg *StoreConfig, mangle func(seq uint64, resp []byte) []byte) (*snapFetch, *stagedSnapshot, error) {
	t.Helper()
	f, err := newSnapFetch(dst, h, rand.Uint64(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for {
		req, err := DecodeChunkRequest(f.request().Encode())
		if err != nil {
			t.Fatal(err)
		}
		wire := src.serve(req).Encode()
		if mangle != nil {
			wire = mangle(f.seq, wire)
		}
		resp, err := DecodeChunkResponse(wire)
		if err == nil && !f.awaits(&resp) {
			err = fmt.Errorf("%w: an answer for another request", ErrSnapshotStream)
		}
		var done bool
		if err == nil {
			done, err = f.accept(&resp)
		}
		if err != nil {
			return f, nil, errors.Join(err, f.abort())
		}
		if done {
			st, err := f.finish()
			return f, st, err
		}
	}
}

func digest(t testing.TB, db *storage.DB) []byte {
	t.Helper()
	s := &Store{DB: db, Config: *testConfig(1 << 20)}
	d, err := s.RangeDigest(testRange)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A transfer moves the range's records in chunks of about
// SnapshotChunkBytes, and its ingest replaces what the receiver held in
// the range (a key it had that the snapshot lacks is gone) with the
// sender's state, forgotten dedup answers left out.
func TestSnapshotTransfer(t *testing.T) {
	src, dst := quietDB(t, ""), quietDB(t, "")
	fillRange(t, src, 300, 1000)
	b := dst.NewBatch()
	if err := errors.Join(b.Set(storage.DataKey(testRange, []byte("stale")), (&command.Value{Version: 1, Data: []byte("x")}).Encode()),
		b.Set(storage.DataKey(testRange+1, []byte("other range")), []byte("kept")), b.Commit(true)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	cfg := testConfig(16 << 10)
	sources := newSnapSources(cfg, 1)
	h, err := sources.open(src, 99, testRange, 42)
	if err != nil {
		t.Fatal(err)
	}
	f, st, err := transfer(t, sources, dst, h, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.seq < 10 {
		t.Errorf("%d chunks for 300 KB in chunks of 16 KiB", f.seq)
	}
	if f.records != 300+1+2+2 {
		t.Errorf("%d records, want 300 data, a horizon, 2 answers and their 2 expiry entries (one forgotten)", f.records)
	}
	if held, sending := sources.count(); held != 1 || sending != 0 {
		t.Errorf("after the transfer the sender holds %d snapshots and serves %d transfers, want 1 and 0", held, sending)
	}
	if err := dst.IngestStaged(context.Background(), st.file); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest(t, src), digest(t, dst)) {
		t.Error("the receiver's range differs from the sender's")
	}
	if _, err := dst.Get(storage.DataKey(testRange, []byte("stale"))); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a key the snapshot lacks survived its install: %v", err)
	}
	if v, err := dst.Get(storage.DataKey(testRange+1, []byte("other range"))); err != nil || string(v) != "kept" {
		t.Errorf("another range's key: %q, %v", v, err)
	}
	if applied, err := consensus.LoadApplied(dst, testRange); err != nil || applied != 42 {
		t.Errorf("applied index after the install: %d, %v; want 42", applied, err)
	}
	if st.horizon != 1000 {
		t.Errorf("horizon %d, want 1000", st.horizon)
	}
}

// The sender's side: a transfer asks in sequence, a snapshot that
// expired or never was is gone, and no more than MaxSnapshotSends
// transfers are served at once; idle transfers and snapshots expire, and
// a stopped store serves nothing.
func TestSnapshotSourceRules(t *testing.T) {
	src := quietDB(t, "")
	fillRange(t, src, 50, 100)
	cfg := testConfig(1 << 10)
	cfg.MaxSnapshotSends = 2
	cfg.SnapshotHoldTicks = 10
	s := newSnapSources(cfg, 1)
	h, _ := s.open(src, 5, testRange, 42)
	req := func(fetch, seq uint64) ChunkStatus {
		return s.serve(ChunkRequest{RangeID: testRange, SnapshotID: h.ID, FetchID: fetch, Seq: seq}).Status
	}
	for _, tc := range []struct {
		name        string
		fetch, seq  uint64
		snap, rng   uint64
		want        ChunkStatus
		description string
	}{
		{"start", 1, 0, 5, testRange, ChunkOK, ""},
		{"next", 1, 1, 5, testRange, ChunkOK, ""},
		{"again", 1, 1, 5, testRange, ChunkOK, "the last chunk asked again (its answer was lost)"},
		{"older", 1, 0, 5, testRange, ChunkRefused, "a chunk before the last"},
		{"skip", 1, 5, 5, testRange, ChunkRefused, "a chunk out of sequence"},
		{"unknown fetch", 9, 3, 5, testRange, ChunkRefused, "a fetch never started"},
		{"unknown snapshot", 1, 2, 6, testRange, ChunkGone, ""},
		{"other range", 1, 2, 5, testRange + 1, ChunkGone, ""},
		{"second", 2, 0, 5, testRange, ChunkOK, ""},
		{"third", 3, 0, 5, testRange, ChunkBusy, "over MaxSnapshotSends"},
	} {
		got := s.serve(ChunkRequest{RangeID: tc.rng, SnapshotID: tc.snap, FetchID: tc.fetch, Seq: tc.seq}).Status
		if got != tc.want {
			t.Errorf("%s: %v, want %v %s", tc.name, got, tc.want, tc.description)
		}
	}
	// The last chunk, served again, is the same chunk with the same counts,
	// and the transfer goes on from after it.
	first := s.serve(ChunkRequest{RangeID: testRange, SnapshotID: h.ID, FetchID: 2, Seq: 1})
	again := s.serve(ChunkRequest{RangeID: testRange, SnapshotID: h.ID, FetchID: 2, Seq: 1})
	if first.Status != ChunkOK || again.Status != ChunkOK || !bytes.Equal(first.Data, again.Data) || len(first.Data) == 0 ||
		first.Records != again.Records || first.Bytes != again.Bytes || first.Done != again.Done {
		t.Fatalf("chunk 1 served again differs: %v %d records %d bytes, then %v %d records %d bytes",
			first.Status, first.Records, first.Bytes, again.Status, again.Records, again.Bytes)
	}
	if got := req(2, 2); got != ChunkOK {
		t.Fatalf("the chunk after one served again: %v", got)
	}
	s.tick(5)
	if got := req(1, 2); got != ChunkOK {
		t.Fatalf("a transfer used within SnapshotHoldTicks: %v", got)
	}
	s.tick(14) // fetch 2 idle since 0, fetch 1 used at 5
	if got := req(3, 0); got != ChunkOK {
		t.Errorf("after an idle transfer expired, a new one: %v", got)
	}
	s.tick(100)
	if held, sending := s.count(); held != 0 || sending != 0 || s.held(h) {
		t.Errorf("after everything idle expired: %d held, %d sending, held(h) %v", held, sending, s.held(h))
	}
	if got := req(4, 0); got != ChunkGone {
		t.Errorf("an expired snapshot: %v, want gone", got)
	}
	h2, _ := s.open(src, 6, testRange, 42)
	s.stop()
	if s.held(h2) || req(5, 0) != ChunkGone {
		t.Error("a stopped store still serves")
	}
	if _, err := s.open(src, 7, testRange, 42); !errors.Is(err, ErrStopped) {
		t.Errorf("open after stop: %v", err)
	}
}

// Forged streams: each is refused with ErrSnapshotStream (or the
// sender's status), and leaves no staged file behind.
func TestSnapshotForgedStreams(t *testing.T) {
	src := quietDB(t, "")
	fillRange(t, src, 40, 200)
	cfg := testConfig(1 << 10)
	cfg.MaxSnapshotBytes = 1 << 20
	reencode := func(b []byte, f func(*ChunkResponse)) []byte {
		r, err := DecodeChunkResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		r.Data = bytes.Clone(r.Data)
		f(&r)
		return r.Encode()
	}
	record := func(kind byte, key, value []byte) []byte { return appendRecord(nil, kind, key, value) }
	value := (&command.Value{Version: 1, Data: []byte("v")}).Encode()
	for name, mangle := range map[string]func(seq uint64, b []byte) []byte{
		"truncated":   func(seq uint64, b []byte) []byte { return b[:len(b)/2] },
		"other range": func(seq uint64, b []byte) []byte { return reencode(b, func(r *ChunkResponse) { r.RangeID++ }) },
		"other snapshot": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.SnapshotID++ })
		},
		"late answer": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Seq = seq + 100 })
		},
		"count off": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Records++ })
		},
		"bytes off": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Bytes-- })
		},
		"oversize chunk": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) {
				r.Data = bytes.Repeat(record(recData, []byte("zz"), value), int(cfg.SnapshotChunkBytes+maxSnapshotRecordBytes)/10+1)
			})
		},
		"empty not done": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Data, r.Done, r.Records, r.Bytes = nil, false, 0, 0 })
		},
		"bad kind": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Data = append(r.Data, record(9, []byte("x"), nil)...) })
		},
		"out of order": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) {
				r.Data = append(r.Data, record(recData, []byte("a"), value)...)
				r.Records++
				r.Bytes = uint64(len(r.Data)) + r.Bytes - uint64(len(r.Data)-len(record(recData, []byte("a"), value)))
			})
		},
		"bad value": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Data = record(recData, []byte("key-00000000"), []byte{0xff}) })
		},
		"bad dedup": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Data = record(recDedup, []byte("i"), []byte{1}) })
		},
		"bad expiry": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Data = record(recExpiry, []byte("short"), nil) })
		},
		"two horizons": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) {
				r.Data = append(record(recHorizon, nil, []byte{5}), record(recHorizon, nil, []byte{6})...)
			})
		},
		"huge record": func(seq uint64, b []byte) []byte {
			e := codec.Enc{}
			e.Byte(recData)
			e.Bytes([]byte("k"))
			e.Uint(1 << 40) // a length no chunk holds
			return reencode(b, func(r *ChunkResponse) { r.Data = e.Buf })
		},
		"status gone": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) { r.Status = ChunkGone })
		},
		"status unknown": func(seq uint64, b []byte) []byte { b = bytes.Clone(b); b[1] = 200; return b },
		"over MaxSnapshotBytes": func(seq uint64, b []byte) []byte {
			return reencode(b, func(r *ChunkResponse) {
				big := bytes.Repeat([]byte{'v'}, 900<<10)
				r.Data = record(recData, fmt.Appendf(nil, "zz%d", seq), (&command.Value{Version: 1, Data: big}).Encode())
				r.Done = false
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			dst := quietDB(t, "")
			s := newSnapSources(cfg, 1)
			h, _ := s.open(src, 5, testRange, 42)
			_, st, err := transfer(t, s, dst, h, cfg, mangle)
			if err == nil {
				t.Fatalf("the forged stream was taken (%+v)", st)
			}
			if name == "status gone" {
				if !strings.Contains(err.Error(), "snapshot gone") {
					t.Errorf("err %v", err)
				}
			} else if !errors.Is(err, ErrSnapshotStream) && !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("err %v, want ErrSnapshotStream", err)
			}
			if files, err := dst.StagedFiles(); err != nil || len(files) != 0 {
				t.Errorf("staged files left: %v, %v", files, err)
			}
		})
	}
}

// The decoders of everything a transfer receives never panic and never
// allocate past their input, whatever the bytes.
func TestSnapshotWireDecodersTotal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "bytes")
		_, _ = DecodeSnapshotHandle(b)
		_, _ = DecodeChunkRequest(b)
		_, _ = DecodeChunkResponse(b)
		_, _, _ = nextRecord(b)
		_, _, _ = decodeInstallMarker(b)
	})
	h := SnapshotHandle{Node: 1, RangeID: 2, ID: 3, Index: 4}
	if got, err := DecodeSnapshotHandle(h.Encode()); err != nil || got != h {
		t.Errorf("handle round trip: %+v, %v", got, err)
	}
	// A snapshot of the old inline encodings is refused, not misread.
	for _, old := range [][]byte{{consensus.CodecV1}, {2, 1, 1, 'k', 1, 'v'}} {
		if _, err := DecodeSnapshotHandle(old); err == nil {
			t.Errorf("an inline snapshot %x decoded as a handle", old)
		}
	}
}

// Streaming holds a chunk, not the range: a transfer of a range of
// QKV_SNAP_BIG MiB (64 by default; 8 with -short or the race detector)
// between two on-disk databases grows the heap by far less than the
// range. It logs the figures.
func TestSnapshotTransferMemory(t *testing.T) {
	mib := 64
	if v := os.Getenv("QKV_SNAP_BIG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("QKV_SNAP_BIG=%q: %v", v, err)
		}
		mib = n
	}
	if testing.Short() || raceEnabled {
		mib = 8
	}
	src, dst := quietDB(t, t.TempDir()), quietDB(t, t.TempDir())
	const valueSize = 16 << 10
	fillRange(t, src, mib<<20/valueSize, valueSize)
	cfg := testConfig(1 << 20)
	sources := newSnapSources(cfg, 1)
	h, _ := sources.open(src, 5, testRange, 42)

	// A tight GC target, so that the peak measures what the transfer keeps
	// alive rather than garbage not yet collected (the default lets the
	// heap double first: about 30 MiB above the base for any size).
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	base := liveHeap()
	rssBase := rssKiB(t, "VmRSS")
	heapPeak := watchHeap()
	start := time.Now()
	f, st, err := transfer(t, sources, dst, h, cfg, nil)
	if err == nil {
		err = dst.IngestStaged(context.Background(), st.file)
	}
	elapsed := time.Since(start)
	peak := heapPeak()
	if err != nil {
		t.Fatal(err)
	}
	growth := int64(peak) - int64(base)
	rssGrowth := rssKiB(t, "VmHWM") - rssBase
	t.Logf("range of %d MiB in %d chunks, %d records: %.0f MiB/s; live heap peak %.1f MiB above the %.1f MiB before; RSS high-water mark %.1f MiB above the RSS before",
		f.bytes>>20, f.seq, f.records, float64(f.bytes)/(1<<20)/elapsed.Seconds(), float64(growth)/(1<<20), float64(base)/(1<<20), float64(rssGrowth)/1024)
	// What stays alive is a chunk or two and the sstable writer's blocks.
	if limit := int64(16 << 20); growth > limit {
		t.Errorf("the heap grew by %d MiB while a %d MiB range streamed, want under %d MiB", growth>>20, mib, limit>>20)
	}
	if !bytes.Equal(digest(t, src), digest(t, dst)) {
		t.Error("the receiver's range differs from the sender's")
	}
}

// watchHeap samples the live heap (liveHeap) every 2 ms, collecting
// garbage every 20 ms so that the samples are fresh whatever the load
// allocates, until the function it returns is called, which returns the
// largest.
func watchHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			if i%10 == 9 {
				runtime.GC()
			}
			if h := liveHeap(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// liveHeap is the heap the last GC found alive (runtime/metrics
// /gc/heap/live:bytes). Unlike HeapAlloc it leaves out garbage not yet
// collected, which grows when the GC gets little CPU: a 128 MiB split
// measured 0.9 MiB of HeapAlloc growth alone and 24 MiB on a machine
// busy with other builds, with the same live heap.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// rssKiB reads a field of /proc/self/status (0 where there is none).
func rssKiB(t testing.TB, field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
