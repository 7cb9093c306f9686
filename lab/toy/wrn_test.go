package toy

import (
	"testing"

	"github.com/quorumkv/quorumkv/lab"
)

func TestWRNConcurrentSellsTwice(t *testing.T) {
	quorumBroken(t, WRNConcurrent, lab.SoldTwice)
}

func TestWRNClockSkewLosesSale(t *testing.T) {
	quorumBroken(t, WRNClockSkew, lab.LostSale, lab.SoldTwice)
	res, err := WRNClockSkew(1)
	if err != nil {
		t.Fatal(err)
	}
	if res.LostSales == 0 || res.Owner == res.ToldSold[0] {
		t.Errorf("seed 1: %d lost sales, owner %q, told %v: want the first sale told lost", res.LostSales, res.Owner, res.ToldSold)
	}
}

// TestWRNClockSkewControl runs 6b's crash with every clock right: the
// crash alone loses nothing, so the skew is what loses the sale.
func TestWRNClockSkewControl(t *testing.T) {
	quorumCorrect(t, func(seed uint64) (*lab.Result, error) { return wrnClockSkew(seed, false) }, 100)
}

func TestWRNNewer(t *testing.T) {
	for _, c := range []struct {
		a, b wrnRecord
		want bool
	}{
		{wrnRecord{"ann", -5}, wrnRecord{}, true}, // any record beats none, even stamped before the epoch
		{wrnRecord{}, wrnRecord{"ann", -5}, false},
		{wrnRecord{"bob", 20}, wrnRecord{"ann", 10}, true},
		{wrnRecord{"ann", 10}, wrnRecord{"bob", 20}, false},
		{wrnRecord{"bob", 10}, wrnRecord{"ann", 10}, true}, // equal stamps: the larger name
		{wrnRecord{"ann", 10}, wrnRecord{"ann", 10}, false},
	} {
		if got := c.a.newer(c.b); got != c.want {
			t.Errorf("%v.newer(%v) = %t, want %t", c.a, c.b, got, c.want)
		}
	}
}
