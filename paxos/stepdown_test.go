package paxos_test

import (
	"testing"

	"github.com/quorumkv/quorumkv/paxos"
)

// A leader that steps down on a refusal's higher ballot, with nothing else
// to persist or send, still has a Ready, which reports the new role: the
// caller learns who leads from Ready alone (found when kv kept proposing
// to a range whose leader had stepped down that way).
func TestStepDownMakesReady(t *testing.T) {
	cl := newCluster(1, members("majority", 1, 2, 3), paxos.CanaryNone, nil)
	deliverAll := func() {
		for len(cl.queue) > 0 {
			cl.deliverMsg(0, false)
			cl.process()
		}
	}
	n1, n3 := cl.nodes[1].rn, cl.nodes[3].rn
	n1.Campaign()
	cl.process()
	deliverAll()
	if n1.Status().Role != paxos.Leader {
		t.Fatalf("node 1: %v, want leader", n1.Status().Role)
	}
	// Node 3 promises itself a higher ballot; its Prepares are lost.
	n3.Campaign()
	cl.process()
	cl.queue = nil
	// Node 1's next Accept is refused by node 3 with that ballot.
	if err := n1.Propose([]byte("a")); err != nil {
		t.Fatal(err)
	}
	cl.process()
	for i := 0; i < len(cl.queue); {
		if m := cl.queue[i]; m.Type == paxos.MsgAccept && m.To == 3 {
			cl.deliverMsg(i, false) // node 3's refusal joins the queue
			continue
		}
		i++
	}
	cl.process() // node 3 sends its refusal
	for i := 0; i < len(cl.queue); {
		if m := cl.queue[i]; m.To == 1 && m.Reject {
			cl.queue = append(cl.queue[:i], cl.queue[i+1:]...)
			if err := n1.Step(m); err != nil {
				t.Fatal(err)
			}
			continue
		}
		i++
	}
	if st := n1.Status(); st.Role != paxos.Follower {
		t.Fatalf("node 1 after the refusal: %v, want follower", st.Role)
	}
	if !n1.HasReady() {
		t.Fatal("node 1 stepped down but has no Ready to say so")
	}
	if rd := n1.Ready(); rd.Role != paxos.Follower {
		t.Fatalf("node 1's Ready says %v, want follower", rd.Role)
	}
}
