package storage

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestLogKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ rangeID, index uint64 }{
		{0, 0},
		{1, 1},
		{7, 1 << 32},
		{math.MaxUint64, math.MaxUint64},
		{math.MaxUint64, 0},
	} {
		key := LogKey(tc.rangeID, tc.index)
		if len(key) != logKeyLen {
			t.Fatalf("LogKey(%d, %d) has length %d, want %d", tc.rangeID, tc.index, len(key), logKeyLen)
		}
		r, i, err := DecodeLogKey(key)
		if err != nil || r != tc.rangeID || i != tc.index {
			t.Errorf("DecodeLogKey(LogKey(%d, %d)) = %d, %d, %v", tc.rangeID, tc.index, r, i, err)
		}
		if appended := AppendLogKey([]byte("buf"), tc.rangeID, tc.index); !bytes.Equal(appended[3:], key) {
			t.Errorf("AppendLogKey = %x, want buf+%x", appended, key)
		}
	}
}

func TestDataKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		rangeID uint64
		userKey []byte
	}{
		{1, []byte("a")},
		{1, []byte{}},
		{42, []byte{0x00, 0xFF, 0x00}},
		{math.MaxUint64, []byte("some/long/key")},
	} {
		key := DataKey(tc.rangeID, tc.userKey)
		r, uk, err := DecodeDataKey(key)
		if err != nil || r != tc.rangeID || !bytes.Equal(uk, tc.userKey) {
			t.Errorf("DecodeDataKey(DataKey(%d, %q)) = %d, %q, %v", tc.rangeID, tc.userKey, r, uk, err)
		}
		if appended := AppendDataKey([]byte("buf"), tc.rangeID, tc.userKey); !bytes.Equal(appended[3:], key) {
			t.Errorf("AppendDataKey = %x, want buf+%x", appended, key)
		}
	}
}

func TestDataKeyCopiesUserKey(t *testing.T) {
	uk := []byte("abc")
	key := DataKey(1, uk)
	uk[0] = 'z'
	if _, got, _ := DecodeDataKey(key); string(got) != "abc" {
		t.Fatalf("DataKey kept a reference to its argument: user key is now %q", got)
	}
}

func TestHintKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		target string
		seq    uint64
	}{
		{"node-1", 0},
		{"", 5},
		{"a\x00b", 9},
		{"\x00", math.MaxUint64},
		{"\x00\x01", 1},
		{"ünïcode", 3},
	} {
		key := HintKey(tc.target, tc.seq)
		target, seq, err := DecodeHintKey(key)
		if err != nil || target != tc.target || seq != tc.seq {
			t.Errorf("DecodeHintKey(HintKey(%q, %d)) = %q, %d, %v", tc.target, tc.seq, target, seq, err)
		}
		if !HintSpan(tc.target).Contains(key) {
			t.Errorf("HintSpan(%q) does not contain its key %x", tc.target, key)
		}
		if !AllHintsSpan().Contains(key) {
			t.Errorf("AllHintsSpan does not contain %x", key)
		}
	}
}

func TestAppliedStateKeyRoundTrip(t *testing.T) {
	for _, id := range []uint64{0, 1, 7, math.MaxUint64} {
		key := AppliedStateKey(id)
		got, err := DecodeAppliedStateKey(key)
		if err != nil || got != id {
			t.Errorf("DecodeAppliedStateKey(AppliedStateKey(%d)) = %d, %v", id, got, err)
		}
		if !AppliedStatesSpan().Contains(key) {
			t.Errorf("AppliedStatesSpan does not contain AppliedStateKey(%d)", id)
		}
	}
	for _, key := range [][]byte{LogKey(1, 2), DataKey(1, nil), DedupHorizonKey(1), HardStateKey(math.MaxUint64)} {
		if AppliedStatesSpan().Contains(key) {
			t.Errorf("AppliedStatesSpan contains %s", FormatKey(key))
		}
	}
}

func TestDecodeMalformedKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decode func() error
	}{
		{"log: empty", func() error { _, _, err := DecodeLogKey(nil); return err }},
		{"log: short", func() error { _, _, err := DecodeLogKey(LogKey(1, 2)[:logKeyLen-1]); return err }},
		{"log: long", func() error { _, _, err := DecodeLogKey(append(LogKey(1, 2), 0)); return err }},
		{"log: data key", func() error { _, _, err := DecodeLogKey(DataKey(1, []byte("12345678"))); return err }},
		{"data: short", func() error { _, _, err := DecodeDataKey(DataKey(1, nil)[:rangeKeyLen-1]); return err }},
		{"data: log key", func() error { _, _, err := DecodeDataKey(LogKey(1, 2)); return err }},
		{"hint: empty", func() error { _, _, err := DecodeHintKey(nil); return err }},
		{"hint: no terminator", func() error { _, _, err := DecodeHintKey([]byte{prefixHint, 'a'}); return err }},
		{"hint: bad escape", func() error { _, _, err := DecodeHintKey([]byte{prefixHint, 0x00, 0x07}); return err }},
		{"hint: trailing escape", func() error { _, _, err := DecodeHintKey([]byte{prefixHint, 'a', 0x00}); return err }},
		{"hint: short seq", func() error { _, _, err := DecodeHintKey(HintKey("a", 1)[:5]); return err }},
		{"hint: log key", func() error { _, _, err := DecodeHintKey(LogKey(1, 2)); return err }},
		{"applied: short", func() error { _, err := DecodeAppliedStateKey(AppliedStateKey(1)[:rangeKeyLen-1]); return err }},
		{"applied: long", func() error { _, err := DecodeAppliedStateKey(append(AppliedStateKey(1), 0)); return err }},
		{"applied: data key", func() error { _, err := DecodeAppliedStateKey(DataKey(1, nil)); return err }},
	} {
		if err := tc.decode(); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%s: got %v, want ErrMalformedKey", tc.name, err)
		}
	}
}

// TestKeyKindsAreDisjoint checks that every kind of key falls in exactly the
// spans of its own kind and range.
func TestCASStateKeyRoundTrip(t *testing.T) {
	for _, c := range []struct {
		rangeID uint64
		key     []byte
	}{{0, nil}, {1, []byte("phone")}, {math.MaxUint64, []byte{0, 0xFF, 1}}} {
		k := CASStateKey(c.rangeID, c.key)
		r, uk, err := DecodeCASStateKey(k)
		if err != nil || r != c.rangeID || !bytes.Equal(uk, c.key) {
			t.Fatalf("DecodeCASStateKey(CASStateKey(%d, %q)) = %d, %q, %v", c.rangeID, c.key, r, uk, err)
		}
		if !RangeStateSpan(c.rangeID).Contains(k) {
			t.Fatalf("CASStateKey(%d, %q) is outside the range's state span", c.rangeID, c.key)
		}
		if bytes.Equal(k, HardStateKey(c.rangeID)) || bytes.Equal(k, TruncatedStateKey(c.rangeID)) {
			t.Fatalf("CASStateKey(%d, %q) collides with another state key", c.rangeID, c.key)
		}
	}
	for _, bad := range [][]byte{nil, HardStateKey(1), DataKey(1, []byte("k")), {prefixConsensusState, 1}} {
		if _, _, err := DecodeCASStateKey(bad); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("DecodeCASStateKey(%x) = %v, want ErrMalformedKey", bad, err)
		}
	}
	if got, want := FormatKey(CASStateKey(3, []byte("k"))), `/State/r3/CAS/"k"`; got != want {
		t.Fatalf("FormatKey = %s, want %s", got, want)
	}
}

func TestKeyKindsAreDisjoint(t *testing.T) {
	const r = 7
	keys := map[string][]byte{
		"hard state":      HardStateKey(r),
		"truncated state": TruncatedStateKey(r),
		"cas empty":       CASStateKey(r, nil),
		"cas max":         CASStateKey(r, bytes.Repeat([]byte{0xFF}, 64)),
		"log first":       LogKey(r, 0),
		"log last":        LogKey(r, math.MaxUint64),
		"applied":         AppliedStateKey(r),
		"data empty":      DataKey(r, nil),
		"data max":        DataKey(r, bytes.Repeat([]byte{0xFF}, 64)),
	}
	spans := map[string]Span{
		"state":   RangeStateSpan(r),
		"log":     RangeLogSpan(r),
		"applied": RangeAppliedStateSpan(r),
		"data":    RangeDataSpan(r),
	}
	want := map[string]string{
		"hard state": "state", "truncated state": "state",
		"cas empty": "state", "cas max": "state",
		"log first": "log", "log last": "log",
		"applied":    "applied",
		"data empty": "data", "data max": "data",
	}
	for kname, key := range keys {
		for sname, span := range spans {
			if got := span.Contains(key); got != (want[kname] == sname) {
				t.Errorf("%s span %s contains %s key %s: %v", sname, span, kname, FormatKey(key), got)
			}
		}
		// No key of range r is in any span of ranges r-1 or r+1.
		for _, other := range []uint64{r - 1, r + 1} {
			for _, span := range ReplicaSpans(other) {
				if span.Contains(key) {
					t.Errorf("span %s of range %d contains %s", span, other, FormatKey(key))
				}
			}
		}
	}
	// Node metadata and hints are in no range's spans.
	for _, key := range [][]byte{IdentityKey(), NodeIDKey(), ClusterIDKey(), StoreVersionKey(), HintKey("n", 1)} {
		for _, span := range ReplicaSpans(r) {
			if span.Contains(key) {
				t.Errorf("span %s contains %s", span, FormatKey(key))
			}
		}
	}
}

func TestSpansOfLastRangeID(t *testing.T) {
	const r = math.MaxUint64
	for _, tc := range []struct {
		span Span
		key  []byte
	}{
		{RangeLogSpan(r), LogKey(r, math.MaxUint64)},
		{RangeDataSpan(r), DataKey(r, bytes.Repeat([]byte{0xFF}, 16))},
		{RangeStateSpan(r), TruncatedStateKey(r)},
		{RangeAppliedStateSpan(r), AppliedStateKey(r)},
	} {
		if !tc.span.Contains(tc.key) {
			t.Errorf("%s does not contain %s", tc.span, FormatKey(tc.key))
		}
	}
}

func TestLogSpan(t *testing.T) {
	s := LogSpan(3, 10, 20)
	for _, tc := range []struct {
		rangeID, index uint64
		want           bool
	}{
		{3, 9, false}, {3, 10, true}, {3, 19, true}, {3, 20, false},
		{2, 15, false}, {4, 15, false},
	} {
		if got := s.Contains(LogKey(tc.rangeID, tc.index)); got != tc.want {
			t.Errorf("LogSpan(3, 10, 20).Contains(LogKey(%d, %d)) = %v, want %v",
				tc.rangeID, tc.index, got, tc.want)
		}
	}
}

func TestDataPrefixSpan(t *testing.T) {
	s := DataPrefixSpan(5, []byte("user/"))
	for _, tc := range []struct {
		rangeID uint64
		key     string
		want    bool
	}{
		{5, "user/", true},
		{5, "user/\xff\xff", true},
		{5, "user", false},
		{5, "user0", false},
		{5, "users", false},
		{4, "user/a", false},
		{6, "user/a", false},
	} {
		if got := s.Contains(DataKey(tc.rangeID, []byte(tc.key))); got != tc.want {
			t.Errorf("DataPrefixSpan(5, user/).Contains(%d, %q) = %v, want %v", tc.rangeID, tc.key, got, tc.want)
		}
	}
	all := DataPrefixSpan(5, nil)
	if want := RangeDataSpan(5); !bytes.Equal(all.Start, want.Start) || !bytes.Equal(all.End, want.End) {
		t.Errorf("DataPrefixSpan(5, nil) = %s, want %s", all, want)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte{0x01}, []byte{0x02}},
		{[]byte{0x01, 0x02}, []byte{0x01, 0x03}},
		{[]byte{0x01, 0xFF}, []byte{0x02}},
		{[]byte{0x01, 0xFF, 0xFF}, []byte{0x02}},
	} {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestFormatKey(t *testing.T) {
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{nil, "/Min"},
		{NodeIDKey(), `/Meta/"node-id"`},
		{HardStateKey(3), "/State/r3/HardState"},
		{TruncatedStateKey(3), "/State/r3/TruncatedState"},
		{LogKey(3, 17), "/Log/r3/17"},
		{AppliedStateKey(3), "/Applied/r3"},
		{HintKey("n1", 4), `/Hint/"n1"/4`},
		{DataKey(3, []byte("k\x00")), `/Data/r3/"k\x00"`},
		{RangeLogSpan(3).End, "/Log/r4"},
		{AllHintsSpan().End, "/Data"},
		{[]byte{0x00, 0x01}, "/Unknown/0001"},
		{[]byte{0xFF}, "/Unknown/ff"},
		{[]byte{prefixLogEntry, 1, 2}, "/Log/0102"},
	} {
		if got := FormatKey(tc.key); got != tc.want {
			t.Errorf("FormatKey(%x) = %s, want %s", tc.key, got, tc.want)
		}
	}
}

// TestLogKeyOrder checks that encoded log keys sort like (rangeID, index).
func TestLogKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r1, i1 := rapid.Uint64().Draw(t, "r1"), rapid.Uint64().Draw(t, "i1")
		r2, i2 := rapid.Uint64().Draw(t, "r2"), rapid.Uint64().Draw(t, "i2")
		want := cmp.Or(cmp.Compare(r1, r2), cmp.Compare(i1, i2))
		if got := bytes.Compare(LogKey(r1, i1), LogKey(r2, i2)); got != want {
			t.Fatalf("compare(LogKey(%d,%d), LogKey(%d,%d)) = %d, want %d", r1, i1, r2, i2, got, want)
		}
	})
}

// TestDataKeyOrder checks that data keys sort by range, then by user key.
func TestDataKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Small ranges so that equal range IDs are drawn often.
		r1 := rapid.Uint64Range(0, 3).Draw(t, "r1")
		r2 := rapid.Uint64Range(0, 3).Draw(t, "r2")
		k1 := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "k1")
		k2 := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "k2")
		want := cmp.Or(cmp.Compare(r1, r2), bytes.Compare(k1, k2))
		if got := bytes.Compare(DataKey(r1, k1), DataKey(r2, k2)); got != want {
			t.Fatalf("compare(DataKey(%d,%x), DataKey(%d,%x)) = %d, want %d", r1, k1, r2, k2, got, want)
		}
	})
}

// TestHintKeyOrder checks that hint keys sort by target name, then sequence,
// and that one target's span never holds another target's hints (the
// escaping keeps "a" from being a prefix of "ab").
func TestHintKeyOrder(t *testing.T) {
	name := rapid.StringOfN(rapid.SampledFrom([]rune{0x00, 0x01, 'a', 'b', 0xFF}), 0, 4, -1)
	rapid.Check(t, func(t *rapid.T) {
		t1, t2 := name.Draw(t, "t1"), name.Draw(t, "t2")
		s1, s2 := rapid.Uint64().Draw(t, "s1"), rapid.Uint64().Draw(t, "s2")
		want := cmp.Or(strings.Compare(t1, t2), cmp.Compare(s1, s2))
		k1, k2 := HintKey(t1, s1), HintKey(t2, s2)
		if got := bytes.Compare(k1, k2); got != want {
			t.Fatalf("compare(HintKey(%q,%d), HintKey(%q,%d)) = %d, want %d", t1, s1, t2, s2, got, want)
		}
		if HintSpan(t1).Contains(k2) != (t1 == t2) {
			t.Fatalf("HintSpan(%q).Contains(HintKey(%q, %d)) = %v", t1, t2, s2, !(t1 == t2))
		}
	})
}

// TestRangeSpanProperty checks that a range's log and data keys are in its
// spans and not in any other range's.
func TestRangeSpanProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := rapid.Uint64().Draw(t, "r")
		other := rapid.Uint64().Draw(t, "other")
		idx := rapid.Uint64().Draw(t, "index")
		uk := rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(t, "userKey")
		log, data := LogKey(r, idx), DataKey(r, uk)
		if !RangeLogSpan(r).Contains(log) || !RangeDataSpan(r).Contains(data) {
			t.Fatalf("range %d's spans miss its own keys", r)
		}
		if other != r && (RangeLogSpan(other).Contains(log) || RangeDataSpan(other).Contains(data)) {
			t.Fatalf("range %d's spans contain range %d's keys", other, r)
		}
	})
}
