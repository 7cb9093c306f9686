package store

import (
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/kv/catalog"
)

// Preferred leaders spread over the nodes within each keyspace, and the
// keyspaces' remainders over the nodes too: six keyspaces of one range
// on three nodes prefer each node twice, not the lowest ID six times.
func TestPreferLeadersSpreadsAcrossKeyspaces(t *testing.T) {
	for _, c := range []struct {
		name      string
		keyspaces int
		ranges    int
		want      map[uint64]int // ranges preferred per node, over all keyspaces
		perKS     int            // at most this many per node within one keyspace
	}{
		{"six keyspaces of one range", 6, 1, map[uint64]int{1: 2, 2: 2, 3: 2}, 1},
		{"three keyspaces of eight ranges", 3, 8, map[uint64]int{1: 8, 2: 8, 3: 8}, 3},
		{"two keyspaces of four ranges", 2, 4, map[uint64]int{1: 3, 2: 3, 3: 2}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			cat := catalog.NewCatalog()
			reps := []catalog.ReplicaDescriptor{{NodeID: 1}, {NodeID: 2}, {NodeID: 3}}
			id := uint64(10)
			ksOf := map[uint64]string{}
			for k := range c.keyspaces {
				name := fmt.Sprintf("ks%d", k)
				cat.Keyspaces[name] = catalog.KeyspaceDescriptor{Name: name, Mode: catalog.ModeRaft, Replicas: 3}
				for i := range c.ranges {
					cat.Ranges[id] = &catalog.RangeDescriptor{ID: id, Keyspace: name, Mode: catalog.ModeRaft,
						Span: catalog.Span{Lo: uint64(i) << 32}, Replicas: reps}
					ksOf[id] = name
					id++
				}
			}
			// An eventual keyspace has no leaders and changes nothing.
			cat.Keyspaces["ev"] = catalog.KeyspaceDescriptor{Name: "ev", Mode: catalog.ModeEventual, Replicas: 3}
			cat.Ranges[id] = &catalog.RangeDescriptor{ID: id, Keyspace: "ev", Mode: catalog.ModeEventual, Replicas: reps}

			pref := preferLeaders(cat)
			if len(pref) != c.keyspaces*c.ranges {
				t.Fatalf("%d ranges have a preferred leader, want %d: %v", len(pref), c.keyspaces*c.ranges, pref)
			}
			got := map[uint64]int{}
			perKS := map[string]map[uint64]int{}
			for r, n := range pref {
				got[n]++
				if perKS[ksOf[r]] == nil {
					perKS[ksOf[r]] = map[uint64]int{}
				}
				perKS[ksOf[r]][n]++
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("preferred per node %v, want %v", got, c.want)
			}
			for ks, m := range perKS {
				for n, k := range m {
					if k > c.perKS {
						t.Errorf("keyspace %s prefers node %d for %d ranges, want at most %d: %v", ks, n, k, c.perKS, m)
					}
				}
			}
			// Every node computes the same from the same catalog.
			if again := preferLeaders(cat); fmt.Sprint(again) != fmt.Sprint(pref) {
				t.Errorf("a second computation differs: %v, then %v", pref, again)
			}
		})
	}
}
