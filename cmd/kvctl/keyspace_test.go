package main

import (
	"testing"

	v1 "github.com/quorumkv/quorumkv/api/quorumkv/v1"
)

// The READS column says how a keyspace confirms a linearizable read:
// raft and paxos keyspaces from the leader's lease unless created with
// --read-lease=false.
func TestReadsName(t *testing.T) {
	for _, c := range []struct {
		ks   *v1.Keyspace
		want string
	}{
		{&v1.Keyspace{Mode: v1.Mode_MODE_RAFT}, "lease"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_RAFT, NoReadLease: true}, "quorum-round"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_PAXOS}, "lease"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_PAXOS, NoReadLease: true}, "quorum-round"},
		{&v1.Keyspace{Mode: v1.Mode_MODE_EVENTUAL}, "r-replicas"},
	} {
		if got := readsName(c.ks); got != c.want {
			t.Errorf("%v, NoReadLease %v: READS %q, want %q", c.ks.Mode, c.ks.NoReadLease, got, c.want)
		}
	}
}
