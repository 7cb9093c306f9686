// Package raftcore is the adapter that lets internal/replsim drive the
// product's Raft core, raft.RawNode, as a replsim.Core: it keeps each
// node's HardState, entries and snapshot on the node's sim.Disk, and
// rebuilds the node from them on every restart.
//
// raft's simulator suites (raft/sim_suite_test.go) and the lab's runs of
// the Raft core (lab/cores) both build their nodes here; the suites plant
// the core's canaries through Options.Tweak.
package raftcore

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/raft"
)

// Config is the core configuration of the simulator runs, with a 10ms
// tick: 100-200ms election timeouts, a heartbeat every 20ms, and small
// messages and windows so that flow control and batching matter.
func Config() raft.Config {
	return raft.Config{
		ElectionTicks: 10, HeartbeatTicks: 2,
		MaxSizePerMsg: 512, MaxInflightMsgs: 16, MaxUncommittedEntriesSize: 1 << 16,
	}
}

// Options change how Protocol builds its nodes. The zero value runs the
// core as the product configures it for the simulator (Config).
type Options struct {
	// Tweak, if set, changes every node's configuration after Config
	// (raft's tests plant canaries with raft.SetCanaries here).
	Tweak func(*raft.Config)
	// AllEager plants a bug of the store the adapter plays: with
	// replsim.Scenario.AsyncPersist, every message, votes and
	// acknowledgements too, goes out before its Ready's writes are
	// durable (kv/store's Canary.AllEager).
	AllEager bool
	// Leader, if set, reads the Term a node is in, the leader it believes
	// in and whether it leads, for Core.Leader and Core.Hint, which the
	// harness calls for every node after every step. nil reads them from
	// RawNode.Status, which allocates; raft's tests pass the
	// allocation-free readers of its export_test.go.
	Leader func(rn *raft.RawNode) (term, lead uint64, leads bool)
}

// Protocol builds Raft nodes as o says.
func Protocol(o Options) replsim.Protocol {
	return replsim.Protocol{
		Name: "raft",
		Start: func(env *sim.Env, id uint64, init replsim.Membership, disk *sim.Disk) (replsim.Core, *replsim.Snapshot) {
			cfg := Config()
			if o.Tweak != nil {
				o.Tweak(&cfg)
			}
			c, snap := start(env, id, init, disk, cfg)
			c.allEager, c.leader = o.AllEager, o.Leader
			if c.leader == nil {
				c.leader = statusLeader
			}
			return c, snap
		},
	}
}

// statusLeader is Options.Leader from RawNode.Status.
func statusLeader(rn *raft.RawNode) (term, lead uint64, leads bool) {
	st := rn.Status()
	return st.Term, st.Lead, st.State == raft.StateLeader
}

// On disk (replsim's layout): the HardState, the latest snapshot, and the
// entries by index.

func confState(m replsim.Membership) raft.ConfState {
	cs := raft.ConfState{Geometry: m.Geometry}
	for _, n := range m.Voters {
		cs.Voters = append(cs.Voters, raft.Member{ID: n.ID, Zone: n.Zone, Weight: n.Weight})
	}
	return cs
}

// start rebuilds a node from its disk: the founding state if the disk is
// empty and id founds the cluster, else what the disk kept.
func start(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk, cfg raft.Config) (*core, *replsim.Snapshot) {
	var hs raft.HardState
	if !replsim.LoadJSON(d, replsim.KeyHardState, &hs) && slices.Contains(init.IDs(), id) {
		bhs, ents, err := raft.BootstrapState(confState(init))
		if err != nil {
			panic(err)
		}
		for _, e := range ents {
			replsim.PutJSON(d, replsim.EntryKey(e.Index), e)
		}
		replsim.PutJSON(d, replsim.KeyHardState, bhs)
		d.Sync()
		hs = bhs
	}
	c := &core{ms: raft.NewMemoryStorage(), snaps: map[uint64]int{}}
	var snap raft.Snapshot
	var out *replsim.Snapshot
	if replsim.LoadJSON(d, replsim.KeySnapshot, &snap) {
		if err := c.ms.ApplySnapshot(snap); err != nil {
			panic(err)
		}
		out = &replsim.Snapshot{Index: snap.Metadata.Index, Data: snap.Data}
	}
	var ents []raft.Entry
	for _, k := range d.Keys(replsim.KeyEntry) {
		var e raft.Entry
		replsim.LoadJSON(d, k, &e)
		if e.Index > snap.Metadata.Index {
			ents = append(ents, e)
		}
	}
	if err := c.ms.Append(ents); err != nil {
		panic(fmt.Sprintf("node %d restarting: %v", id, err))
	}
	if len(ents) > 0 {
		c.last = ents[len(ents)-1].Index
	}
	if err := c.ms.SetHardState(hs); err != nil {
		panic(err)
	}
	cfg.ID, cfg.Storage, cfg.Applied = id, c.ms, snap.Metadata.Index
	cfg.Rand = rand.New(rand.NewPCG(env.Rand().Uint64(), env.Rand().Uint64()))
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		panic(fmt.Sprintf("node %d restarting: %v", id, err))
	}
	c.rn, c.written, c.synced = rn, hs, hs
	return c, out
}

type core struct {
	rn   *raft.RawNode
	ms   *raft.MemoryStorage
	last uint64 // the last entry index on disk
	// written is the hard state on disk, synced the part of it known
	// durable (they differ while an AsyncPersist sync is under way).
	written, synced raft.HardState
	// allEager is Options.AllEager.
	allEager bool
	leader   func(*raft.RawNode) (term, lead uint64, leads bool)
	// snaps counts down the ticks until a MsgSnap sent to a follower is
	// reported finished. The leader waits for that report (as etcd's does)
	// before it probes the follower again; a transport knows when a
	// snapshot stream ended, a datagram network does not, so the adapter
	// reports after a while, and a lost snapshot is sent again.
	snaps map[uint64]int
}

// snapReportTicks is how long a MsgSnap is given before it is reported.
const snapReportTicks = 5

// wire is a raft.Message on the simulated network; it prints readably in
// the trace.
type wire raft.Message

func (m wire) String() string { return raft.DescribeMessage(raft.Message(m)) }

func (c *core) Tick() {
	c.rn.Tick()
	for _, id := range slices.Sorted(maps.Keys(c.snaps)) {
		if c.snaps[id]--; c.snaps[id] <= 0 {
			delete(c.snaps, id)
			c.rn.ReportSnapshot(id, false /* failed */)
		}
	}
}

func (c *core) Step(msg any) {
	// Errors are messages the core refuses (stale, unknown sender): a
	// network delivers those too.
	_ = c.rn.Step(raft.Message(msg.(wire)))
}

func (c *core) Propose(data []byte) error { return c.rn.Propose(data) }

func (c *core) ReadIndex(ctx []byte) error { return c.rn.ReadIndex(ctx) }

func (c *core) HasReady() bool { return c.rn.HasReady() }

func (c *core) Advance() {
	c.rn.Advance()
	c.synced = c.written
}

// written is what AdvanceWritten hands the harness back through Synced:
// the entries to count, and the hard state the Ready left on disk.
type written struct {
	w  raft.Written
	hs raft.HardState
}

func (c *core) AdvanceWritten() any { return written{c.rn.AdvanceWritten(), c.written} }

func (c *core) Synced(w any) {
	x := w.(written)
	c.rn.Synced(x.w)
	c.synced = x.hs
}

func (c *core) Leader() (term, owner uint64, ok bool) {
	term, _, ok = c.leader(c.rn)
	return term, 0, ok
}

func (c *core) Hint() uint64 {
	_, lead, _ := c.leader(c.rn)
	return lead
}

func (c *core) TransferLeader(to uint64) error { return c.rn.TransferLeader(to) }

// ProposeConfig moves the voters and geometry to m by one joint change.
func (c *core) ProposeConfig(m replsim.Membership) error {
	cur := c.rn.ConfState()
	target := confState(m)
	if cur.Geometry == target.Geometry && slices.Equal(cur.Voters, target.Voters) {
		return errors.New("already there")
	}
	cc := raft.ConfChange{Geometry: target.Geometry}
	for _, v := range target.Voters {
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.ConfChangeAddVoter, Member: v})
	}
	for _, v := range cur.Voters {
		if !slices.ContainsFunc(target.Voters, func(t raft.Member) bool { return t.ID == v.ID }) {
			cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.ConfChangeRemove, Member: v})
		}
	}
	return c.rn.ProposeConfChange(cc)
}

func entryKind(e raft.Entry) replsim.EntryKind {
	switch {
	case e.Type == raft.EntryConfChange:
		return replsim.EntryConfig
	case len(e.Data) == 0:
		return replsim.EntryNoop
	}
	return replsim.EntryCommand
}

func (c *core) Ready() replsim.Ready {
	rd := c.rn.Ready()
	out := replsim.Ready{Sync: rd.MustSync}
	if !rd.HardState.IsEmpty() {
		c.written = rd.HardState
	}
	if !rd.Snapshot.IsEmpty() || len(rd.Entries) > 0 || !rd.HardState.IsEmpty() {
		out.Persist = func(d *sim.Disk) { c.persist(d, rd) }
	}
	for _, m := range rd.Messages {
		if m.Type == raft.MsgSnap {
			c.snaps[m.To] = snapReportTicks
		}
		promise := replsim.NoPromise
		switch {
		case m.Reject:
		case m.Type == raft.MsgVoteResp:
			promise = replsim.PromiseVote
		case m.Type == raft.MsgAppResp:
			promise = replsim.PromiseAck
		}
		out.Messages = append(out.Messages, replsim.Envelope{To: m.To, Msg: wire(m), Promise: promise, Eager: c.eager(m)})
	}
	for _, e := range rd.Entries {
		out.Accepted = append(out.Accepted, replsim.Record{Index: e.Index, Term: e.Term, Value: replsim.Value(entryKind(e), e.Data)})
	}
	if !rd.Snapshot.IsEmpty() {
		out.Snapshot = &replsim.Snapshot{Index: rd.Snapshot.Metadata.Index, Data: rd.Snapshot.Data}
	}
	for _, e := range rd.CommittedEntries {
		out.Committed = append(out.Committed, replsim.Entry{Index: e.Index, Kind: entryKind(e), Data: e.Data})
	}
	for _, rs := range rd.ReadStates {
		out.Reads = append(out.Reads, replsim.ReadState{Index: rs.Index, Ctx: rs.RequestCtx})
	}
	return out
}

// eager reports whether m may go out before the writes of its Ready are
// durable (replsim.Scenario.AsyncPersist): a leader's append, heartbeat
// or snapshot in the term that is durable, with no term or vote written
// since (kv/consensus's eagerRaft, against the synced hard state).
func (c *core) eager(m raft.Message) bool {
	if c.allEager {
		return true
	}
	switch m.Type {
	case raft.MsgApp, raft.MsgHeartbeat, raft.MsgSnap:
	default:
		return false
	}
	return m.Term == c.synced.Term && c.written.Term == c.synced.Term && c.written.Vote == c.synced.Vote
}

// persist writes rd's snapshot, entries and HardState to the storage the
// core reads and to the disk a restart reads.
func (c *core) persist(d *sim.Disk, rd raft.Ready) {
	if !rd.Snapshot.IsEmpty() {
		if err := c.ms.ApplySnapshot(rd.Snapshot); err != nil {
			panic(err)
		}
		replsim.PutJSON(d, replsim.KeySnapshot, rd.Snapshot)
		for _, k := range d.Keys(replsim.KeyEntry) {
			d.Delete(k)
		}
		c.last = rd.Snapshot.Metadata.Index
	}
	if n := len(rd.Entries); n > 0 {
		if err := c.ms.Append(rd.Entries); err != nil {
			panic(err)
		}
		for _, e := range rd.Entries {
			replsim.PutJSON(d, replsim.EntryKey(e.Index), e)
		}
		// A new leader's entries replace a suffix: the rest goes.
		newLast := rd.Entries[n-1].Index
		for i := newLast + 1; i <= c.last; i++ {
			d.Delete(replsim.EntryKey(i))
		}
		c.last = newLast
	}
	if !rd.HardState.IsEmpty() {
		if err := c.ms.SetHardState(rd.HardState); err != nil {
			panic(err)
		}
		replsim.PutJSON(d, replsim.KeyHardState, rd.HardState)
	}
}

// compactLag entries are kept behind a snapshot, so that a follower a
// little behind gets entries and one far behind a snapshot.
const compactLag = 20

func (c *core) Compact(index uint64, data []byte, d *sim.Disk) error {
	snap, err := c.ms.CreateSnapshot(index, c.rn.ConfState(), data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	if err != nil {
		return err
	}
	replsim.PutJSON(d, replsim.KeySnapshot, snap)
	first, _ := c.ms.FirstIndex()
	if index > compactLag && index-compactLag >= first {
		to := index - compactLag
		if err := c.ms.Compact(to); err != nil {
			return err
		}
		for i := first; i <= to; i++ {
			d.Delete(replsim.EntryKey(i))
		}
	}
	return nil
}

// Message returns the raft.Message msg is, if the adapter sent it (the lab
// labels the messages it draws with it).
func Message(msg any) (raft.Message, bool) {
	w, ok := msg.(wire)
	return raft.Message(w), ok
}
