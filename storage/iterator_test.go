package storage

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func fill(t *testing.T, db *DB, keys ...string) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		must(t, b.Set([]byte(k), []byte("v"+k)))
	}
	must(t, b.Commit(false))
}

func TestIteratorBoundsAndDirections(t *testing.T) {
	db := openMem(t)
	fill(t, db, "a", "b", "c", "d", "e")
	it, err := db.NewIter(Span{Start: []byte("b"), End: []byte("e")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()

	var fwd, back []string
	for ok := it.First(); ok; ok = it.Next() {
		fwd = append(fwd, string(it.Key()))
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		back = append(back, string(it.Key()))
	}
	if !slices.Equal(fwd, []string{"b", "c", "d"}) || !slices.Equal(back, []string{"d", "c", "b"}) {
		t.Fatalf("forward %q, backward %q", fwd, back)
	}

	for _, tc := range []struct {
		name string
		op   func() bool
		want string // "" = not valid
	}{
		{"SeekGE inside", func() bool { return it.SeekGE([]byte("c")) }, "c"},
		{"SeekGE between", func() bool { return it.SeekGE([]byte("bb")) }, "c"},
		{"SeekGE below lower bound", func() bool { return it.SeekGE([]byte("a")) }, "b"},
		{"SeekGE at upper bound", func() bool { return it.SeekGE([]byte("e")) }, ""},
		{"SeekLT inside", func() bool { return it.SeekLT([]byte("d")) }, "c"},
		{"SeekLT above upper bound", func() bool { return it.SeekLT([]byte("z")) }, "d"},
		{"SeekLT at lower bound", func() bool { return it.SeekLT([]byte("b")) }, ""},
	} {
		ok := tc.op()
		if ok != it.Valid() {
			t.Errorf("%s: returned %v but Valid() = %v", tc.name, ok, it.Valid())
		}
		got := ""
		if ok {
			got = string(it.Key())
			if v, err := it.Value(); err != nil || string(v) != "v"+got {
				t.Errorf("%s: Value() = %q, %v", tc.name, v, err)
			}
		}
		if got != tc.want {
			t.Errorf("%s: at %q, want %q", tc.name, got, tc.want)
		}
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
}

func TestIteratorCopiesBounds(t *testing.T) {
	db := openMem(t)
	fill(t, db, "a", "b", "c")
	start, end := []byte("a"), []byte("c")
	it, err := db.NewIter(Span{Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	start[0], end[0] = 'b', 'z' // the caller reuses its buffers
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key()))
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("iterator followed the caller's modified bounds: %q", got)
	}
}

func TestIteratorNilLowerBound(t *testing.T) {
	db := openMem(t)
	fill(t, db, "a", "b", "c")
	// Without a lower bound the scan starts at the first key of all: the
	// node metadata that Open wrote.
	got := scan(t, db, Span{End: []byte("c")})
	want := []string{string(StoreVersionKey()) + "=" + string(binary.BigEndian.AppendUint64(nil, storeVersion)), "a=va", "b=vb"}
	if !slices.Equal(got, want) {
		t.Fatalf("scan = %q, want %q", got, want)
	}
}

func TestIteratorInvalidBounds(t *testing.T) {
	db := openMem(t)
	for _, s := range []Span{
		{Start: []byte("a")},
		{Start: []byte("b"), End: []byte("a")},
	} {
		if it, err := db.NewIter(s); !errors.Is(err, ErrInvalidSpan) {
			if err == nil {
				it.Close()
			}
			t.Errorf("NewIter(%s) = %v, want ErrInvalidSpan", s, err)
		}
	}
}

func TestIteratorCloseTwice(t *testing.T) {
	db := openMem(t)
	it, err := db.NewIter(Span{End: []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	must(t, it.Close())
	must(t, it.Close())
}

func TestSnapshotIsolation(t *testing.T) {
	db := openMem(t)
	fill(t, db, "a", "b")
	snap := db.NewSnapshot()
	defer snap.Close()

	b := db.NewBatch()
	defer b.Close()
	must(t, b.Set([]byte("a"), []byte("new")))
	must(t, b.Delete([]byte("b")))
	must(t, b.Set([]byte("c"), []byte("vc")))
	must(t, b.Commit(false))

	if v, ok := mustGet(t, snap, "a"); !ok || v != "va" {
		t.Errorf("snapshot Get(a) = %q, %v; want va", v, ok)
	}
	if _, ok := mustGet(t, snap, "c"); ok {
		t.Error("snapshot sees a key written after it")
	}
	all := Span{Start: []byte("a"), End: []byte("z")}
	if got := scan(t, snap, all); !slices.Equal(got, []string{"a=va", "b=vb"}) {
		t.Errorf("snapshot scan = %q", got)
	}
	if got := scan(t, db, all); !slices.Equal(got, []string{"a=new", "c=vc"}) {
		t.Errorf("db scan = %q", got)
	}

	must(t, snap.Close())
	must(t, snap.Close())
	if _, err := snap.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get on a closed snapshot = %v, want ErrClosed", err)
	}
	if _, err := snap.NewIter(all); !errors.Is(err, ErrClosed) {
		t.Errorf("NewIter on a closed snapshot = %v, want ErrClosed", err)
	}
}

// TestIteratorSeesCommitsBeforeCreation checks the documented read view:
// an iterator sees what was committed before NewIter, not after.
func TestIteratorSeesCommitsBeforeCreation(t *testing.T) {
	db := openMem(t)
	fill(t, db, "a")
	it, err := db.NewIter(Span{Start: []byte("a"), End: []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	fill(t, db, "b")
	var got []string
	for ok := it.First(); ok; ok = it.Next() {
		got = append(got, string(it.Key()))
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Fatalf("iterator saw %q, want [a]", got)
	}
}
