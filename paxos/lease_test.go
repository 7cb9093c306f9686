package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// A lease needs acceptors that keep its promise: one without ReadLease
// echoes no round number, so a leader whose acceptors have leases off
// confirms every read with a round, as if it had none.
func TestLeaseNeedsLeasedAcceptors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		acceptors bool // the acceptors have ReadLease too
	}{
		{"acceptors with leases", true},
		{"acceptors without", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(1, majority(3), paxos.CanaryNone, func(c *paxos.Config) {
				c.HeartbeatTicks = 1
				c.ReadLease = c.ID == 1 || tc.acceptors
			})
			stabilize := func() {
				for len(cl.queue) > 0 {
					cl.deliverMsg(0, false)
					cl.process()
				}
			}
			cl.nodes[1].rn.Campaign()
			cl.process()
			stabilize()
			if st := cl.nodes[1].rn.Status(); st.Role != paxos.Leader {
				t.Fatalf("node 1 did not take over: %+v", st)
			}
			cl.read(1)
			cl.process()
			if served := cl.served == 1; served != tc.acceptors || (len(cl.queue) == 0) != tc.acceptors {
				t.Fatalf("served at once: %v, with %d messages sent; want served at once (and no message) %v", served, len(cl.queue), tc.acceptors)
			}
			stabilize()
			if cl.served != 1 || cl.err != nil {
				t.Fatalf("served %d reads, %v", cl.served, cl.err)
			}
		})
	}
}
