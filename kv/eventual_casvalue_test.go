package kv

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/kv/internal/codec"

	"github.com/quorumkv/quorumkv/wrn"
)

func TestCASValueRoundTrip(t *testing.T) {
	id := func(i byte) casID { return casID{i} }
	full := casValue{}
	for i := range casHistoryLen + 5 {
		full = full.next(wrn.Record{Version: ver(int64(i+1)*1e6, uint32(i%3), uint64(i%5)), Value: fmt.Appendf(nil, "v%d", i)},
			casID{byte(i), byte(i >> 8)})
	}
	for _, tc := range []struct {
		name string
		v    casValue
	}{
		{"absent", casValue{}},
		{"one swap", casValue{}.next(wrn.Record{Version: ver(5, 1, 2), Value: []byte("x")}, casIDOf([]byte("order-1")))},
		{"tombstone", casValue{}.next(wrn.Record{Version: ver(5, 1, 2), Tombstone: true}, id(1))},
		{"empty value", casValue{}.next(wrn.Record{Version: ver(5, 1, 2), Value: []byte{}}, id(1))},
		{"full history", full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCASValue(encodeCASValue(tc.v))
			if err != nil {
				t.Fatal(err)
			}
			if got.seq != tc.v.seq || got.rec.Version != tc.v.rec.Version || got.rec.Tombstone != tc.v.rec.Tombstone ||
				!bytes.Equal(got.rec.Value, tc.v.rec.Value) || fmt.Sprint(got.hist) != fmt.Sprint(tc.v.hist) {
				t.Fatalf("round trip: %+v, want %+v", got, tc.v)
			}
		})
	}
	if len(full.hist) != casHistoryLen || full.seq != casHistoryLen+5 || full.hist[0].id != (casID{5}) {
		t.Fatalf("history after %d swaps: %d entries from %v at seq %d; want the last %d", casHistoryLen+5, len(full.hist), full.hist[0].id, full.seq, casHistoryLen)
	}
	// A bare record is the register's value before histories.
	legacy, err := decodeCASValue(encodeRecord(wrn.Record{Version: ver(3, 0, 1), Value: []byte("old")}))
	if err != nil || string(legacy.rec.Value) != "old" || legacy.seq != 0 || legacy.hist != nil {
		t.Fatalf("bare record: %+v, %v", legacy, err)
	}
}

func TestCASValueDecodeRefuses(t *testing.T) {
	one := encodeCASValue(casValue{}.next(wrn.Record{Version: ver(5, 1, 2), Value: []byte("x")}, casID{1}))
	long := casValue{seq: 100}
	for range casHistoryLen + 1 {
		long.hist = append(long.hist, casEntry{version: ver(1, 0, 1)})
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", []byte{9, 0, 0, 0}},
		{"truncated", one[:len(one)-2]},
		{"trailing bytes", append(bytes.Clone(one), 0)},
		{"history over the bound", encodeCASValue(long)},
		{"more entries than swaps", encodeCASValue(casValue{seq: 0, hist: []casEntry{{}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeCASValue(tc.b); !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("decode: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCASValueFindCovers(t *testing.T) {
	var v casValue
	for i := range casHistoryLen + 3 {
		v = v.next(wrn.Record{Version: ver(int64(i+1), 0, 1)}, casID{byte(i), byte(i >> 8)})
	}
	// Positions 4..casHistoryLen+3 are kept.
	last := uint64(casHistoryLen + 3)
	for _, tc := range []struct {
		seq  uint64
		want bool
	}{{1, false}, {3, false}, {4, true}, {last, true}, {last + 1, true}} {
		if got := v.covers(tc.seq); got != tc.want {
			t.Errorf("covers(%d) = %v, want %v", tc.seq, got, tc.want)
		}
	}
	if _, ok := v.find(casID{2}); ok {
		t.Error("found an entry dropped from the history")
	}
	if e, ok := v.find(casID{10}); !ok || e.version != ver(11, 0, 1) {
		t.Errorf("find: %+v, %v", e, ok)
	}
	if casIDOf([]byte("a")) == casIDOf([]byte("b")) {
		t.Error("two idempotency keys share an ID")
	}
	if n := len(encodeCASValue(v)); n > 16*casHistoryLen {
		t.Errorf("a full history takes %d bytes, more than 16 per entry", n)
	}
}

func TestPromiseRoundTrip(t *testing.T) {
	rec := wrn.Record{Version: ver(7, 0, 3), Tombstone: true}
	for _, tc := range []struct {
		accepted []byte
		rec      wrn.Record
	}{{nil, wrn.Record{}}, {[]byte("acc"), wrn.Record{}}, {nil, rec}, {[]byte("acc"), rec}} {
		acc, got, err := decodePromise(encodePromise(tc.accepted, tc.rec))
		if err != nil || !bytes.Equal(acc, tc.accepted) || got.Version != tc.rec.Version || got.Tombstone != tc.rec.Tombstone {
			t.Fatalf("promise %q %+v: %q %+v %v", tc.accepted, tc.rec, acc, got, err)
		}
	}
	if _, _, err := decodePromise([]byte("raw value")); !errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("a value without the promise format: %v", err)
	}
}
