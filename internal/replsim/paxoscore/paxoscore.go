// Package paxoscore is the adapter that lets internal/replsim drive the
// product's Multi-Paxos core, paxos.RawNode, as a replsim.Core: it keeps
// each node's HardState, accepted entries and snapshot on the node's
// sim.Disk, and rebuilds the node from them on every restart.
//
// paxos's simulator suites (paxos/sim_suite_test.go) and the lab's runs of
// the Multi-Paxos core (lab/cores) both build their nodes here; the suites
// plant the core's canaries through Options.Tweak.
package paxoscore

import (
	"fmt"
	"math/rand/v2"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/paxos"
)

// Config is the core configuration of the simulator runs, with a 10ms
// tick: 100-200ms election timeouts, a heartbeat every 20ms, a window of 8
// open slots and small messages.
func Config() paxos.Config {
	return paxos.Config{ElectionTicks: 10, HeartbeatTicks: 2, MaxOpenSlots: 8, MaxSizePerMsg: 512, MaxUncommittedBytes: 1 << 16}
}

// Options change how Protocol builds its nodes. The zero value runs the
// core as the product configures it for the simulator (Config).
type Options struct {
	// Name names the protocol in failures (default "paxos").
	Name string
	// Tweak, if set, changes every node's configuration after Config
	// (paxos's tests plant canaries with paxos.WithCanary here).
	Tweak func(*paxos.Config)
	// Lease, if set, makes every core a replsim.LeaseCore whose Lease is
	// Lease(rn): whether the node would serve a read from its lease now.
	Lease func(rn *paxos.RawNode) bool
}

// Protocol builds Multi-Paxos nodes as o says.
func Protocol(o Options) replsim.Protocol {
	name := o.Name
	if name == "" {
		name = "paxos"
	}
	return replsim.Protocol{
		Name:           name,
		ChosenByQuorum: true,
		Start: func(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk) (replsim.Core, *replsim.Snapshot) {
			cfg := Config()
			if o.Tweak != nil {
				o.Tweak(&cfg)
			}
			c, snap := start(env, id, init, d, cfg)
			if o.Lease != nil {
				return &leaseCore{c, o.Lease}, snap
			}
			return c, snap
		},
	}
}

// leaseCore is a core that reports its lease (Options.Lease).
type leaseCore struct {
	*core
	lease func(*paxos.RawNode) bool
}

// Lease makes leaseCore a replsim.LeaseCore.
func (c *leaseCore) Lease() bool { return c.lease(c.rn) }

// On disk (replsim's layout): the HardState, the latest snapshot, and the
// accepted entries by slot.

func pxMembership(m replsim.Membership) paxos.Membership {
	return paxos.Membership{Geometry: m.Geometry, Voters: m.Voters}
}

// start rebuilds a node from its disk; every node of the group, spare or
// not, starts from the founding configuration.
func start(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk, cfg paxos.Config) (*core, *replsim.Snapshot) {
	ps := paxos.Bootstrap(pxMembership(init))
	var out *replsim.Snapshot
	var snap paxos.Snapshot
	if replsim.LoadJSON(d, replsim.KeySnapshot, &snap) {
		ps.Snapshot = snap
		out = &replsim.Snapshot{Index: snap.Slot, Data: snap.Data}
	}
	replsim.LoadJSON(d, replsim.KeyHardState, &ps.HardState)
	for _, k := range d.Keys(replsim.KeyEntry) {
		var e paxos.Entry
		replsim.LoadJSON(d, k, &e)
		if e.Slot > ps.Snapshot.Slot {
			ps.Entries = append(ps.Entries, e)
		}
	}
	cfg.ID, cfg.Applied = id, ps.Snapshot.Slot
	cfg.Rand = rand.New(rand.NewPCG(env.Rand().Uint64(), env.Rand().Uint64()))
	rn, err := paxos.NewRawNode(cfg, ps)
	if err != nil {
		panic(fmt.Sprintf("node %d restarting: %v", id, err))
	}
	return &core{rn: rn}, out
}

type core struct {
	rn *paxos.RawNode
	rd paxos.Ready
}

func (c *core) Tick() { c.rn.Tick() }

func (c *core) Step(msg any) {
	// Errors are messages the core refuses: a network delivers those too.
	_ = c.rn.Step(msg.(paxos.Message))
}

func (c *core) Propose(data []byte) error { return c.rn.Propose(data) }

func (c *core) ReadIndex(ctx []byte) error { return c.rn.ReadIndex(ctx) }

func (c *core) ProposeConfig(m replsim.Membership) error {
	return c.rn.ProposeConfig(pxMembership(m))
}

func (c *core) TransferLeader(to uint64) error { return c.rn.TransferLeader(to) }

func (c *core) HasReady() bool { return c.rn.HasReady() }

func (c *core) Advance() { c.rn.Advance(c.rd) }

// Leader reports the ballot a leader leads at: its promise, which a
// leader only ever holds at its own ballot.
func (c *core) Leader() (term, owner uint64, ok bool) {
	st := c.rn.Status()
	return st.Promised.Round, st.Promised.NodeID, st.Role == paxos.Leader
}

func (c *core) Hint() uint64 { return c.rn.Status().Leader }

func pxKind(t paxos.EntryType) replsim.EntryKind {
	switch t {
	case paxos.EntryNoop:
		return replsim.EntryNoop
	case paxos.EntryConfig:
		return replsim.EntryConfig
	}
	return replsim.EntryCommand
}

func (c *core) Ready() replsim.Ready {
	rd := c.rn.Ready()
	c.rd = rd
	out := replsim.Ready{Sync: rd.MustSync}
	out.Persist = func(d *sim.Disk) { pxPersist(d, rd) }
	for _, m := range rd.Messages {
		promise := replsim.NoPromise
		switch {
		case m.Reject:
		case m.Type == paxos.MsgPromise:
			promise = replsim.PromiseVote
		case m.Type == paxos.MsgAccepted:
			promise = replsim.PromiseAck
		}
		out.Messages = append(out.Messages, replsim.Envelope{To: m.To, Msg: m, Promise: promise})
	}
	for _, e := range rd.Entries {
		out.Accepted = append(out.Accepted, replsim.Record{
			Index: e.Slot, Term: e.Ballot.Round, Owner: e.Ballot.NodeID, Value: replsim.Value(pxKind(e.Type), e.Data),
		})
	}
	if rd.Snapshot != nil {
		out.Snapshot = &replsim.Snapshot{Index: rd.Snapshot.Slot, Data: rd.Snapshot.Data}
	}
	for _, e := range rd.CommittedEntries {
		out.Committed = append(out.Committed, replsim.Entry{Index: e.Slot, Kind: pxKind(e.Type), Data: e.Data})
	}
	for _, rs := range rd.ReadStates {
		out.Reads = append(out.Reads, replsim.ReadState{Index: rs.Index, Ctx: rs.Context})
	}
	return out
}

func pxPersist(d *sim.Disk, rd paxos.Ready) {
	if rd.MustSync {
		replsim.PutJSON(d, replsim.KeyHardState, rd.HardState)
	}
	if rd.Snapshot != nil {
		pxSaveSnapshot(d, *rd.Snapshot)
	}
	for _, e := range rd.Entries {
		replsim.PutJSON(d, replsim.EntryKey(e.Slot), e)
	}
}

func pxSaveSnapshot(d *sim.Disk, s paxos.Snapshot) {
	replsim.PutJSON(d, replsim.KeySnapshot, s)
	for _, k := range d.Keys(replsim.KeyEntry) {
		if k <= replsim.EntryKey(s.Slot) {
			d.Delete(k)
		}
	}
}

func (c *core) Compact(index uint64, data []byte, d *sim.Disk) error {
	snap, err := c.rn.Compact(index, data)
	if err != nil {
		return err
	}
	pxSaveSnapshot(d, snap)
	return nil
}
