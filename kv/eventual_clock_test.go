package kv

import (
	"errors"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/store"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"connectrpc.com/connect"
)

// The clock guard trusts a clock for a while after another replica
// accepted one of its versions, unless its versions ran ahead of the
// monotonic clock since (a step forward); and it fences a clock behind
// the versions it read until it catches up.
func TestClockGuard(t *testing.T) {
	var phys int64 = 1e18
	var mono time.Duration
	g := newClockGuard(func() int64 { return phys }, func() time.Duration { return mono })
	at := func(wall int64, m time.Duration) clockReading { return clockReading{wall: wall, mono: m} }
	if g.trusted(g.reading(phys)) {
		t.Fatal("trusted before any confirmation")
	}
	g.confirm(at(phys, 0))
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name string
		r    clockReading
		want bool
	}{
		{"in step", at(phys+100*ms, 100*time.Millisecond), true},
		{"slow", at(phys+50*ms, 100*time.Millisecond), true},
		{"ahead within tolerance", at(phys+140*ms, 100*time.Millisecond), true},
		{"stepped ahead", at(phys+2000*ms, 100*time.Millisecond), false},
		{"past the window", at(phys+2000*ms, 2*time.Second), false},
	} {
		if got := g.trusted(tc.r); got != tc.want {
			t.Errorf("%s: trusted = %v, want %v", tc.name, got, tc.want)
		}
	}

	if err := g.behind(); err != nil {
		t.Fatalf("behind with nothing seen: %v", err)
	}
	if !g.sawAhead(phys + 2000*ms) {
		t.Fatal("a version 2s ahead not taken")
	}
	if g.sawAhead(phys + int64(2*clockFenceMax)) {
		t.Fatal("a version past clockFenceMax taken for proof")
	}
	if err := g.behind(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("behind a version 2s ahead: %v", err)
	}
	phys += 1600 * ms // within the maximum offset of it now
	if err := g.behind(); err != nil {
		t.Fatalf("behind once caught up: %v", err)
	}
	// An HLC reading past the physical clock: following other nodes
	// within the offset, or its own readings before a step back.
	if err := g.runAhead(phys + 400*ms); err != nil {
		t.Fatalf("an HLC 400ms ahead: %v", err)
	}
	if err := g.runAhead(phys + 2000*ms); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("an HLC 2s ahead of its own clock: %v", err)
	}
}

// A replica's refusal (its handler answered before storing anything) is
// definite; a failure inside it, or of the call, is not.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"limit", &replicaError{code: connect.CodeResourceExhausted, err: catalog.ErrLimit}, true},
		{"no replica here", &replicaError{code: connect.CodeUnavailable, err: store.ErrNoReplicaHere}, true},
		{"clock", &replicaError{code: connect.CodeInvalidArgument, err: catalog.ErrInvalidArgument}, true},
		{"not sent", notSent(store.ErrUnavailable), true},
		{"disk", &replicaError{code: connect.CodeInternal, err: errors.New("sync failed")}, false},
		{"timeout", deadlineErr(), false},
		{"stream broke", store.ErrUnavailable, false},
	} {
		if got := refused(tc.err); got != tc.want {
			t.Errorf("%s: refused = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func deadlineErr() error { return errors.New("node 2 did not answer: context deadline exceeded") }
