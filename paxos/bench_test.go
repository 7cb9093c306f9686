package paxos_test

import (
	"math/rand/v2"
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// benchNet is the leanest driver: three nodes, a FIFO network, no faults,
// no checks; persistence is free. It measures the core's own cost per
// chosen slot, to compare with the Raft core's benchmark.
type benchNet struct {
	nodes map[uint64]*paxos.RawNode
	queue []paxos.Message
}

func newBenchNet(b *testing.B, window int, maxMsg uint64) *benchNet {
	m := majority(3)
	n := &benchNet{nodes: map[uint64]*paxos.RawNode{}}
	for _, v := range m.Voters {
		rn, err := paxos.NewRawNode(paxos.Config{
			ID: v.ID, Rand: rand.New(rand.NewPCG(1, v.ID)),
			MaxOpenSlots: window, MaxSizePerMsg: maxMsg,
		}, paxos.Bootstrap(m))
		if err != nil {
			b.Fatal(err)
		}
		n.nodes[v.ID] = rn
	}
	n.nodes[1].Campaign()
	n.pump()
	return n
}

// pump runs Readies and delivers messages until everything is quiet.
func (n *benchNet) pump() {
	for {
		busy := false
		for id := uint64(1); id <= 3; id++ {
			rn := n.nodes[id]
			if rn.HasReady() {
				busy = true
				rd := rn.Ready()
				n.queue = append(n.queue, rd.Messages...)
				rn.Advance(rd)
			}
		}
		for len(n.queue) > 0 {
			busy = true
			m := n.queue[0]
			n.queue = n.queue[1:]
			_ = n.nodes[m.To].Step(m)
		}
		if !busy {
			return
		}
	}
}

// BenchmarkSlotsChosen reports slots chosen per second on the leader of
// an in-memory 3-node group, 64-byte values:
//
//	serial      one open slot: each slot waits for the previous one
//	pipelined   64 open slots, one entry per Accept message
//	batched     64 open slots, as many entries per Accept as fit
func BenchmarkSlotsChosen(b *testing.B) {
	for _, bc := range []struct {
		name   string
		window int
		maxMsg uint64
	}{
		{"serial", 1, 1},
		{"pipelined", 64, 1},
		{"batched", 64, 1 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := newBenchNet(b, bc.window, bc.maxMsg)
			leader := n.nodes[1]
			value := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			start := leader.Status().Commit
			for proposed := 0; proposed < b.N; {
				for k := 0; k < bc.window && proposed < b.N; k++ {
					if err := leader.Propose(value); err != nil {
						b.Fatal(err)
					}
					proposed++
				}
				n.pump()
				if c := leader.Status().Commit; c%8192 < uint64(bc.window) {
					for _, rn := range n.nodes {
						if _, err := rn.Compact(rn.Status().Applied, nil); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			chosen := leader.Status().Commit - start
			if chosen != uint64(b.N) {
				b.Fatalf("chose %d slots, want %d", chosen, b.N)
			}
			b.ReportMetric(float64(chosen)/b.Elapsed().Seconds(), "slots/s")
		})
	}
}
