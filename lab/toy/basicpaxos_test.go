package toy

import (
	"testing"
)

func TestBasicPaxosCorrect(t *testing.T) {
	all := quorumCorrect(t, BasicPaxos, quorumCorrectSeeds(t))
	// A sale takes at least the two phases; duels take more.
	least, most, sum := 100.0, 0.0, 0.0
	for _, res := range all {
		least, most, sum = min(least, res.RoundTrips), max(most, res.RoundTrips), sum+res.RoundTrips
	}
	if least != 2 || most <= 2 {
		t.Errorf("round trips per sale range over [%v, %v], want 2 without contention and more when proposers duel", least, most)
	}
	t.Logf("round trips per sale: %v to %v, mean %.2f over %d seeds", least, most, sum/float64(len(all)), len(all))
}

func TestPaxosBallotOrder(t *testing.T) {
	for _, c := range []struct {
		a, b paxosBallot
		want bool
	}{
		{paxosBallot{1, 2}, paxosBallot{2, 1}, true},
		{paxosBallot{2, 1}, paxosBallot{1, 2}, false},
		{paxosBallot{1, 1}, paxosBallot{1, 2}, true},
		{paxosBallot{1, 2}, paxosBallot{1, 2}, false},
		{paxosBallot{}, paxosBallot{0, 1}, true},
	} {
		if got := c.a.less(c.b); got != c.want {
			t.Errorf("%v.less(%v) = %t, want %t", c.a, c.b, got, c.want)
		}
	}
}
