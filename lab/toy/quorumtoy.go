package toy

// What designs 6, 7 and 9 share: the number of answers that make a
// majority, the run loop, and the story's line about who was told "sold"
// and when. Their buyers are shopBuyers with a patience of their own (a
// coordinator or a leader may need longer than the default timeout).

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/lab"
)

// quorumMajority is the size of a majority of n.
func quorumMajority(n int) int { return n/2 + 1 }

// quorumRotated returns servers starting at index first, wrapping around:
// a buyer's list when its first choice is servers[first].
func quorumRotated(servers []sim.NodeID, first int) []sim.NodeID {
	out := make([]sim.NodeID, 0, len(servers))
	for i := range servers {
		out = append(out, servers[(first+i)%len(servers)])
	}
	return out
}

// quorumRun runs sale until done holds, heals every fault, and lets the
// nodes settle for settle. done must come true within shopRunLimit.
func quorumRun(sale *lab.Sale, done func() bool, settle time.Duration) error {
	if err := sale.Sim.RunUntil(done, shopRunLimit); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	sale.Sim.Heal()
	if err := sale.Sim.RunFor(settle); err != nil {
		return fmt.Errorf("toy: seed %d: %w", sale.Sim.Seed(), err)
	}
	return nil
}

// quorumSoldAt returns when each buyer told "sold" was told, from the
// timeline.
func quorumSoldAt(res *lab.Result) map[string]time.Duration {
	at := map[string]time.Duration{}
	for _, ev := range res.Timeline.Events {
		if _, seen := at[ev.Lane]; ev.Kind == lab.Sold && !seen {
			at[ev.Lane] = ev.At
		}
	}
	return at
}

// quorumToldLine says who was told "sold" and when: "ann was told
// \"sold\" at 22ms, dan at 57ms".
func quorumToldLine(res *lab.Result) string {
	sold := quorumSoldAt(res)
	line := ""
	for i, b := range res.ToldSold {
		if i == 0 {
			line = fmt.Sprintf("%s was told \"sold\" at %s", b, shopAt(sold[b]))
			continue
		}
		line += fmt.Sprintf(", %s at %s", b, shopAt(sold[b]))
	}
	return line
}
