package store

import (
	"testing"

	"github.com/quorumkv/quorumkv/kv/consensus"
)

// Which rounds go on without their sync (syncs.go): only those whose
// replicas that must sync are all raft ranges, with no snapshot to
// install, in a store that syncs on a goroutine and has other work
// waiting (or a driven one given StartSync), unless WaitForSyncs or the
// AckBeforeSync canary says otherwise. A paxos range counts its own acceptor's vote when it fills
// a slot, so its promises and entries must be durable before the round
// goes on.
func TestCanSyncLater(t *testing.T) {
	raftR := &replica{Core: &consensus.RaftCore{}}
	paxosR := &replica{Core: &consensus.PaxosCore{}}
	must := func(r *replica) readyReplica { return readyReplica{r, consensus.Ready{MustSync: true}} }
	idle := func(r *replica) readyReplica { return readyReplica{r, consensus.Ready{}} }
	snap := readyReplica{raftR, consensus.Ready{MustSync: true, Snapshot: &consensus.RangeSnapshot{Index: 5}}}
	for _, tc := range []struct {
		name  string
		cfg   StoreConfig
		drive bool
		ready []readyReplica
		want  bool
	}{
		{"raft ranges", StoreConfig{}, false, []readyReplica{must(raftR), idle(raftR)}, true},
		{"a raft range's entries, a paxos range with nothing to sync", StoreConfig{}, false, []readyReplica{must(raftR), idle(paxosR)}, true},
		{"a paxos range's promise or entries", StoreConfig{}, false, []readyReplica{must(raftR), must(paxosR)}, false},
		{"a snapshot to install", StoreConfig{}, false, []readyReplica{snap}, false},
		{"WaitForSyncs", StoreConfig{WaitForSyncs: true}, false, []readyReplica{must(raftR)}, false},
		{"the AckBeforeSync canary", StoreConfig{Canary: Canary{AckBeforeSync: true}}, false, []readyReplica{must(raftR)}, false},
		{"a driven store", StoreConfig{}, true, []readyReplica{must(raftR)}, false},
		{"a driven store with StartSync", StoreConfig{StartSync: func() {}}, true, []readyReplica{must(raftR)}, true},
	} {
		s := &Store{Config: tc.cfg, driven: tc.drive, incoming: make(chan Inbound, 1)}
		s.incoming <- Inbound{} // a loop with work waiting
		if got := s.canSyncLater(tc.ready); got != tc.want {
			t.Errorf("%s: canSyncLater = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A loop with nothing waiting, no peer message and no held round,
	// waits for the sync itself.
	s := &Store{incoming: make(chan Inbound, 1)}
	if s.canSyncLater([]readyReplica{must(raftR)}) {
		t.Error("an idle loop: canSyncLater = true, want false")
	}
	s.syncs.held = []*heldRound{{seq: 1}}
	if !s.canSyncLater([]readyReplica{must(raftR)}) {
		t.Error("a loop with a round held: canSyncLater = false, want true")
	}
}
