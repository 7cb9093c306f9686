package raft

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scripts in testdata/: each drives an in-memory
// cluster (env) command by command and records what every node did: the
// log lines, the Readies (what was persisted, sent, applied) and the
// messages delivered. Regenerate with
//
//	go test ./raft/ -run TestInteraction -rewrite
//
// and read the diff: the expected output is the specification.
//
// Commands (N is a node ID):
//
//	add-nodes COUNT [geometry=G] [zones=a,b,..] [weights=..] [election=T]
//	          [heartbeat=T] [prevote=B] [checkquorum=B] [lease=B]
//	          [max-size-per-msg=B] [max-inflight-msgs=K] [max-inflight-bytes=B]
//	          [max-uncommitted-size=B]
//	                           the first call bootstraps a cluster of the new
//	                           nodes; later calls add empty nodes (to join)
//	canary NAME              plant a bug in nodes added after this
//	campaign N               N campaigns now
//	propose N DATA...        N proposes DATA (several: one batch)
//	propose-conf-change N [vID[@zone][*weight]] [lID] [rID] [geometry=G]
//	read-index N CTX         N asks for a linearizable read
//	transfer-leadership from=N to=M
//	tick-election N          tick N until its election timeout fires
//	tick-heartbeat N         tick N for one heartbeat interval
//	tick N... [count=K]      tick each N K times (default 1)
//	process-ready N...       handle one Ready of each N
//	deliver-msgs N... [drop] step (or drop) N's queued messages
//	stabilize [N...]         Readies and deliveries until nothing moves
//	partition A,B C,D ...    cut every link between the groups
//	heal                     restore every link
//	crash N / restart N      lose all unpersisted state / start from Storage
//	snapshot-compact N       snapshot N's applied state, compact its log
//	raft-log N / raft-state / status N
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		e := newEnv(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			e.t = t
			e.out.Reset()
			if err := e.handle(t, d); err != nil {
				fmt.Fprintf(e.out, "error: %v\n", err)
			}
			if e.out.Len() == 0 {
				return "ok\n"
			}
			return e.out.String()
		})
	})
}

func (e *env) handle(t *testing.T, d *datadriven.TestData) error {
	switch d.Cmd {
	case "add-nodes":
		return e.handleAddNodes(t, d)
	case "canary":
		return e.handleCanary(d)
	case "campaign":
		return e.node(nodeArg(t, d, 0)).rn.Campaign()
	case "propose":
		return e.handlePropose(t, d)
	case "propose-conf-change":
		return e.handleConfChange(t, d)
	case "read-index":
		return e.node(nodeArg(t, d, 0)).rn.ReadIndex([]byte(d.CmdArgs[1].Key))
	case "forget-lease":
		e.node(nodeArg(t, d, 0)).rn.ForgetLease()
	case "transfer-leadership":
		var from, to uint64
		d.ScanArgs(t, "from", &from)
		d.ScanArgs(t, "to", &to)
		return e.node(from).rn.TransferLeader(to)
	case "tick-election":
		n := e.node(nodeArg(t, d, 0))
		ticks := n.rn.raft.randomizedElectionTimeout - n.rn.raft.electionElapsed
		if n.rn.raft.state == StateLeader {
			ticks = n.rn.raft.electionTimeout - n.rn.raft.electionElapsed
		}
		for range ticks {
			n.rn.Tick()
		}
	case "tick":
		count := 1
		d.MaybeScanArgs(t, "count", &count)
		for _, a := range d.CmdArgs {
			if a.Key == "count" {
				continue
			}
			id, err := strconv.ParseUint(a.Key, 10, 64)
			if err != nil {
				t.Fatalf("tick: %q: %v", a.Key, err)
			}
			for range count {
				e.node(id).rn.Tick()
			}
		}
	case "tick-heartbeat":
		n := e.node(nodeArg(t, d, 0))
		for range n.rn.raft.heartbeatTimeout {
			n.rn.Tick()
		}
	case "process-ready":
		for i := range d.CmdArgs {
			e.processReady(nodeArg(t, d, i))
		}
	case "deliver-msgs":
		return e.handleDeliver(t, d)
	case "stabilize":
		var ids []uint64
		for i := range d.CmdArgs {
			ids = append(ids, nodeArg(t, d, i))
		}
		e.stabilize(ids...)
	case "partition":
		var groups [][]uint64
		for _, a := range d.CmdArgs {
			groups = append(groups, parseIDs(t, a.Key))
		}
		e.partition(groups...)
	case "heal":
		e.heal()
	case "crash":
		e.crash(nodeArg(t, d, 0))
	case "restart":
		e.restart(nodeArg(t, d, 0))
	case "snapshot-compact":
		return e.handleSnapshotCompact(t, d)
	case "raft-log":
		e.handleRaftLog(t, d)
	case "raft-state":
		e.handleRaftState()
	case "status":
		e.handleStatus(t, d)
	default:
		t.Fatalf("unknown command %q", d.Cmd)
	}
	return nil
}

func nodeArg(t *testing.T, d *datadriven.TestData, i int) uint64 {
	if i >= len(d.CmdArgs) {
		t.Fatalf("%s: missing node argument %d", d.Cmd, i+1)
	}
	id, err := strconv.ParseUint(d.CmdArgs[i].Key, 10, 64)
	if err != nil {
		t.Fatalf("%s: node %q: %v", d.Cmd, d.CmdArgs[i].Key, err)
	}
	return id
}

func parseIDs(t *testing.T, s string) []uint64 {
	var ids []uint64
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("node list %q: %v", s, err)
		}
		ids = append(ids, id)
	}
	return ids
}
