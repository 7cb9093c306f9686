package paxos_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/quorumkv/quorumkv/paxos"
)

// TestMultiScripts runs testdata/multi: Multi-Paxos clusters driven one
// message at a time. Every message a node sends is printed when sent;
// "N: apply ..." is node N's application receiving a chosen slot.
//
//	cluster nodes=3 [geometry=G] [window=W] [extra=4,5] [lease=true]
//	                             voters 1..nodes (extra: non-voters that
//	                             know the group), MaxOpenSlots=W,
//	                             ReadLease (ElectionTicks 10, so a lease
//	                             lasts 8 ticks)
//	campaign n=1                 node 1 starts phase 1 now
//	propose n=1 value=(a,b)      propose at node 1, all before one Ready
//	read n=1 ctx=C               ReadIndex at node 1
//	reconfig n=1 voters=1,2,3 [geometry=G]
//	deliver [from=] [to=] [type=] [slot=] [dup=true]
//	                             deliver matching queued messages, in order
//	                             (slot=: Accepts and Accepteds naming it;
//	                             dup: a copy of each stays at the end of
//	                             the queue, to arrive again later)
//	drop [from=] [to=] [type=]     lose them
//	stabilize                    deliver everything until the network is quiet
//	tick [n=1,2] [times=K]       tick nodes (default all)
//	crash n=2 / restart n=2      crash keeps only what was persisted
//	compact n=1                  snapshot node 1 at its applied slot
//	forget-lease n=1             RawNode.ForgetLease at node 1
//	status                       every node's role, promise, slots
func TestMultiScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/multi", func(t *testing.T, path string) {
		var cl *cluster
		var out strings.Builder
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out.Reset()
			if d.Cmd == "cluster" {
				cl = newScriptCluster(t, d)
				cl.out = &out
				return "ok\n"
			}
			runMulti(t, cl, d)
			cl.process()
			if cl.err != nil {
				fmt.Fprintf(&out, "INVARIANT BROKEN: %v\n", cl.err)
				cl.err = nil
			}
			if out.Len() == 0 {
				return "ok\n"
			}
			return out.String()
		})
	})
}

func newScriptCluster(t *testing.T, d *datadriven.TestData) *cluster {
	n := argInt(t, d, "nodes", 3)
	var ids []uint64
	for i := 1; i <= n; i++ {
		ids = append(ids, uint64(i))
	}
	m := members(argString(d, "geometry", "majority"), ids...)
	window := argInt(t, d, "window", 4)
	lease := argString(d, "lease", "false") == "true"
	cl := newCluster(1, m, paxos.CanaryNone, func(c *paxos.Config) {
		c.MaxOpenSlots = window
		c.HeartbeatTicks = 1
		c.ReadLease = lease
	})
	for _, id := range argIDs(t, d, "extra") {
		cl.addNode(id, paxos.Bootstrap(m))
	}
	return cl
}

func runMulti(t *testing.T, cl *cluster, d *datadriven.TestData) {
	node := func() *paxos.RawNode {
		ids := argIDs(t, d, "n")
		if len(ids) != 1 || cl.nodes[ids[0]] == nil || cl.nodes[ids[0]].rn == nil {
			t.Fatalf("%s: want n=<a running node>", d.Pos)
		}
		return cl.nodes[ids[0]].rn
	}
	report := func(err error) {
		if err != nil {
			cl.logf("error: %v", err)
		}
	}
	switch d.Cmd {
	case "campaign":
		node().Campaign()
	case "propose":
		rn := node()
		for _, arg := range d.CmdArgs {
			if arg.Key == "value" {
				for _, v := range arg.Vals {
					report(rn.Propose([]byte(v)))
				}
			}
		}
	case "read":
		report(node().ReadIndex([]byte(argString(d, "ctx", ""))))
	case "forget-lease":
		node().ForgetLease()
	case "transfer":
		to := uint64(0)
		if ids := argIDs(t, d, "to"); len(ids) == 1 {
			to = ids[0]
		}
		report(node().TransferLeader(to))
	case "reconfig":
		report(node().ProposeConfig(members(argString(d, "geometry", "majority"), argIDs(t, d, "voters")...)))
	case "deliver", "drop":
		f := parseFilter(t, d)
		slots := argIDs(t, d, "slot")
		var picked []paxos.Message
		rest := cl.queue[:0]
		for _, m := range cl.queue {
			if f.match(m.From, m.To, m.Type.String()) && hasSlot(m, slots) {
				picked = append(picked, m)
			} else {
				rest = append(rest, m)
			}
		}
		cl.queue = rest
		dup := argString(d, "dup", "false") == "true"
		for _, m := range picked {
			if d.Cmd == "drop" {
				cl.logf("dropped %v", m)
				continue
			}
			cl.queue = append([]paxos.Message{m}, cl.queue...)
			cl.deliverMsg(0, false)
			cl.process()
			if dup {
				cl.queue = append(cl.queue, m)
			}
		}
	case "stabilize":
		for len(cl.queue) > 0 {
			cl.deliverMsg(0, false)
			cl.process()
		}
	case "tick":
		ids := argIDs(t, d, "n")
		if ids == nil {
			ids = cl.ids
		}
		for range argInt(t, d, "times", 1) {
			for _, id := range ids {
				if n := cl.nodes[id]; n.rn != nil {
					n.rn.Tick()
				}
			}
			cl.process()
		}
	case "crash":
		for _, id := range argIDs(t, d, "n") {
			cl.crash(id)
		}
	case "restart":
		for _, id := range argIDs(t, d, "n") {
			cl.restart(id)
		}
	case "compact":
		id := argIDs(t, d, "n")[0]
		cl.compact(id)
		cl.logf("%d: compacted up to slot %d", id, cl.nodes[id].disk.Snapshot.Slot)
	case "idle":
		rn := node()
		cl.logf("%d: idle %v, all caught up %v", argIDs(t, d, "n")[0], rn.Idle(), rn.AllCaughtUp())
	case "status":
		for _, id := range cl.ids {
			n := cl.nodes[id]
			if n.rn == nil {
				cl.logf("%d: down", id)
				continue
			}
			st := n.rn.Status()
			cl.logf("%d: %v promised %v commit %d applied %d config %v", id, st.Role, st.Promised, st.Commit, n.applied, st.Config)
			var es []string
			for _, e := range n.disk.Entries {
				es = append(es, fmt.Sprintf("[%v]", e))
			}
			if len(es) > 0 {
				cl.logf("   persisted %s", strings.Join(es, " "))
			}
		}
	default:
		t.Fatalf("unknown command %q", d.Cmd)
	}
}

// hasSlot reports whether m names one of slots (or slots is empty).
func hasSlot(m paxos.Message, slots []uint64) bool {
	if len(slots) == 0 {
		return true
	}
	for _, e := range m.Entries {
		if slices.Contains(slots, e.Slot) {
			return true
		}
	}
	for _, s := range m.Slots {
		if slices.Contains(slots, s) {
			return true
		}
	}
	return false
}
