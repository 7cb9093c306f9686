package bench

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestMissedAcks checks the client-side staleness check on its own, with
// the versions of both shapes.
func TestMissedAcks(t *testing.T) {
	eventual := []Ack{
		{Key: 0, At: 10, Version: "100.0.1"},
		{Key: 0, At: 20, Version: "90.5.2"}, // acknowledged later, yet older
		{Key: 0, At: 30, Version: "100.1.1"},
		{Key: 1, At: 10, Version: "100.0.2"},
	}
	log := []Ack{
		{Key: 0, At: 10, Version: "3.7"},
		{Key: 0, At: 20, Version: "3.9"},
		{Key: 1, At: 10, Version: "4.2"},
	}
	for _, tc := range []struct {
		name   string
		acks   []Ack
		read   Read
		missed int
	}{
		{"before any ack", eventual, Read{Key: 0, Sent: 5}, 0},
		{"the newest acked", eventual, Read{Key: 0, Sent: 25, Version: "100.0.1"}, 0},
		{"older than acked", eventual, Read{Key: 0, Sent: 25, Version: "90.5.2"}, 1},
		{"sent as the ack came: not before", eventual, Read{Key: 0, Sent: 30, Version: "100.0.1"}, 0},
		{"logical orders after wall", eventual, Read{Key: 0, Sent: 31, Version: "100.0.9"}, 1},
		{"node orders last", eventual, Read{Key: 0, Sent: 31, Version: "100.1.0"}, 1},
		{"newer than acked", eventual, Read{Key: 0, Sent: 31, Version: "100.1.2"}, 0},
		{"not found after an ack", eventual, Read{Key: 1, Sent: 11}, 1},
		{"not found before any ack", eventual, Read{Key: 1, Sent: 9}, 0},
		{"another key's ack", eventual, Read{Key: 2, Sent: 50, Version: "1.0.1"}, 0},
		{"log: the newest index", log, Read{Key: 0, Sent: 21, Version: "3.9"}, 0},
		{"log: an older index", log, Read{Key: 0, Sent: 21, Version: "3.7"}, 1},
		{"log: older, but its successor was in flight", log, Read{Key: 0, Sent: 15, Version: "3.7"}, 0},
		{"log: index orders numerically", log, Read{Key: 0, Sent: 21, Version: "3.10"}, 0},
		{"log: not found after an ack", log, Read{Key: 1, Sent: 11}, 1},
	} {
		check, err := MissedAcks(slices.Clone(tc.acks), []Read{tc.read})
		if err != nil || check.Missed != tc.missed || check.Reads != 1 {
			t.Errorf("%s: %+v, %v; want %d missed of 1", tc.name, check, err, tc.missed)
		}
		if tc.missed > 0 && len(check.Examples) != 1 {
			t.Errorf("%s: examples %q, want one", tc.name, check.Examples)
		}
	}
	for _, bad := range []string{"1.2.3.4", "1.x.3", "-", "", "1..3", "1.99999999999.3"} {
		if _, err := MissedAcks([]Ack{{Version: bad}}, nil); err == nil {
			t.Errorf("ack version %q accepted", bad)
		}
	}
	for _, bad := range []string{"1.x", "1.2.3.4", "-"} {
		if _, err := MissedAcks([]Ack{{Version: "1.0.1"}}, []Read{{Sent: 1, Version: bad}}); err == nil {
			t.Errorf("read version %q accepted", bad)
		}
	}
	// Versions that cannot be ordered are an error, not a guess.
	for _, tc := range []struct {
		acks  []Ack
		reads []Read
	}{
		{[]Ack{{Version: "3.7"}, {At: 1, Version: "100.0.1"}}, nil},
		{[]Ack{{Version: "3.7"}, {At: 1, Version: "4.8"}}, nil},
		{[]Ack{{Version: "3.7"}}, []Read{{Sent: 1, Version: "100.0.1"}}},
		{[]Ack{{Version: "3.7"}}, []Read{{Sent: 1, Version: "4.9"}}},
	} {
		if _, err := MissedAcks(tc.acks, tc.reads); !errors.Is(err, ErrIncomparable) {
			t.Errorf("acks %v, reads %v: %v, want ErrIncomparable", tc.acks, tc.reads, err)
		}
	}
}

// Many reads at once: the counts add up, not-found reads are counted
// whether or not they missed a write, and examples stop at their bound.
func TestMissedAcksCounts(t *testing.T) {
	acks := []Ack{{Key: 0, At: 10, Version: "1.5"}}
	var reads []Read
	for i := range 10 {
		reads = append(reads, Read{Key: 0, Sent: 20, Version: "1.4"})    // missed
		reads = append(reads, Read{Key: 0, Sent: 20, Version: "1.5"})    // fine
		reads = append(reads, Read{Key: 1, Sent: time.Duration(20 + i)}) // not found, never written
	}
	reads = append(reads, Read{Key: 0, Sent: 20}) // not found, missed
	check, err := MissedAcks(acks, reads)
	if err != nil {
		t.Fatal(err)
	}
	if check.Reads != 31 || check.Missed != 11 || check.NotFound != 11 || len(check.Examples) != maxStaleExamples {
		t.Fatalf("got %+v", check)
	}
}

func TestVersionString(t *testing.T) {
	for _, s := range []string{"3.7", "1700000000000000000.4.2"} {
		v, err := ParseVersion(s)
		if err != nil || v.String() != s {
			t.Errorf("ParseVersion(%q) = %v, %v", s, v, err)
		}
	}
}
