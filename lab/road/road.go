// Package road lists the scenarios of the lab in the order of the
// article's road: from one server, through backups, multi-write and
// W/R/N quorums, to Basic Paxos, naive Raft, quorum geometries, and
// Multi-Paxos and Raft.
package road

import (
	"context"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/lab"
	"github.com/quorumkv/quorumkv/lab/cluster"
	"github.com/quorumkv/quorumkv/lab/cores"
	"github.com/quorumkv/quorumkv/lab/toy"
)

// Scenarios returns every scenario, in the road's order.
func Scenarios() []*lab.Scenario {
	return []*lab.Scenario{
		{Number: 1, Variant: "a", Name: "single-crash", Title: "One server: it crashes",
			Article: "单机 (one server)", Expect: lab.Stopped, Sim: toy.SingleCrash},
		{Number: 1, Variant: "b", Name: "single-disk-loss", Title: "One server: its disk is lost",
			Article: "单机 (one server)", Expect: lab.SoldTwice, Sim: toy.SingleDiskLoss},
		{Number: 2, Name: "async-backup", Title: "Primary with an asynchronous backup",
			Article: "备份(异步复制) (backups, asynchronous replication)", Expect: lab.SoldTwice, Sim: toy.AsyncBackup},
		{Number: 3, Name: "sync-backup", Title: "Synchronous backup",
			Article: "同步复制 (synchronous replication)", Expect: lab.Stopped, Sim: toy.SyncBackup},
		{Number: 4, Name: "semi-sync", Title: "Semi-synchronous replication",
			Article: "半同步复制 (semi-synchronous replication)", Expect: lab.SoldTwice, Sim: toy.SemiSync},
		{Number: 5, Name: "multi-write", Title: "Multi-write, no leader",
			Article: "多写 (multi-write)", Expect: lab.Diverged, Sim: toy.MultiWrite},
		{Number: 6, Variant: "a", Name: "wrn", Title: "W/R/N quorums: read, then write",
			Article: "WRN", Expect: lab.SoldTwice, Sim: toy.WRNConcurrent, Cluster: cluster.WRN},
		{Number: 6, Variant: "b", Name: "wrn-clock-skew", Title: "W/R/N quorums: clocks apart",
			Article: "WRN", Expect: lab.LostSale, Sim: toy.WRNClockSkew},
		{Number: 7, Name: "read-then-write", Title: "Read, then write with versions",
			Article: "多读+多写 (read then write)", Expect: lab.SoldTwice, Sim: toy.ReadThenWrite},
		{Number: 8, Name: "basic-paxos", Title: "Basic Paxos per key",
			Article: "Basic Paxos", Expect: lab.Correct, Sim: cores.BasicPaxos, Cluster: cluster.BasicPaxos},
		{Number: 9, Variant: "a", Name: "naive-raft-any-vote", Title: "Naive Raft: votes without the log check",
			Article: "Naive Raft", Expect: lab.SoldTwice, Sim: toy.NaiveRaftNoVoteCheck},
		{Number: 9, Variant: "b", Name: "naive-raft-no-noop", Title: "Naive Raft: no entry of its own term",
			Article: "Raft (the new leader's empty entry)", Expect: lab.LostSale, Sim: toy.NaiveRaftNoNoop},
		{Number: 9, Variant: "c", Name: "naive-raft", Title: "Naive Raft with both safeguards",
			Article: "Naive Raft", Expect: lab.Correct, Sim: toy.NaiveRaftSafe},
		{Number: 10, Variant: "a", Name: "weighted", Title: "Weighted quorums",
			Article: "Quorum (weights)", Expect: lab.Correct, Sim: cores.Weighted},
		{Number: 10, Variant: "b", Name: "zones", Title: "Three datacenters of two",
			Article: "Quorum (datacenters)", Expect: lab.Correct, Sim: cores.Zones},
		{Number: 10, Variant: "c", Name: "grid", Title: "Grid 3x3",
			Article: "Quorum (grid)", Expect: lab.Correct, Sim: cores.Grid},
		{Number: 10, Variant: "d", Name: "non-intersecting", Title: "Quorums that do not intersect",
			Article: "Quorum (why they must intersect)", Expect: lab.SoldTwice, Sim: cores.NonIntersecting},
		{Number: 10, Name: "geometries", Title: "Quorum geometries on a cluster",
			Article: "Quorum", Expect: lab.Correct, Cluster: cluster.Geometries},
		{Number: 11, Variant: "a", Name: "raft", Title: "Raft",
			Article: "Raft", Expect: lab.Correct, Sim: cores.Raft},
		{Number: 11, Variant: "b", Name: "multi-paxos", Title: "Multi-Paxos",
			Article: "Multi-Paxos", Expect: lab.Correct, Sim: cores.MultiPaxos},
		{Number: 11, Name: "consensus", Title: "Raft and Multi-Paxos on a cluster",
			Article: "Multi-Paxos, Raft", Expect: lab.Correct, Cluster: cluster.Consensus},
	}
}

// Find returns the scenario called name, or an error listing the names.
func Find(name string) (*lab.Scenario, error) {
	var names []string
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("no lab scenario %q; the scenarios are: %s", name, strings.Join(names, ", "))
}

// RunSim runs s in the simulator from seed and labels the result.
func RunSim(s *lab.Scenario, seed uint64) (*lab.Result, error) {
	if s.Sim == nil {
		return nil, fmt.Errorf("lab %s runs only against a cluster (--cluster or --local)", s.Name)
	}
	r, err := s.Sim(seed)
	if err != nil {
		return nil, fmt.Errorf("lab %s, seed %d: %w", s.Name, seed, err)
	}
	label(s, r)
	return r, nil
}

// RunCluster runs s against the cluster t and labels the result.
func RunCluster(ctx context.Context, s *lab.Scenario, t lab.Target) (*lab.Result, error) {
	if s.Cluster == nil {
		return nil, fmt.Errorf("lab %s runs only in the simulator: the toy design is not the product's", s.Name)
	}
	r, err := s.Cluster(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("lab %s on the cluster: %w", s.Name, err)
	}
	label(s, r)
	return r, nil
}

func label(s *lab.Scenario, r *lab.Result) {
	r.Scenario, r.Number, r.Variant, r.Title = s.Name, s.Number, s.Variant, s.Title
}
