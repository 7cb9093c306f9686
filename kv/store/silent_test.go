package store

import "testing"

// A node is silent once it has gone unheard for more than silentTicks of
// the store's ticks; one never heard from, once an election timeout has
// passed since the store started.
func TestSilent(t *testing.T) {
	s := &Store{}
	step := func(ticks int64, id uint64, want bool) {
		t.Helper()
		s.heard.ticks.Store(ticks)
		if got := s.Silent(id); got != want {
			t.Fatalf("at tick %d, Silent(%d) = %t, want %t", ticks, id, got, want)
		}
	}
	step(0, 2, false)  // too early to tell
	step(10, 2, false) // still within an election timeout
	step(11, 2, true)  // never heard from
	s.heard.heardFrom(2, 11)
	step(11, 2, false)
	step(11+silentTicks, 2, false)
	step(12+silentTicks, 2, true)
	s.heard.heardFrom(2, 20) // heard again
	step(20, 2, false)
	step(20, 3, true) // another node, never heard from
}
