package kv

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/internal/kvtest"
	"github.com/quorumkv/quorumkv/kv/store"
)

// Streamed snapshots in the whole-node simulator (kv/store/snapshot.go):
// a replica cut off while its range grows by many MiB, and the leader
// compacts its log, catches up from a snapshot pulled in chunks, in raft
// and in paxos ranges; a bad stream installs nothing and stops nothing;
// and the canary that installs a transfer before its last chunk is
// caught.

// bigSnapshotBytes is how much the range grows while its replica is cut
// off, in values of bigValueBytes: 8 chunks of the default 1 MiB; under
// the race detector, which makes each MiB take half a minute, 8 chunks of
// 64 KiB, in values small enough that the log still outgrows what the
// leader keeps.
func bigSnapshotBytes() int {
	if raceEnabled {
		return 512 << 10
	}
	return 8 << 20
}

func bigValueBytes() int {
	if raceEnabled {
		return 4 << 10
	}
	return 64 << 10
}

// growWhileCutOff cuts a replica of the first range of keyspace ks off,
// writes bigSnapshotBytes to the range, heals, and returns the range
// and the replica that was cut off.
func growWhileCutOff(c *simCluster, ks string) (*catalog.RangeDescriptor, *simNode) {
	c.t.Helper()
	rd := c.node(1).store.Catalog().Ranges[ks][0]
	leader := c.node(c.rangeLeader(rd.ID))
	lagging := c.node(c.otherReplica(rd, leader.id))
	heal := c.isolate(lagging.id)
	valueSize := bigValueBytes()
	for batch := range bigSnapshotBytes() / valueSize / 16 {
		var answers []error
		for i := range 16 {
			cmd := &command.Command{Op: command.OpPut, Key: fmt.Appendf(nil, "big%04d", batch*16+i), Value: bytes.Repeat([]byte{byte(i)}, valueSize)}
			if _, err := leader.store.StartPropose(rd.ID, cmd, func(r command.Result) { answers = append(answers, r.Err) }); err != nil {
				c.t.Fatalf("proposing to range %d: %v", rd.ID, err)
			}
		}
		leader.round()
		c.require("a batch of big writes", 10*time.Second, func() bool { return len(answers) == 16 })
		for _, err := range answers {
			if err != nil {
				c.t.Fatalf("a big write: %v", err)
			}
		}
	}
	if lagging.store.Replicas[rd.ID].Applied >= leader.store.Replicas[rd.ID].Applied {
		c.t.Fatal("the cut-off replica kept up: the scenario does not test what it says")
	}
	heal()
	return rd, lagging
}

// requireSameData fails unless every replica of rd holds the same records.
func requireSameData(c *simCluster, rd *catalog.RangeDescriptor) {
	c.t.Helper()
	var first []byte
	for i, rep := range rd.Replicas {
		d, err := c.node(rep.NodeID).store.RangeDigest(rd.ID)
		if err != nil {
			c.t.Fatal(err)
		}
		if i == 0 {
			first = d
		} else if !bytes.Equal(d, first) {
			c.t.Errorf("range %d: node %d's data differs from node %d's", rd.ID, rep.NodeID, rd.Replicas[0].NodeID)
		}
	}
}

func bigSnapshotScenario(tb testing.TB, seed uint64, ks string, canary store.Canary) {
	c := newSimClusterWith(tb, seed, 3, simKeyspaces, func(c *simCluster) {
		c.canary, c.pinLeaders = canary, true
		c.snapshotChunkBytes = bigSnapshotBytes() / 8 // the default 1 MiB, or 64 KiB under the race detector
	})
	rd, lagging := growWhileCutOff(c, ks)
	c.require("the cut-off replica to catch up", 60*time.Second, func() bool { return c.rangeConverged(rd) })
	requireSameData(c, rd)
	m := lagging.store.Config.Metrics
	if got := kvtest.MetricValue(tb, m.SnapshotTransfers.WithLabelValues("received")); got < 1 {
		tb.Errorf("the replica caught up without a snapshot transfer (%v)", got)
	}
	// The snapshot is at the index the leader had applied when it was
	// asked for, a little short of the last writes, which follow by log.
	if got := kvtest.MetricValue(tb, m.SnapshotBytes); got < float64(bigSnapshotBytes()*3/4) {
		tb.Errorf("the snapshot carried %v bytes, want most of the range's %d bytes", got, bigSnapshotBytes())
	}
	c.requireWrite(rd.ID, "after")
	c.require("the replicas to apply a write after the snapshot", 10*time.Second, func() bool { return c.rangeConverged(rd) })
	requireSameData(c, rd)
}

func TestSimSnapshotStreamsBigRange(t *testing.T) {
	for _, ks := range []string{"rk", "pk"} {
		t.Run(ks, func(t *testing.T) {
			sim.RunSeeds(t, 2, func(t *testing.T, seed uint64) { bigSnapshotScenario(t, seed, ks, store.Canary{}) })
		})
	}
}

// The canary that installs a transfer after its first chunk leaves the
// replica without most of the range: the replicas' data must differ.
func TestSimSnapshotCanaryInstallEarly(t *testing.T) {
	huntCanary(t, 4, func(tb testing.TB, seed uint64) {
		bigSnapshotScenario(tb, seed, "rk", store.Canary{SnapshotInstallEarly: true})
	})
}

// A stream whose chunks arrive corrupted (a byte flipped in each, so most
// fail a check: a record that does not decode, a count that does not
// match) installs nothing and stops nothing: the transfer fails, the
// replica stays behind with its old data, the node and its other ranges
// go on; once the chunks arrive whole, the replica catches up.
func TestSimSnapshotBadStream(t *testing.T) {
	sim.RunSeeds(t, 2, func(t *testing.T, seed uint64) {
		c := newSimClusterWith(t, seed, 3, simKeyspaces, func(c *simCluster) { c.pinLeaders = true })
		corrupt := true
		c.mangleChunk = func(to uint64, resp []byte) []byte {
			if corrupt && len(resp) > 64 {
				resp[len(resp)/2] ^= 0x5a
				resp = resp[:len(resp)-3]
			}
			return resp
		}
		rd, lagging := growWhileCutOff(c, "rk")
		failed := lagging.store.Config.Metrics.SnapshotTransfers.WithLabelValues("failed")
		received := lagging.store.Config.Metrics.SnapshotTransfers.WithLabelValues("received")
		c.require("a transfer to fail", 30*time.Second, func() bool { return kvtest.MetricValue(t, failed) >= 2 })
		// It may apply what its own log held when it was cut off (the
		// commit index reaches it with the leader's heartbeats), but
		// nothing of a transfer: it stays behind.
		leader := c.node(c.rangeLeader(rd.ID)).store.Replicas[rd.ID]
		if r := lagging.store.Replicas[rd.ID]; r == nil || kvtest.MetricValue(t, received) != 0 || r.Applied >= leader.Applied ||
			lagging.store.Failed[rd.ID] != nil {
			t.Fatalf("after failed transfers the replica is %+v (%v transfers received; the leader applied %d), "+
				"want it running, behind, with nothing received", r, kvtest.MetricValue(t, received), leader.Applied)
		}
		if err := lagging.store.Err(); err != nil {
			t.Fatalf("the node stopped: %v", err)
		}
		other := c.node(1).store.Catalog().Ranges["rk"][1]
		c.requireWrite(other.ID, "other")
		c.require("another range to converge", 10*time.Second, func() bool { return c.rangeConverged(other) })

		corrupt = false
		c.require("the replica to catch up from a whole stream", 60*time.Second, func() bool { return c.rangeConverged(rd) })
		requireSameData(c, rd)
	})
}
