package kv

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/store"
)

// A leader that quiesces forgets its read lease (consensus.Core.ForgetLease):
// its ticks stop, and a lease is counted in ticks. The schedule that shows
// why, in raft and paxos keyspaces alike:
//
//  1. k=old is written, and the range goes idle and quiesces, its leader
//     holding a lease from the last heartbeats;
//  2. the leader's node is cut off from the others, which wake by its
//     silence and elect a new leader; k=new is written through it;
//  3. a read of k reaches the old leader (clients still reach it): it wakes
//     the range, and must not answer from the lease it held in 1.
//
// With the lease forgotten the read waits for a round the cut-off leader
// never completes; with the canary LeaseKeptOnQuiesce it answers old.
func TestQuiescedLeaderForgetsLease(t *testing.T) {
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		t.Run(string(mode), func(t *testing.T) {
			if got := readAfterQuiesce(t, mode, store.Canary{}); got == "old" {
				t.Fatalf("the deposed leader of a quiesced %s range read k=old from a lease it held before quiescing", mode)
			} else {
				t.Logf("the deposed leader's read: %s", got)
			}
		})
	}
}

// The canary: a leader that keeps its lease when it quiesces serves the
// stale read.
func TestCanaryLeaseKeptOnQuiesce(t *testing.T) {
	for _, mode := range []catalog.Mode{catalog.ModeRaft, catalog.ModePaxos} {
		t.Run(string(mode), func(t *testing.T) {
			if got := readAfterQuiesce(t, mode, store.Canary{LeaseKeptOnQuiesce: true}); got != "old" {
				t.Fatalf("the planted bug went unnoticed: the deposed leader's read: %s", got)
			}
		})
	}
}

// readAfterQuiesce runs the schedule above and returns what the old
// leader's read of k answered: "old", "new", or why it did not answer.
func readAfterQuiesce(t *testing.T, mode catalog.Mode, bug store.Canary) string {
	ks := catalog.KeyspaceDescriptor{Name: "lq", Mode: mode, Replicas: 3, Ranges: 1}
	c := newSimClusterWith(t, 1, 3, []catalog.KeyspaceDescriptor{ks}, func(c *simCluster) { c.canary = bug })
	rd := c.node(1).store.Catalog().Ranges[ks.Name][0]
	key := []byte("k")
	put := func(leader uint64, value string) {
		t.Helper()
		done := false
		cmd := &command.Command{Op: command.OpPut, Key: key, Value: []byte(value)}
		n := c.node(leader)
		if _, err := n.store.StartPropose(rd.ID, cmd, func(res command.Result) { done = res.Err == nil }); err != nil {
			t.Fatal(err)
		}
		n.round()
		c.require("the put of k="+value, 5*time.Second, func() bool { return done })
	}

	// 1.
	old := c.rangeLeader(rd.ID)
	put(old, "old")
	c.require("the range to quiesce on its leader", 10*time.Second, func() bool {
		r := c.node(old).store.Replicas[rd.ID]
		return r != nil && r.Quiesced
	})

	// 2.
	var others []sim.NodeID
	for _, id := range c.ids {
		if id != old {
			others = append(others, sim.NodeID(id))
		}
	}
	c.s.Net().Partition(sim.Isolate(others, sim.NodeID(old)))
	var next uint64
	c.require("another node to lead the range", 10*time.Second, func() bool {
		for _, id := range others {
			if r := c.node(uint64(id)).store.Replicas[rd.ID]; r != nil && r.Role == consensus.RoleLeader {
				next = uint64(id)
				return true
			}
		}
		return false
	})
	put(next, "new")

	// 3.
	n := c.node(old)
	var answer string
	err := n.store.StartRead(rd.ID, func(err error) {
		if err != nil {
			answer = fmt.Sprintf("refused: %v", err)
			return
		}
		kv, err := n.node.getApplied(ks.Name, rd, key)
		if err != nil {
			answer = fmt.Sprintf("read failed: %v", err)
			return
		}
		answer = string(kv.Value)
	})
	if err != nil {
		return fmt.Sprintf("refused at once: %v", err)
	}
	n.round()
	if err := c.s.RunUntil(func() bool { return answer != "" }, time.Second); errors.Is(err, sim.ErrDeadline) {
		return "no answer within 1s"
	} else if err != nil {
		t.Fatal(err)
	}
	return answer
}
