package eventual

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// The clock guard trusts a clock for a while after another replica
// accepted one of its versions, unless its versions ran ahead of the
// monotonic clock since (a step forward); and it fences a clock behind
// the versions it read until it catches up.
func TestClockGuard(t *testing.T) {
	var phys int64 = 1e18
	var mono time.Duration
	g := NewClockGuard(func() int64 { return phys }, func() time.Duration { return mono })
	at := func(wall int64, m time.Duration) ClockReading {
		return ClockReading{Wall: wall, Mono: m}
	}
	if g.Trusted(g.Reading(phys)) {
		t.Fatal("trusted before any confirmation")
	}
	g.Confirm(at(phys, 0))
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name string
		r    ClockReading
		want bool
	}{
		{"in step", at(phys+100*ms, 100*time.Millisecond), true},
		{"slow", at(phys+50*ms, 100*time.Millisecond), true},
		{"ahead within tolerance", at(phys+140*ms, 100*time.Millisecond), true},
		{"stepped ahead", at(phys+2000*ms, 100*time.Millisecond), false},
		{"past the window", at(phys+2000*ms, 2*time.Second), false},
	} {
		if got := g.Trusted(tc.r); got != tc.want {
			t.Errorf("%s: trusted = %v, want %v", tc.name, got, tc.want)
		}
	}

	if err := g.Behind(); err != nil {
		t.Fatalf("behind with nothing seen: %v", err)
	}
	if !g.SawAhead(phys + 2000*ms) {
		t.Fatal("a version 2s ahead not taken")
	}
	if g.SawAhead(phys + int64(2*ClockFenceMax)) {
		t.Fatal("a version past clockFenceMax taken for proof")
	}
	if err := g.Behind(); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("behind a version 2s ahead: %v", err)
	}
	phys += 1600 * ms // within the maximum offset of it now
	if err := g.Behind(); err != nil {
		t.Fatalf("behind once caught up: %v", err)
	}
	// An HLC reading past the physical clock: following other nodes
	// within the offset, or its own readings before a step back.
	if err := g.RunAhead(phys + 400*ms); err != nil {
		t.Fatalf("an HLC 400ms ahead: %v", err)
	}
	if err := g.RunAhead(phys + 2000*ms); !errors.Is(err, store.ErrUnavailable) {
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
		{"limit", &transport.ReplicaError{Code: connect.CodeResourceExhausted, Err: catalog.ErrLimit}, true},
		{"no replica here", &transport.ReplicaError{Code: connect.CodeUnavailable, Err: store.ErrNoReplicaHere}, true},
		{"clock", &transport.ReplicaError{Code: connect.CodeInvalidArgument, Err: catalog.ErrInvalidArgument}, true},
		{"not sent", transport.NotSent(store.ErrUnavailable), true},
		{"disk", &transport.ReplicaError{Code: connect.CodeInternal, Err: errors.New("sync failed")}, false},
		{"timeout", deadlineErr(), false},
		{"stream broke", store.ErrUnavailable, false},
	} {
		if got := transport.Refused(tc.err); got != tc.want {
			t.Errorf("%s: refused = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func deadlineErr() error { return errors.New("node 2 did not answer: context deadline exceeded") }
