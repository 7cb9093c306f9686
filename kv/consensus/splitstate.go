package consensus

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/quorum"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// KeyWriter takes keys one by one: a storage.Batch, or a staged sstable
// (storage.SSTWriter), which must be given its keys in increasing order.
type KeyWriter interface {
	Set(key, value []byte) error
}

// SplitCore is a Core whose range splits (kv/store/split.go): Raft and
// Multi-Paxos both. The split is a command of the range's log, applied by
// every replica at the same index; its file is written off the store's
// loop while the range's apply waits at it.
type SplitCore interface {
	Core
	// SplitFounding returns the consensus state of a range split off at
	// index, whose Split command carries the configuration voters and
	// geometry (what the proposer saw in force): the same on every replica
	// that applies the split, from what the log chose up to index alone.
	// refuse is why the split cannot be applied ("" if it can): the
	// configuration in force at index is not the one the command carries.
	// Every replica refuses it alike.
	SplitFounding(index uint64, voters []catalog.ReplicaDescriptor, geometry string) (f SplitFounding, refuse string, err error)
	// AdvancePaused is Advance for a Ready whose committed entries were
	// applied only up to index applied: the apply stops there until
	// ResumeApply, or until the core takes a snapshot.
	AdvancePaused(applied uint64)
	// ResumeApply: the next Ready hands out the committed entries after
	// the applied index again.
	ResumeApply()
	// Campaign starts an election (Raft) or phase 1 (Paxos) now: the
	// replica that led the range that split does so for the new range.
	// A refusal (an election is under way) is ignored.
	Campaign()
}

var (
	_ SplitCore = (*RaftCore)(nil)
	_ SplitCore = (*PaxosCore)(nil)
)

// SplitFounding is the consensus state of a range born of a split at
// Index: as if it had installed a snapshot at Index. Every replica of the
// old range applies the split at the same index, with the same founding,
// so every replica of the new range starts identical: a log that begins
// after Index, which it never reuses (so a moved value's version, its old
// range's log index, names the same write in the new range), and no vote
// or promise.
type SplitFounding struct {
	Index uint64
	// Paxos: the range is a Multi-Paxos group; else Raft.
	Paxos bool
	// Raft: the term of entry Index, and the configuration the split
	// carries.
	Term uint64
	Conf raft.ConfState
	// Multi-Paxos: the configurations that govern the slots after Index,
	// as the slots up to Index chose them (paxos.RawNode.ConfigsAt).
	Configs []paxos.ConfigState
}

// Write writes to w the range's hard state and truncation point (Raft)
// or snapshot point (Multi-Paxos), in key order, and not its applied
// state (AppliedState(f.Index) under storage.AppliedStateKey), which
// sorts after other ranges' state keys: the caller writes it where its
// order puts it.
func (f *SplitFounding) Write(w KeyWriter, rangeID uint64) error {
	if f.Paxos {
		hs := paxos.HardState{Commit: f.Index}
		if err := w.Set(storage.HardStateKey(rangeID), EncodePaxosHardState(hs)); err != nil {
			return err
		}
		return w.Set(storage.TruncatedStateKey(rangeID), EncodePaxosSnapshotPoint(paxos.Snapshot{Slot: f.Index, Configs: f.Configs}))
	}
	hs := raft.HardState{Term: f.Term, Commit: f.Index}
	if err := w.Set(storage.HardStateKey(rangeID), EncodeHardState(hs)); err != nil {
		return err
	}
	return w.Set(storage.TruncatedStateKey(rangeID), encodeTruncatedState(truncatedState{Index: f.Index, term: f.Term, cs: f.Conf.Clone()}))
}

// Replicas are the new range's replicas as its founding configuration
// lists them (the newest one, for Multi-Paxos), and its geometry.
func (f *SplitFounding) Replicas() ([]catalog.ReplicaDescriptor, string) {
	var out []catalog.ReplicaDescriptor
	if f.Paxos {
		if len(f.Configs) == 0 {
			return nil, ""
		}
		m := f.Configs[len(f.Configs)-1].Membership
		for _, v := range m.Voters {
			out = append(out, catalog.ReplicaDescriptor{NodeID: v.ID, Zone: v.Zone, Weight: v.Weight})
		}
		return out, m.Geometry
	}
	for _, v := range f.Conf.Voters {
		out = append(out, catalog.ReplicaDescriptor{NodeID: v.ID, Zone: v.Zone, Weight: v.Weight})
	}
	return out, f.Conf.Geometry
}

// SplitFounding: the term of entry index and the configuration the split
// carries. The proposer checked that no configuration change was pending
// (kv/store's StartSplit).
func (c *RaftCore) SplitFounding(index uint64, voters []catalog.ReplicaDescriptor, geometry string) (SplitFounding, string, error) {
	term, err := c.Log.Term(index)
	if err != nil {
		return SplitFounding{}, "", fmt.Errorf("kv: range %d: the term of split entry %d: %w", c.rg.Desc.ID, index, err)
	}
	f := SplitFounding{Index: index, Term: term}
	for _, v := range voters {
		f.Conf.Voters = append(f.Conf.Voters, raft.Member{ID: v.NodeID, Zone: v.Zone, Weight: v.Weight})
	}
	f.Conf.Geometry = geometry
	return f, "", nil
}

// Campaign: see SplitCore.
func (c *RaftCore) Campaign() { _ = c.RawNode.Campaign() }

// SplitFounding: the configurations the slots up to index chose for the
// slots after it (paxos.RawNode.ConfigsAt), which the new range keeps, as
// a snapshot at index would. The split is refused unless that is one
// configuration, the one the command carries: a configuration change
// chosen fewer than alpha-1 slots before index, which takes effect after
// index+1, or one the command does not carry (a move the proposer did
// not see), would leave the catalog's replicas of the new range and its
// configuration apart.
func (c *PaxosCore) SplitFounding(index uint64, voters []catalog.ReplicaDescriptor, geometry string) (SplitFounding, string, error) {
	cs := c.rn.ConfigsAt(index)
	want := paxos.Membership{Geometry: geometry}
	for _, v := range voters {
		want.Voters = append(want.Voters, quorum.Node{ID: v.NodeID, Zone: v.Zone, Weight: v.Weight})
	}
	switch {
	case len(cs) == 0:
		return SplitFounding{}, "", fmt.Errorf("kv: paxos range %d applies slot %d with no configuration", c.rg.Desc.ID, index)
	case len(cs) > 1:
		return SplitFounding{}, "a configuration change is under way", nil
	case !sameVoters(cs[0].Membership, want):
		return SplitFounding{}, fmt.Sprintf("its configuration is %s, not %s", cs[0].Membership, want), nil
	}
	return SplitFounding{Index: index, Paxos: true, Configs: cs}, "", nil
}

// sameVoters compares two configurations regardless of voter order.
func sameVoters(a, b paxos.Membership) bool {
	key := func(m paxos.Membership) string {
		m.Voters = slices.SortedFunc(slices.Values(m.Voters), func(x, y quorum.Node) int { return cmp.Compare(x.ID, y.ID) })
		return m.String()
	}
	return key(a) == key(b)
}

// AdvancePaused: see SplitCore (paxos.RawNode.AdvancePaused).
func (c *PaxosCore) AdvancePaused(applied uint64) {
	c.rn.AdvancePaused(c.rd, applied)
	c.rd = paxos.Ready{}
}

// ResumeApply: see SplitCore.
func (c *PaxosCore) ResumeApply() { c.rn.ResumeApply() }

// Campaign: see SplitCore.
func (c *PaxosCore) Campaign() { c.rn.Campaign() }

// HasRangeState reports whether this node holds any consensus state of
// range rangeID: a hard state, a truncation point or a log entry.
func HasRangeState(db *storage.DB, rangeID uint64) (bool, error) {
	for _, key := range [][]byte{storage.HardStateKey(rangeID), storage.TruncatedStateKey(rangeID)} {
		if _, err := db.Get(key); err == nil {
			return true, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return false, err
		}
	}
	it, err := db.NewIter(storage.RangeLogSpan(rangeID))
	if err != nil {
		return false, err
	}
	found := it.First()
	return found, errors.Join(it.Error(), it.Close())
}
