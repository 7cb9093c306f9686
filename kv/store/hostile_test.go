package store

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/metrics"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// Forged Raft messages that panicked a node before (a heartbeat whose
// commit index is past the log, a snapshot message without a snapshot,
// entries out of order, an acknowledgement of entries never sent) are
// refused by the range's core and counted: the node stays up and its
// range keeps serving.
func TestForgedRaftMessagesAreRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, m := openSingle(ctx, t)
	st, err := s.RangeStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	self, term, last := s.NodeID(), st[catalog.MetaRangeID].Term, st[catalog.MetaRangeID].Commit
	forged := []raft.Message{
		{Type: raft.MsgHeartbeat, From: self + 1, To: self, Term: term + 1, Commit: last + 1000},
		{Type: raft.MsgSnap, From: self + 1, To: self, Term: term + 1},
		{Type: raft.MsgApp, From: self + 1, To: self, Term: term + 1, Index: last, LogTerm: term,
			Entries: []raft.Entry{{Index: last + 2, Term: term + 1}}},
		{Type: raft.MsgApp, From: self + 1, To: self, Term: term + 1, Index: last, LogTerm: term,
			Entries: []raft.Entry{{Index: last + 1, Term: term + 1, Type: raft.EntryConfChange, Data: []byte("garbage")}}},
		{Type: raft.MsgAppResp, From: self + 1, To: self, Term: term, Index: last + 1000},
	}
	for _, f := range forged {
		if !s.Step(catalog.MetaRangeID, consensus.PeerMessage{Raft: &f}) {
			t.Fatal("the store dropped a message: its queue is full")
		}
	}
	want := float64(len(forged))
	for testutil.ToFloat64(m.InvalidMessages.WithLabelValues(consensus.ProtocolRaft)) < want {
		if ctx.Err() != nil {
			t.Fatalf("%v of %v forged messages counted as invalid", testutil.ToFloat64(m.InvalidMessages.WithLabelValues(consensus.ProtocolRaft)), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the store stopped: %v", err)
	}
	// Still meta's leader, in the same Term: nothing changed.
	if err := s.ReadBarrier(ctx, catalog.MetaRangeID); err != nil {
		t.Fatalf("meta does not serve after the forged messages: %v", err)
	}
	if st, err := s.RangeStatuses(ctx); err != nil || st[catalog.MetaRangeID].Term != term || st[catalog.MetaRangeID].Leader != self {
		t.Fatalf("meta's status after the forged messages: %+v (%v); want leader %d in Term %d", st[catalog.MetaRangeID], err, self, term)
	}
}

// openSingle opens a store that founds a cluster of one node on an
// in-memory Pebble, and waits until it serves meta.
func openSingle(ctx context.Context, t *testing.T) (*Store, *metrics.Metrics) {
	t.Helper()
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := metrics.NewMetrics(nil)
	s, err := OpenStore(db, StoreConfig{TickInterval: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Seed: 1, Metrics: m,
		Self: catalog.NodeDescriptor{Name: "a", Addr: "a", Zone: "za", Weight: 1}}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.ReadBarrier(ctx, catalog.MetaRangeID); err != nil {
		t.Fatal(err)
	}
	return s, m
}
