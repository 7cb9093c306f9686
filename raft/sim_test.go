package raft_test

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

// The adapter that lets internal/replsim drive a raft.RawNode: the suites
// themselves are in sim_suite_test.go.

// simConfig is the core configuration of the simulator runs, with a
// 10ms tick: 100-200ms election timeouts, a heartbeat every 20ms, and
// small messages and windows so that flow control and batching matter.
func simConfig() raft.Config {
	return raft.Config{
		ElectionTicks: 10, HeartbeatTicks: 2,
		MaxSizePerMsg: 512, MaxInflightMsgs: 16, MaxUncommittedEntriesSize: 1 << 16,
	}
}

// raftProtocol builds Raft nodes with the planted bugs k and, if tweak is
// set, other changes to simConfig.
func raftProtocol(k raft.Canaries, tweak func(*raft.Config)) replsim.Protocol {
	return replsim.Protocol{
		Name: "raft",
		Start: func(env *sim.Env, id uint64, init replsim.Membership, disk *sim.Disk) (replsim.Core, *replsim.Snapshot) {
			cfg := simConfig()
			if tweak != nil {
				tweak(&cfg)
			}
			raft.SetCanaries(&cfg, k)
			return startRaft(env, id, init, disk, cfg)
		},
	}
}

// allEagerProtocol is canaryProtocol as driven by a store that sends
// every message, votes and acknowledgements too, before its writes are
// durable (kv/store's Canary.AllEager, with AsyncPersist).
func allEagerProtocol() replsim.Protocol {
	p := canaryProtocol(raft.Canaries{})
	start := p.Start
	p.Start = func(env *sim.Env, id uint64, init replsim.Membership, disk *sim.Disk) (replsim.Core, *replsim.Snapshot) {
		c, snap := start(env, id, init, disk)
		c.(*raftCore).allEager = true
		return c, snap
	}
	return p
}

// On disk: "hs" the HardState, "snap" the latest snapshot, "e/<index>"
// the entries, all JSON.
const (
	keyHardState = "hs"
	keySnapshot  = "snap"
	keyEntry     = "e/"
)

func entryKey(i uint64) string { return fmt.Sprintf("%s%016x", keyEntry, i) }

func confState(m replsim.Membership) raft.ConfState {
	cs := raft.ConfState{Geometry: m.Geometry}
	for _, n := range m.Voters {
		cs.Voters = append(cs.Voters, raft.Member{ID: n.ID, Zone: n.Zone, Weight: n.Weight})
	}
	return cs
}

// startRaft rebuilds a node from its disk: the founding state if the disk
// is empty and id founds the cluster, else what the disk kept.
func startRaft(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk, cfg raft.Config) (replsim.Core, *replsim.Snapshot) {
	var hs raft.HardState
	if !replsim.LoadJSON(d, keyHardState, &hs) && slices.Contains(init.IDs(), id) {
		bhs, ents, err := raft.BootstrapState(confState(init))
		if err != nil {
			panic(err)
		}
		for _, e := range ents {
			replsim.PutJSON(d, entryKey(e.Index), e)
		}
		replsim.PutJSON(d, keyHardState, bhs)
		d.Sync()
		hs = bhs
	}
	c := &raftCore{ms: raft.NewMemoryStorage(), snaps: map[uint64]int{}}
	var snap raft.Snapshot
	var out *replsim.Snapshot
	if replsim.LoadJSON(d, keySnapshot, &snap) {
		if err := c.ms.ApplySnapshot(snap); err != nil {
			panic(err)
		}
		out = &replsim.Snapshot{Index: snap.Metadata.Index, Data: snap.Data}
	}
	var ents []raft.Entry
	for _, k := range d.Keys(keyEntry) {
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

type raftCore struct {
	rn   *raft.RawNode
	ms   *raft.MemoryStorage
	last uint64 // the last entry index on disk
	// written is the hard state on disk, synced the part of it known
	// durable (they differ while an AsyncPersist sync is under way).
	written, synced raft.HardState
	// allEager is a planted bug of the store the adapter plays: every
	// message goes out before its Ready's sync (allEagerProtocol).
	allEager bool
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

func (c *raftCore) Tick() {
	c.rn.Tick()
	for _, id := range slices.Sorted(maps.Keys(c.snaps)) {
		if c.snaps[id]--; c.snaps[id] <= 0 {
			delete(c.snaps, id)
			c.rn.ReportSnapshot(id, false /* failed */)
		}
	}
}

func (c *raftCore) Step(msg any) {
	// Errors are messages the core refuses (stale, unknown sender): a
	// network delivers those too.
	_ = c.rn.Step(raft.Message(msg.(wire)))
}

func (c *raftCore) Propose(data []byte) error { return c.rn.Propose(data) }

func (c *raftCore) ReadIndex(ctx []byte) error { return c.rn.ReadIndex(ctx) }

func (c *raftCore) HasReady() bool { return c.rn.HasReady() }

func (c *raftCore) Advance() {
	c.rn.Advance()
	c.synced = c.written
}

// written is what AdvanceWritten hands the harness back through Synced:
// the entries to count, and the hard state the Ready left on disk.
type written struct {
	w  raft.Written
	hs raft.HardState
}

func (c *raftCore) AdvanceWritten() any { return written{c.rn.AdvanceWritten(), c.written} }

func (c *raftCore) Synced(w any) {
	x := w.(written)
	c.rn.Synced(x.w)
	c.synced = x.hs
}

func (c *raftCore) Leader() (term, owner uint64, ok bool) {
	term, ok = c.rn.SimLeader()
	return term, 0, ok
}

func (c *raftCore) Hint() uint64 { return c.rn.SimLead() }

// ProposeConfig moves the voters and geometry to m by one joint change.
func (c *raftCore) TransferLeader(to uint64) error { return c.rn.TransferLeader(to) }

func (c *raftCore) ProposeConfig(m replsim.Membership) error {
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

func (c *raftCore) Ready() replsim.Ready {
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
func (c *raftCore) eager(m raft.Message) bool {
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
func (c *raftCore) persist(d *sim.Disk, rd raft.Ready) {
	if !rd.Snapshot.IsEmpty() {
		if err := c.ms.ApplySnapshot(rd.Snapshot); err != nil {
			panic(err)
		}
		replsim.PutJSON(d, keySnapshot, rd.Snapshot)
		for _, k := range d.Keys(keyEntry) {
			d.Delete(k)
		}
		c.last = rd.Snapshot.Metadata.Index
	}
	if n := len(rd.Entries); n > 0 {
		if err := c.ms.Append(rd.Entries); err != nil {
			panic(err)
		}
		for _, e := range rd.Entries {
			replsim.PutJSON(d, entryKey(e.Index), e)
		}
		// A new leader's entries replace a suffix: the rest goes.
		newLast := rd.Entries[n-1].Index
		for i := newLast + 1; i <= c.last; i++ {
			d.Delete(entryKey(i))
		}
		c.last = newLast
	}
	if !rd.HardState.IsEmpty() {
		if err := c.ms.SetHardState(rd.HardState); err != nil {
			panic(err)
		}
		replsim.PutJSON(d, keyHardState, rd.HardState)
	}
}

// compactLag entries are kept behind a snapshot, so that a follower a
// little behind gets entries and one far behind a snapshot.
const compactLag = 20

func (c *raftCore) Compact(index uint64, data []byte, d *sim.Disk) error {
	snap, err := c.ms.CreateSnapshot(index, c.rn.ConfState(), data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil
	}
	if err != nil {
		return err
	}
	replsim.PutJSON(d, keySnapshot, snap)
	first, _ := c.ms.FirstIndex()
	if index > compactLag && index-compactLag >= first {
		to := index - compactLag
		if err := c.ms.Compact(to); err != nil {
			return err
		}
		for i := first; i <= to; i++ {
			d.Delete(entryKey(i))
		}
	}
	return nil
}
