package records

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/storage"
	"github.com/quorumkv/quorumkv/wrn"
)

func ver(wall int64, logical uint32, node uint64) wrn.Version {
	return wrn.Version{Timestamp: wrn.Timestamp{WallTime: wall, Logical: logical}, Node: node}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, rec := range []wrn.Record{
		{Version: ver(1, 0, 1), Value: []byte("v")},
		{Version: ver(1_700_000_000_000_000_000, 7, 3), Value: bytes.Repeat([]byte{0xff}, 1000)},
		{Version: ver(5, 1, 2), Tombstone: true},
		{Version: ver(5, ^uint32(0), ^uint64(0)), Value: nil},
		{Version: ver(-1, 0, 1), Value: []byte("before the epoch")},
	} {
		got, err := DecodeRecord(EncodeRecord(rec))
		if err != nil {
			t.Fatalf("%+v: %v", rec, err)
		}
		if got.Version != rec.Version || got.Tombstone != rec.Tombstone || !bytes.Equal(got.Value, rec.Value) {
			t.Fatalf("round trip of %+v gave %+v", rec, got)
		}
	}
}

func TestRecordDecodeRefuses(t *testing.T) {
	good := EncodeRecord(wrn.Record{Version: ver(1, 0, 1), Value: []byte("v")})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"format":     append([]byte{9}, good[1:]...),
		"truncated":  good[:len(good)-1],
		"trailing":   append(bytes.Clone(good), 0),
		"no version": EncodeRecord(wrn.Record{Value: []byte("v")}),
		"flags":      {recordFormatV1, 1, 0, 1, 0x80},
	} {
		if _, err := DecodeRecord(b); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// The replica store keeps the newest record: an older or equal version
// changes nothing, a tombstone wins over older values, reads see it.
func TestRecordStoreLastWriterWins(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewStore(db)
	key := []byte("k")
	if rec, err := s.Read(7, key); err != nil || !rec.Version.IsZero() {
		t.Fatalf("empty store read %+v, %v", rec, err)
	}
	steps := []struct {
		rec     wrn.Record
		applied bool
		want    string // the value then stored; "" = tombstone
	}{
		{wrn.Record{Version: ver(10, 0, 1), Value: []byte("a")}, true, "a"},
		{wrn.Record{Version: ver(9, 5, 2), Value: []byte("older")}, false, "a"},
		{wrn.Record{Version: ver(10, 0, 1), Value: []byte("same version")}, false, "a"},
		{wrn.Record{Version: ver(10, 0, 2), Value: []byte("b")}, true, "b"}, // node ID breaks the tie
		{wrn.Record{Version: ver(11, 0, 1), Tombstone: true}, true, ""},
		{wrn.Record{Version: ver(10, 9, 3), Value: []byte("late")}, false, ""},
	}
	for i, st := range steps {
		applied, _, err := s.Write(7, key, st.rec)
		if err != nil || applied != st.applied {
			t.Fatalf("step %d: applied %v, %v; want %v", i, applied, err, st.applied)
		}
		got, err := s.Read(7, key)
		if err != nil {
			t.Fatal(err)
		}
		if st.want == "" && !got.Tombstone || st.want != "" && string(got.Value) != st.want {
			t.Fatalf("step %d: stored %+v, want %q", i, got, st.want)
		}
	}
	if _, _, err := s.Write(7, key, wrn.Record{Value: []byte("x")}); !errors.Is(err, catalog.ErrInvalidArgument) {
		t.Fatalf("a record without a version: %v", err)
	}
	// Another range's key of the same name is another record.
	if rec, _ := s.Read(8, key); !rec.Version.IsZero() {
		t.Fatalf("range 8 sees range 7's record: %+v", rec)
	}
	for _, k := range []string{"k2", "k3", "a"} {
		if _, _, err := s.Write(7, []byte(k), wrn.Record{Version: ver(1, 0, 1), Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Scan(7, []byte("k"), []byte("k"), 10)
	if err != nil || len(got) != 2 || string(got[0].Key) != "k2" || string(got[1].Key) != "k3" {
		t.Fatalf("scan after k with prefix k: %+v, %v", got, err)
	}
}
