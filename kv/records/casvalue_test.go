package records

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/wrn"
)

func TestCASValueRoundTrip(t *testing.T) {
	id := func(i byte) CASID { return CASID{i} }
	full := CASValue{}
	for i := range CASHistoryLen + 5 {
		full = full.Next(wrn.Record{Version: ver(int64(i+1)*1e6, uint32(i%3), uint64(i%5)), Value: fmt.Appendf(nil, "v%d", i)},
			CASID{byte(i), byte(i >> 8)})
	}
	for _, tc := range []struct {
		name string
		v    CASValue
	}{
		{"absent", CASValue{}},
		{"one swap", CASValue{}.Next(wrn.Record{Version: ver(5, 1, 2), Value: []byte("x")}, CASIDOf([]byte("order-1")))},
		{"tombstone", CASValue{}.Next(wrn.Record{Version: ver(5, 1, 2), Tombstone: true}, id(1))},
		{"empty value", CASValue{}.Next(wrn.Record{Version: ver(5, 1, 2), Value: []byte{}}, id(1))},
		{"full history", full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCASValue(EncodeCASValue(tc.v))
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq != tc.v.Seq || got.Rec.Version != tc.v.Rec.Version || got.Rec.Tombstone != tc.v.Rec.Tombstone ||
				!bytes.Equal(got.Rec.Value, tc.v.Rec.Value) || fmt.Sprint(got.Hist) != fmt.Sprint(tc.v.Hist) {
				t.Fatalf("round trip: %+v, want %+v", got, tc.v)
			}
		})
	}
	if len(full.Hist) != CASHistoryLen || full.Seq != CASHistoryLen+5 || full.Hist[0].id != (CASID{5}) {
		t.Fatalf("history after %d swaps: %d entries from %v at seq %d; want the last %d", CASHistoryLen+5, len(full.Hist), full.Hist[0].id, full.Seq, CASHistoryLen)
	}
	// A bare record is the register's value before histories.
	legacy, err := DecodeCASValue(EncodeRecord(wrn.Record{Version: ver(3, 0, 1), Value: []byte("old")}))
	if err != nil || string(legacy.Rec.Value) != "old" || legacy.Seq != 0 || legacy.Hist != nil {
		t.Fatalf("bare record: %+v, %v", legacy, err)
	}
}

func TestCASValueDecodeRefuses(t *testing.T) {
	one := EncodeCASValue(CASValue{}.Next(wrn.Record{Version: ver(5, 1, 2), Value: []byte("x")}, CASID{1}))
	long := CASValue{Seq: 100}
	for range CASHistoryLen + 1 {
		long.Hist = append(long.Hist, casEntry{Version: ver(1, 0, 1)})
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", []byte{9, 0, 0, 0}},
		{"truncated", one[:len(one)-2]},
		{"trailing bytes", append(bytes.Clone(one), 0)},
		{"history over the bound", EncodeCASValue(long)},
		{"more entries than swaps", EncodeCASValue(CASValue{Seq: 0, Hist: []casEntry{{}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeCASValue(tc.b); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("decode: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCASValueFindCovers(t *testing.T) {
	var v CASValue
	for i := range CASHistoryLen + 3 {
		v = v.Next(wrn.Record{Version: ver(int64(i+1), 0, 1)}, CASID{byte(i), byte(i >> 8)})
	}
	// Positions 4..casHistoryLen+3 are kept.
	last := uint64(CASHistoryLen + 3)
	for _, tc := range []struct {
		seq  uint64
		want bool
	}{{1, false}, {3, false}, {4, true}, {last, true}, {last + 1, true}} {
		if got := v.Covers(tc.seq); got != tc.want {
			t.Errorf("covers(%d) = %v, want %v", tc.seq, got, tc.want)
		}
	}
	if _, ok := v.Find(CASID{2}); ok {
		t.Error("found an entry dropped from the history")
	}
	if e, ok := v.Find(CASID{10}); !ok || e.Version != ver(11, 0, 1) {
		t.Errorf("find: %+v, %v", e, ok)
	}
	if CASIDOf([]byte("a")) == CASIDOf([]byte("b")) {
		t.Error("two idempotency keys share an ID")
	}
	if n := len(EncodeCASValue(v)); n > 16*CASHistoryLen {
		t.Errorf("a full history takes %d bytes, more than 16 per entry", n)
	}
}

func TestPromiseRoundTrip(t *testing.T) {
	rec := wrn.Record{Version: ver(7, 0, 3), Tombstone: true}
	for _, tc := range []struct {
		accepted []byte
		rec      wrn.Record
	}{{nil, wrn.Record{}}, {[]byte("acc"), wrn.Record{}}, {nil, rec}, {[]byte("acc"), rec}} {
		acc, got, err := DecodePromise(encodePromise(tc.accepted, tc.rec))
		if err != nil || !bytes.Equal(acc, tc.accepted) || got.Version != tc.rec.Version || got.Tombstone != tc.rec.Tombstone {
			t.Fatalf("promise %q %+v: %q %+v %v", tc.accepted, tc.rec, acc, got, err)
		}
	}
	if _, _, err := DecodePromise([]byte("raw value")); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("a value without the promise format: %v", err)
	}
}
