package paxos_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/quorumkv/quorumkv/internal/replsim"
	"github.com/quorumkv/quorumkv/internal/sim"
	"github.com/quorumkv/quorumkv/paxos"
)

// The adapter that lets internal/replsim drive a paxos.RawNode: the
// suites themselves are in sim_suite_test.go.

// simPaxosConfig is the core configuration of the simulator runs, with a
// 10ms tick: 100-200ms election timeouts, a heartbeat every 20ms, a window
// of 8 open slots and small messages.
func simPaxosConfig() paxos.Config {
	return paxos.Config{ElectionTicks: 10, HeartbeatTicks: 2, MaxOpenSlots: 8, MaxSizePerMsg: 512, MaxUncommittedBytes: 1 << 16}
}

// paxosProtocol builds Multi-Paxos nodes with the planted bug c.
func paxosProtocol(c paxos.Canary) replsim.Protocol {
	return paxosProtocolWith(c, false)
}

// paxosLeaseProtocol builds Multi-Paxos nodes with read leases
// (Config.ReadLease) and the planted bug c.
func paxosLeaseProtocol(c paxos.Canary) replsim.Protocol {
	return paxosProtocolWith(c, true)
}

func paxosProtocolWith(c paxos.Canary, lease bool) replsim.Protocol {
	name := "paxos"
	if lease {
		name = "paxos-lease"
	}
	return replsim.Protocol{
		Name:           name,
		ChosenByQuorum: true,
		Start: func(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk) (replsim.Core, *replsim.Snapshot) {
			cfg := simPaxosConfig()
			cfg.ReadLease = lease
			return startPaxos(env, id, init, d, paxos.WithCanary(cfg, c))
		},
	}
}

// On disk: "hs" the HardState, "snap" the latest snapshot, "e/<slot>" the
// accepted entries, all JSON.
const (
	pxHardState = "hs"
	pxSnapshot  = "snap"
	pxEntry     = "e/"
)

func pxEntryKey(s uint64) string { return fmt.Sprintf("%s%016x", pxEntry, s) }

func pxMembership(m replsim.Membership) paxos.Membership {
	return paxos.Membership{Geometry: m.Geometry, Voters: m.Voters}
}

// startPaxos rebuilds a node from its disk; every node of the group, spare
// or not, starts from the founding configuration.
func startPaxos(env *sim.Env, id uint64, init replsim.Membership, d *sim.Disk, cfg paxos.Config) (replsim.Core, *replsim.Snapshot) {
	ps := paxos.Bootstrap(pxMembership(init))
	var out *replsim.Snapshot
	var snap paxos.Snapshot
	if replsim.LoadJSON(d, pxSnapshot, &snap) {
		ps.Snapshot = snap
		out = &replsim.Snapshot{Index: snap.Slot, Data: snap.Data}
	}
	replsim.LoadJSON(d, pxHardState, &ps.HardState)
	for _, k := range d.Keys(pxEntry) {
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
	return &paxosCore{rn: rn}, out
}

type paxosCore struct {
	rn *paxos.RawNode
	rd paxos.Ready
}

func (c *paxosCore) Tick() { c.rn.Tick() }

func (c *paxosCore) Step(msg any) {
	// Errors are messages the core refuses: a network delivers those too.
	_ = c.rn.Step(msg.(paxos.Message))
}

func (c *paxosCore) Propose(data []byte) error { return c.rn.Propose(data) }

func (c *paxosCore) ReadIndex(ctx []byte) error { return c.rn.ReadIndex(ctx) }

func (c *paxosCore) ProposeConfig(m replsim.Membership) error {
	return c.rn.ProposeConfig(pxMembership(m))
}

func (c *paxosCore) TransferLeader(to uint64) error { return c.rn.TransferLeader(to) }

func (c *paxosCore) HasReady() bool { return c.rn.HasReady() }

func (c *paxosCore) Advance() { c.rn.Advance(c.rd) }

// Leader reports the ballot a leader leads at: its promise, which a
// leader only ever holds at its own ballot.
func (c *paxosCore) Leader() (term, owner uint64, ok bool) {
	st := c.rn.Status()
	return st.Promised.Round, st.Promised.NodeID, st.Role == paxos.Leader
}

func (c *paxosCore) Hint() uint64 { return c.rn.Status().Leader }

// Lease makes paxosCore a replsim.LeaseCore.
func (c *paxosCore) Lease() bool { return c.rn.HoldsLease() }

func pxKind(t paxos.EntryType) replsim.EntryKind {
	switch t {
	case paxos.EntryNoop:
		return replsim.EntryNoop
	case paxos.EntryConfig:
		return replsim.EntryConfig
	}
	return replsim.EntryCommand
}

func (c *paxosCore) Ready() replsim.Ready {
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
		replsim.PutJSON(d, pxHardState, rd.HardState)
	}
	if rd.Snapshot != nil {
		pxSaveSnapshot(d, *rd.Snapshot)
	}
	for _, e := range rd.Entries {
		replsim.PutJSON(d, pxEntryKey(e.Slot), e)
	}
}

func pxSaveSnapshot(d *sim.Disk, s paxos.Snapshot) {
	replsim.PutJSON(d, pxSnapshot, s)
	for _, k := range d.Keys(pxEntry) {
		if k <= pxEntryKey(s.Slot) {
			d.Delete(k)
		}
	}
}

func (c *paxosCore) Compact(index uint64, data []byte, d *sim.Disk) error {
	snap, err := c.rn.Compact(index, data)
	if err != nil {
		return err
	}
	pxSaveSnapshot(d, snap)
	return nil
}
