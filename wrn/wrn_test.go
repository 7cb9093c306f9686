package wrn

import (
	"errors"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/quorumkv/quorumkv/quorum"
)

func ts(wall int64, logical uint32) Timestamp { return Timestamp{WallTime: wall, Logical: logical} }

func TestClock(t *testing.T) {
	phys := int64(1000)
	c := NewClock(func() int64 { return phys }, 100*time.Nanosecond)
	for _, step := range []struct {
		name   string
		phys   int64
		remote *Timestamp
		want   Timestamp
		err    error
	}{
		{"physical time leads", 1000, nil, ts(1000, 0), nil},
		{"same instant: logical ticks", 1000, nil, ts(1000, 1), nil},
		{"clock went back: still monotonic", 900, nil, ts(1000, 2), nil},
		{"remote ahead within offset", 1000, &Timestamp{1050, 7}, ts(1050, 8), nil},
		{"local reading after the remote", 1010, nil, ts(1050, 9), nil},
		{"remote behind: ignored but ticks", 1060, &Timestamp{1000, 99}, ts(1060, 0), nil},
		{"remote equal wall: max logical + 1", 1060, &Timestamp{1060, 5}, ts(1060, 6), nil},
		{"remote too far ahead: refused", 1060, &Timestamp{1161, 0}, Timestamp{}, ErrClockOffset},
		{"refusal changed nothing", 1060, nil, ts(1060, 7), nil},
		{"physical time catches up", 2000, nil, ts(2000, 0), nil},
	} {
		phys = step.phys
		var got Timestamp
		var err error
		if step.remote != nil {
			got, err = c.Update(*step.remote)
		} else {
			got, err = c.Now()
		}
		if !errors.Is(err, step.err) || got != step.want {
			t.Fatalf("%s: got %v, %v; want %v, %v", step.name, got, err, step.want, step.err)
		}
	}
}

// Readings are strictly increasing and never fall behind a remote
// timestamp the clock accepted, whatever physical time does.
func TestPropertyClockMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		phys := int64(1_000_000)
		c := NewClock(func() int64 { return phys }, time.Microsecond)
		var last Timestamp
		maxPhys := phys
		for range rapid.IntRange(1, 100).Draw(t, "steps") {
			phys += rapid.Int64Range(-500, 500).Draw(t, "drift")
			maxPhys = max(maxPhys, phys)
			var got Timestamp
			var err error
			if rapid.Bool().Draw(t, "remote") {
				remote := Timestamp{WallTime: phys + rapid.Int64Range(-2000, 2000).Draw(t, "skew"), Logical: uint32(rapid.IntRange(0, 3).Draw(t, "l"))}
				got, err = c.Update(remote)
				if err == nil && !remote.Less(got) {
					t.Fatalf("Update(%v) = %v, not after it", remote, got)
				}
				if err != nil {
					if !errors.Is(err, ErrClockOffset) || remote.WallTime <= phys+1000 {
						t.Fatalf("Update(%v) at %d: %v", remote, phys, err)
					}
					continue
				}
			} else if got, err = c.Now(); err != nil {
				t.Fatal(err)
			}
			if !last.Less(got) {
				t.Fatalf("reading %v after %v", got, last)
			}
			// Bounded by the physical time seen plus the offset accepted.
			if got.WallTime > maxPhys+int64(time.Microsecond) {
				t.Fatalf("reading %v strays beyond physical time %d plus the offset", got, maxPhys)
			}
			last = got
		}
	})
}

func TestVersionOrder(t *testing.T) {
	a := Version{ts(10, 0), 2}
	b := Version{ts(10, 0), 3}
	c := Version{ts(10, 1), 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Compare(a) != 0 {
		t.Fatal("versions out of order")
	}
	tomb := Record{Version: c, Tombstone: true}
	if got := Merge(Record{Version: b, Value: []byte("x")}, tomb); !got.Tombstone || got.Exists() {
		t.Fatal("a newer delete must win")
	}
}

func mustSizes(t interface {
	Helper()
	Fatal(...any)
}, n, w, r int) Quorums {
	t.Helper()
	var ids []uint64
	for i := 1; i <= n; i++ {
		ids = append(ids, uint64(i))
	}
	q, err := SizeQuorums(ids, w, r)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestWrite(t *testing.T) {
	q := mustSizes(t, 3, 2, 2)
	w := q.NewWrite(false)
	w.Ack(1)
	if w.State() != Pending {
		t.Fatal("one ack of W=2 is not done")
	}
	w.Fail(2, "timeout")
	w.Fail(3, "connection refused")
	if w.State() != Failed {
		t.Fatal("two failures of three leave no W=2")
	}
	err := w.Err()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "write needs W=2 of N=3; 1 of 3 replicas acknowledged") ||
		!strings.Contains(err.Error(), "node 3: connection refused") {
		t.Fatalf("Err = %v", err)
	}
	if got := w.Unacknowledged(); len(got) != 2 || got[0] != 2 {
		t.Fatalf("Unacknowledged = %v", got)
	}

	// A hint counts only for sloppy writes.
	strict, sloppy := q.NewWrite(false), q.NewWrite(true)
	for _, x := range []*WriteTracker{strict, sloppy} {
		x.Ack(1)
		x.Fail(2, "down")
		x.Hinted(2)
	}
	if strict.State() != Pending || sloppy.State() != Done {
		t.Fatalf("hinted: strict %v, sloppy %v", strict.State(), sloppy.State())
	}
	if got := sloppy.Unacknowledged(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("a hinted replica still needs the write: %v", got)
	}
	// Answers from strangers and late failures change nothing.
	w = q.NewWrite(false)
	w.Ack(9)
	w.Ack(1)
	w.Ack(2)
	w.Fail(2, "late timeout after the ack")
	if w.State() != Done {
		t.Fatal("a failure after an ack undid it")
	}
}

func TestRead(t *testing.T) {
	q := mustSizes(t, 3, 2, 2)
	old := Record{Version: Version{ts(5, 0), 1}, Value: []byte("old")}
	cur := Record{Version: Version{ts(9, 0), 2}, Value: []byte("new")}
	r := q.NewRead()
	r.Reply(1, old)
	if r.State() != Pending {
		t.Fatal("one answer of R=2")
	}
	r.Reply(3, Record{})
	r.Reply(2, cur)
	if r.State() != Done || string(r.Result().Value) != "new" {
		t.Fatalf("state %v result %+v", r.State(), r.Result())
	}
	if got := r.Stale(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("Stale = %v", got)
	}
	r = q.NewRead()
	r.Fail(1, "down")
	r.Fail(2, "down")
	if r.State() != Failed || !strings.Contains(r.Err().Error(), "read needs R=2 of N=3; 0 of 3 replicas answered") {
		t.Fatalf("read with two failures: %v %v", r.State(), r.Err())
	}
}

func TestSizeQuorumsRejects(t *testing.T) {
	for _, c := range [][3]int{{3, 0, 1}, {3, 4, 1}, {3, 1, 0}, {0, 1, 1}} {
		var ids []uint64
		for i := 1; i <= c[0]; i++ {
			ids = append(ids, uint64(i))
		}
		if _, err := SizeQuorums(ids, c[1], c[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("N=%d W=%d R=%d accepted: %v", c[0], c[1], c[2], err)
		}
	}
	if n, err := ResolveSize("quorum", 5); n != 3 || err != nil {
		t.Errorf("quorum of 5 = %d, %v", n, err)
	}
}

func TestGeometryQuorums(t *testing.T) {
	sys, err := quorum.Parse("grid:2x2", []quorum.Node{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}})
	if err != nil {
		t.Fatal(err)
	}
	q := GeometryQuorums(sys)
	if !q.Intersect() {
		t.Fatal("a grid's rows meet its columns")
	}
	w := q.NewWrite(false)
	w.Ack(1)
	w.Ack(2) // a row: not a column
	if w.State() != Pending {
		t.Fatal("a row is no write set")
	}
	w.Ack(3) // 1 and 3 form a column
	if w.State() != Done {
		t.Fatal("a column is a write set")
	}
}

// The promise the W/R/N chapter makes: when W+R > N, every read that
// completes after a write completed sees it (or something newer); when
// W+R <= N, some read can miss it. Checked on every choice of write and
// read sets.
func TestPropertyReadSeesWrite(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "n")
		w := rapid.IntRange(1, n).Draw(t, "w")
		r := rapid.IntRange(1, n).Draw(t, "r")
		q := mustSizes(t, n, w, r)
		written := Record{Version: Version{ts(7, 0), 1}, Value: []byte("v")}
		write := q.NewWrite(false)
		stores := map[uint64]Record{}
		for _, id := range rapid.Permutation(q.Replicas()).Draw(t, "write order")[:w] {
			write.Ack(id)
			stores[id] = written
		}
		if write.State() != Done {
			t.Fatalf("W=%d acks not done", w)
		}
		read := q.NewRead()
		for _, id := range rapid.Permutation(q.Replicas()).Draw(t, "read order")[:r] {
			read.Reply(id, stores[id])
		}
		sees := read.Result().Version == written.Version
		if q.Intersect() && !sees {
			t.Fatalf("N=%d W=%d R=%d: read missed an acknowledged write", n, w, r)
		}
	})
}
