package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

func (e *env) handleAddNodes(t *testing.T, d *datadriven.TestData) error {
	count := int(nodeArg(t, d, 0))
	cfg := Config{ElectionTicks: 10, HeartbeatTicks: 1}
	geometry := "majority"
	var zones, weights []string
	for _, a := range d.CmdArgs[1:] {
		switch a.Key {
		case "geometry":
			geometry = a.Vals[0]
		case "zones":
			zones = a.Vals
		case "weights":
			weights = a.Vals
		case "election":
			a.Scan(t, 0, &cfg.ElectionTicks)
		case "heartbeat":
			a.Scan(t, 0, &cfg.HeartbeatTicks)
		case "prevote":
			var b bool
			a.Scan(t, 0, &b)
			cfg.DisablePreVote = !b
		case "checkquorum":
			var b bool
			a.Scan(t, 0, &b)
			cfg.DisableCheckQuorum = !b
		case "lease":
			var b bool
			a.Scan(t, 0, &b)
			if b {
				cfg.ReadOnly = ReadOnlyLeaseBased
			}
		case "max-size-per-msg":
			a.Scan(t, 0, &cfg.MaxSizePerMsg)
		case "max-inflight-msgs":
			a.Scan(t, 0, &cfg.MaxInflightMsgs)
		case "max-inflight-bytes":
			a.Scan(t, 0, &cfg.MaxInflightBytes)
		case "max-uncommitted-size":
			a.Scan(t, 0, &cfg.MaxUncommittedEntriesSize)
		default:
			t.Fatalf("add-nodes: unknown argument %s", a.Key)
		}
	}
	first := uint64(len(e.nodes)) + 1
	var cs *ConfState
	if len(e.nodes) == 0 {
		cs = &ConfState{Geometry: geometry}
		for i := range count {
			m := Member{ID: first + uint64(i)}
			if i < len(zones) {
				m.Zone = zones[i]
			}
			if i < len(weights) {
				m.Weight, _ = strconv.Atoi(weights[i])
			}
			cs.Voters = append(cs.Voters, m)
		}
	}
	for i := range count {
		e.addNode(first+uint64(i), cfg, cs)
	}
	return nil
}

func (e *env) handleCanary(d *datadriven.TestData) error {
	switch name := d.CmdArgs[0].Key; name {
	case "send-before-persist":
		e.canaries.sendBeforePersist = true
	case "read-index-without-quorum":
		e.canaries.readIndexWithoutQuorum = true
	case "commit-earlier-term":
		e.canaries.commitEarlierTerm = true
	case "forget-vote-on-restart":
		e.canaries.forgetVoteOnRestart = true
	default:
		return fmt.Errorf("unknown canary %q", name)
	}
	// Nodes already running get it too (their Config is rebuilt on restart).
	for _, n := range e.nodes {
		n.cfg.canaries = e.canaries
		if n.rn != nil {
			n.rn.raft.canaries = e.canaries
		}
	}
	return nil
}

func (e *env) handlePropose(t *testing.T, d *datadriven.TestData) error {
	n := e.node(nodeArg(t, d, 0))
	var data [][]byte
	for _, a := range d.CmdArgs[1:] {
		data = append(data, []byte(a.Key))
	}
	if len(data) == 1 {
		return n.rn.Propose(data[0])
	}
	return n.rn.ProposeBatch(data)
}

// handleConfChange parses vID[@zone][*weight] (add voter), lID (add
// learner), rID (remove) and geometry=G.
func (e *env) handleConfChange(t *testing.T, d *datadriven.TestData) error {
	n := e.node(nodeArg(t, d, 0))
	var cc ConfChange
	for _, a := range d.CmdArgs[1:] {
		if a.Key == "geometry" {
			cc.Geometry = a.Vals[0]
			continue
		}
		spec := a.Key[1:]
		var m Member
		if w, ok := strings.CutPrefix(spec[strings.IndexByte(spec+"*", '*'):], "*"); ok {
			m.Weight, _ = strconv.Atoi(w)
			spec = spec[:strings.IndexByte(spec, '*')]
		}
		idStr, zone, _ := strings.Cut(spec, "@")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if err != nil {
			t.Fatalf("propose-conf-change: %q: %v", a.Key, err)
		}
		m.ID, m.Zone = id, zone
		typ := map[byte]ConfChangeType{'v': ConfChangeAddVoter, 'l': ConfChangeAddLearner, 'r': ConfChangeRemove}
		ct, ok := typ[a.Key[0]]
		if !ok {
			t.Fatalf("propose-conf-change: %q: want v, l or r", a.Key)
		}
		cc.Changes = append(cc.Changes, ConfChangeSingle{Type: ct, Member: m})
	}
	return n.rn.ProposeConfChange(cc)
}

func (e *env) handleDeliver(t *testing.T, d *datadriven.TestData) error {
	drop := d.HasArg("drop")
	for _, a := range d.CmdArgs {
		if a.Key == "drop" {
			continue
		}
		id, err := strconv.ParseUint(a.Key, 10, 64)
		if err != nil {
			t.Fatalf("deliver-msgs: %q: %v", a.Key, err)
		}
		if drop {
			for _, m := range e.inbox[id] {
				e.printf("dropped: %s\n", DescribeMessage(m))
			}
			delete(e.inbox, id)
			continue
		}
		e.deliver(id)
	}
	return nil
}

func (e *env) handleSnapshotCompact(t *testing.T, d *datadriven.TestData) error {
	n := e.node(nodeArg(t, d, 0))
	applied := n.rn.raft.log.applied
	snap, err := n.storage.CreateSnapshot(applied, n.rn.ConfState(), []byte(fmt.Sprintf("state@%d", applied)))
	if err != nil {
		return err
	}
	if err := n.storage.Compact(applied); err != nil {
		return err
	}
	e.printf("snapshot at index %d term %d; log compacted up to %d\n", snap.Metadata.Index, snap.Metadata.Term, applied)
	return nil
}

func (e *env) handleRaftLog(t *testing.T, d *datadriven.TestData) {
	n := e.node(nodeArg(t, d, 0))
	st := n.storage
	first, _ := st.FirstIndex()
	last, _ := st.LastIndex()
	if first > last {
		e.printf("log is empty: first index=%d, last index=%d\n", first, last)
		return
	}
	ents, err := st.Entries(first, last+1, noLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		e.printf("%s\n", DescribeEntry(ent))
	}
}

func (e *env) handleRaftState() {
	for _, id := range e.ids() {
		n := e.nodes[id]
		if n.crashed {
			e.printf("%d: crashed\n", id)
			continue
		}
		r := n.rn.raft
		voter := "(Voter)"
		if !r.conf.isVoter(id) {
			voter = "(Non-Voter)"
		}
		e.printf("%d: %s %s Term:%d Lead:%d\n", id, r.state, voter, r.Term, r.lead)
	}
}

func (e *env) handleStatus(t *testing.T, d *datadriven.TestData) {
	n := e.node(nodeArg(t, d, 0))
	st := n.rn.Status()
	e.printf("%s\n", st)
	ids := make([]uint64, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		pr := n.rn.raft.prs[id]
		e.printf("%d: %s\n", id, pr)
	}
}
