package store

import (
	"log/slog"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// countingCore counts the ticks its core is given.
type countingCore struct {
	consensus.Core
	ticks *int
}

func (c countingCore) Tick() {
	*c.ticks++
	c.Core.Tick()
}

// keepTime gives the cores every tick due by the time an event is handled,
// however few ticker events the loop saw: after a stall, the ticks it
// missed come at once, before anything else (up to maxCatchUpTicks), so a
// leader never counts its lease in ticks that fell behind time.
func TestKeepTimeCatchesUpTicks(t *testing.T) {
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := StoreConfig{TickInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Seed: 1,
		Self: catalog.NodeDescriptor{Name: "n1", Addr: "a", Zone: "z", Weight: 1}}
	s, err := OpenDriven(db, cfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	// A driven store has no loop for Close to stop.
	ticks := map[uint64]*int{}
	for id, r := range s.Replicas {
		if id == catalog.MetaRangeID {
			continue // MetaCore wants meta's own core
		}
		ticks[id] = new(int)
		r.Core = countingCore{Core: r.Core, ticks: ticks[id]}
	}
	if len(ticks) == 0 {
		t.Fatal("no replica to tick")
	}
	var now time.Duration
	s.clock = clockState{since: func() time.Duration { return now }}
	maxTicks := int(s.maxCatchUpTicks())
	want := 0
	for _, step := range []struct {
		elapsed time.Duration
		more    int
	}{
		{0, 0},
		{99 * time.Millisecond, 0},
		{100 * time.Millisecond, 1},
		{350 * time.Millisecond, 2}, // ticks 2 and 3: one ticker event, two ticks
		{399 * time.Millisecond, 0},
		{time.Minute, maxTicks}, // a long stall: capped
		{time.Minute + 100*time.Millisecond, 1},
	} {
		now = step.elapsed
		s.keepTime()
		want += step.more
		checked := 0
		for id, n := range ticks {
			if s.Replicas[id].Quiesced {
				continue
			}
			checked++
			if *n != want {
				t.Fatalf("at %v: range %d was ticked %d times, want %d", step.elapsed, id, *n, want)
			}
		}
		if checked == 0 {
			t.Fatalf("at %v: every range is quiesced, none to check", step.elapsed)
		}
	}
	if s.clock.ticks != 601 {
		t.Errorf("the clock counts %d ticks given after 60.1 s, want 601 (the capped ones skipped, not owed)", s.clock.ticks)
	}
}

// After a stall keepTime gives at most two election timeouts of ticks,
// the longer of Raft's and Multi-Paxos's: both protocols' leases must
// have ended by then, or a leader would count its lease in ticks behind
// time.
func TestMaxCatchUpTicksCoversBothProtocols(t *testing.T) {
	for _, c := range []struct {
		raft, paxos int
		want        int64
	}{
		{0, 0, 21},   // both defaults: 10
		{30, 0, 61},  // raft's longer
		{0, 25, 51},  // paxos's longer
		{12, 12, 25}, // equal
	} {
		s := &Store{Config: StoreConfig{Raft: raft.Config{ElectionTicks: c.raft}, Paxos: paxos.Config{ElectionTicks: c.paxos}}}
		if got := s.maxCatchUpTicks(); got != c.want {
			t.Errorf("ElectionTicks raft %d, paxos %d: maxCatchUpTicks %d, want %d", c.raft, c.paxos, got, c.want)
		}
	}
}
