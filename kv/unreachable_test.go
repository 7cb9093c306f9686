package kv

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
	"github.com/quorumkv/quorumkv/raft"
)

// A peer stream that cannot be opened drops its messages, and the
// transport says so, once per range and failure.
func TestTransportReportsDroppedMessages(t *testing.T) {
	var mu sync.Mutex
	reported := map[[2]uint64]int{}
	tr := transport.NewPeerTransport(1, "127.0.0.1:9", "c", func(uint64) (string, bool) { return "127.0.0.1:1", true }, transport.H2CClient(), kvtest.Quiet())
	defer tr.Close()
	tr.OnUnreachable(func(rangeID, to uint64) {
		mu.Lock()
		defer mu.Unlock()
		reported[[2]uint64{rangeID, to}]++
	})
	msg := consensus.PeerMessage{Raft: &raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 1}}
	waitUntil(t, "the dropped heartbeats of range 7 to node 2 to be reported", func() bool {
		tr.Send(7, msg)
		mu.Lock()
		defer mu.Unlock()
		return reported[[2]uint64{7, 2}] > 0
	})
}

// A report reaches the range's Raft leader, which stops replicating to
// the follower optimistically and probes it.
func TestReportUnreachableProbes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := openEventualCluster(t, ctx, func(int) NodeConfig { return NodeConfig{} })
	a := c.nodes[0]
	follower := c.nodes[1].store.NodeID()
	state := func() (raft.StateType, raft.ProgressState) {
		var st raft.Status
		if err := a.store.Do(ctx, func() { st = store.MetaCore(a.store.Replicas[catalog.MetaRangeID]).RawNode.Status() }); err != nil {
			t.Fatal(err)
		}
		return st.State, st.Progress[follower].State
	}
	waitUntil(t, "node a to lead meta and replicate to b", func() bool {
		role, pr := state()
		return role == raft.StateLeader && pr == raft.StateReplicate
	})
	var after raft.ProgressState
	if err := a.store.Do(ctx, func() {
		a.store.StepInbound(store.Inbound{RangeID: catalog.MetaRangeID, Unreachable: follower})
		after = store.MetaCore(a.store.Replicas[catalog.MetaRangeID]).RawNode.Status().Progress[follower].State
	}); err != nil {
		t.Fatal(err)
	}
	if after != raft.StateProbe {
		t.Fatalf("meta's leader after node %d was reported unreachable: %v, want probe", follower, after)
	}
}
