package replsim_test

import (
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/replsim/paxoscore"
	"github.com/quorumkv/quorumkv/internal/replsim/raftcore"
	"github.com/quorumkv/quorumkv/internal/sim"
)

// TestSaleRoundTrips: on a cluster without faults, a buyer's write waits
// for 2 round trips when it asks the leader (request, then the leader's
// phase 2 with a quorum), 3 when a follower first sends it to the leader;
// one buyer only swaps; the final read and every replica name it.
func TestSaleRoundTrips(t *testing.T) {
	for _, proto := range []replsim.Protocol{
		raftcore.Protocol(raftcore.Options{}), paxoscore.Protocol(paxoscore.Options{}),
	} {
		t.Run(proto.Name, func(t *testing.T) {
			seen := map[int]int{}
			for seed := uint64(1); seed <= 20; seed++ {
				link := sim.LinkConfig{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
				s := sim.New(sim.Config{Seed: seed, Link: link})
				sc := replsim.Scenario{
					Init: replsim.Majority(1, 2, 3), NoNemesis: true, Duration: time.Second,
					Sale: &replsim.Sale{Buyers: []string{"ann", "bob", "cat", "dan"}},
				}
				c, err := replsim.New(s, proto, sc)
				if err != nil {
					t.Fatal(err)
				}
				if f := c.Run(); f != nil {
					t.Fatalf("seed %d: %v", seed, f)
				}
				answers := c.Answers()
				if len(answers) != 4 {
					t.Fatalf("seed %d: %d answers, want 4: %+v", seed, len(answers), answers)
				}
				var owner string
				for _, a := range answers {
					seen[a.RoundTrips]++
					if a.RoundTrips != 2 && a.RoundTrips != 3 {
						t.Errorf("seed %d: %s answered after %d round trips, want 2 or 3", seed, a.Buyer, a.RoundTrips)
					}
					if a.Sold {
						if owner != "" {
							t.Errorf("seed %d: %s and %s both swapped", seed, owner, a.Buyer)
						}
						owner = a.Buyer
					}
				}
				if read, ok := c.FinalRead(); !ok || read != owner {
					t.Errorf("seed %d: final read %q (%v), want %q", seed, read, ok, owner)
				}
				for i, o := range c.Owners() {
					if o != owner {
						t.Errorf("seed %d: replica %d says %q, want %q", seed, i+1, o, owner)
					}
				}
			}
			if seen[2] == 0 || seen[3] == 0 {
				t.Errorf("round trips seen %v: want both 2 (asked the leader) and 3 (sent on by a follower)", seen)
			}
		})
	}
}
