package raft

import (
	"testing"
	"time"
)

// BenchmarkCommit measures proposals committed (and applied on every
// node) per second on an in-memory 3-node cluster: the cost of the core
// alone, with no disk and no network. batch is the number of proposals
// handled per Ready cycle: 1 is no batching (propose, then a full round of
// Ready/deliver until committed), larger values share one append, one
// MsgApp per follower and one round trip among the batch.
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(map[int]string{1: "batch=1", 16: "batch=16", 256: "batch=256"}[batch], func(b *testing.B) {
			e := newCluster(b, majorityConf(3), Config{})
			_ = e.node(1).rn.Campaign()
			e.stabilize()
			data := []byte("0123456789abcdef0123456789abcdef") // 32 bytes
			b.ResetTimer()
			start := time.Now()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				for range n {
					if err := e.node(1).rn.Propose(data); err != nil {
						b.Fatal(err)
					}
				}
				e.stabilize()
				done += n
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "proposals/s")
			if got := len(e.node(3).applied); got < b.N {
				b.Fatalf("node 3 applied %d of %d", got, b.N)
			}
		})
	}
}
