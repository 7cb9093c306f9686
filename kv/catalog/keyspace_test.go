package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestKeyspaceNormalize(t *testing.T) {
	for _, c := range []struct {
		in   KeyspaceDescriptor
		want KeyspaceDescriptor // when err is ""
		err  string
	}{
		{in: KeyspaceDescriptor{Name: "default", Mode: ModeRaft, Replicas: 1},
			want: KeyspaceDescriptor{Name: "default", Mode: ModeRaft, Replicas: 1, Quorum: "majority", Ranges: 8}},
		{in: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3},
			want: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, Quorum: "majority", Ranges: 8, W: 2, R: 2}},
		{in: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 5, Quorum: "flexible:2,4"},
			want: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 5, Quorum: "flexible:2,4", Ranges: 8, W: 4, R: 2}},
		{in: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, W: 3, R: 1},
			want: KeyspaceDescriptor{Name: "ev", Mode: ModeEventual, Replicas: 3, Quorum: "majority", Ranges: 8, W: 3, R: 1}},
		{in: KeyspaceDescriptor{Name: "g", Mode: ModePaxos, Replicas: 9, Quorum: " grid:3x3", Ranges: 2},
			want: KeyspaceDescriptor{Name: "g", Mode: ModePaxos, Replicas: 9, Quorum: "grid:3x3", Ranges: 2}},
		{in: KeyspaceDescriptor{Name: "Bad", Mode: ModeRaft, Replicas: 3}, err: "keyspace name"},
		{in: KeyspaceDescriptor{Name: strings.Repeat("a", 64), Mode: ModeRaft, Replicas: 3}, err: "keyspace name"},
		{in: KeyspaceDescriptor{Name: "x", Mode: "dynamo", Replicas: 3}, err: `mode "dynamo"`},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeRaft, Replicas: 0}, err: "replicas 0"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeRaft, Replicas: 25}, err: "replicas 25"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeRaft, Replicas: 3, Ranges: 5000}, err: "ranges 5000"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeRaft, Replicas: 3, Quorum: "hexagon"}, err: `invalid geometry "hexagon"`},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeRaft, Replicas: 3, W: 2}, err: "for eventual keyspaces"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeEventual, Replicas: 3, W: 1, R: 2}, err: "w=1 + r=2 must exceed the 3 replicas"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeEventual, Replicas: 3, W: 4}, err: "w=4: want 1 to the 3 replicas"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeEventual, Replicas: 5, Quorum: "flexible:2,2"}, err: "w=2 + r=2 must exceed the 5 replicas"},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeEventual, Replicas: 9, Quorum: "grid:3x3", R: 3}, err: "apply to majority and flexible only"},
		{in: KeyspaceDescriptor{Name: "p", Mode: ModePaxos, Replicas: 3, NoReadLease: true},
			want: KeyspaceDescriptor{Name: "p", Mode: ModePaxos, Replicas: 3, Quorum: "majority", Ranges: 8, NoReadLease: true}},
		{in: KeyspaceDescriptor{Name: "x", Mode: ModeEventual, Replicas: 3, NoReadLease: true}, err: "read leases are for raft and paxos keyspaces"},
	} {
		d := c.in
		err := d.Normalize()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%+v: err %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || d != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.in, d, err, c.want)
		}
	}
}

// Raft and paxos keyspaces read from leases unless NoReadLease; eventual
// ones never do.
func TestKeyspaceReadLease(t *testing.T) {
	for _, c := range []struct {
		d    KeyspaceDescriptor
		want bool
	}{
		{KeyspaceDescriptor{Mode: ModeRaft}, true},
		{KeyspaceDescriptor{Mode: ModeRaft, NoReadLease: true}, false},
		{KeyspaceDescriptor{Mode: ModePaxos}, true},
		{KeyspaceDescriptor{Mode: ModePaxos, NoReadLease: true}, false},
		{KeyspaceDescriptor{Mode: ModeEventual}, false},
	} {
		if got := c.d.ReadLease(); got != c.want {
			t.Errorf("%s keyspace, NoReadLease %v: ReadLease() = %v, want %v", c.d.Mode, c.d.NoReadLease, got, c.want)
		}
	}
}

func TestLimits(t *testing.T) {
	l := DefaultLimits()
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckKey(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty key: %v", err)
	}
	if err := l.CheckKey(make([]byte, 4097)); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxKeyBytes") {
		t.Errorf("long key: %v", err)
	}
	if err := l.CheckKey(make([]byte, 4096)); err != nil {
		t.Errorf("4 KiB key: %v", err)
	}
	if err := l.CheckValue(make([]byte, 1<<20+1)); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "MaxValueBytes") {
		t.Errorf("large value: %v", err)
	}
	l.MaxRequestBytes = l.MaxValueBytes
	if err := l.Validate(); err == nil {
		t.Error("request limit below the largest put accepted")
	}
}
