package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/quorum"
)

// A range without a leader is normal for a moment (an election), and a
// request waits it out (withForwarding). But when this node cannot hear
// from enough of the range's replicas to elect one, no election will end
// soon, and the request says so at once, naming the quorum it lacks,
// rather than after the client's deadline. Every store sends a beacon to
// every other node on every tick (quiesce.go), so "heard from within an
// election timeout" is a node-level liveness signal that costs nothing.

// quorumReach is what this node can tell of a range's quorums now.
type quorumReach struct {
	rangeID uint64
	sys     quorum.System
	// heard says which voters this node heard from within an election
	// timeout (itself included).
	heard map[uint64]bool
	// early: the store started less than an election timeout ago, so it
	// has not had the time to hear from everyone; it cannot tell.
	early bool
}

// Can reports whether the voters heard from include a phase-p quorum
// (true while it is too early to tell).
func (q quorumReach) Can(p quorum.Phase) bool {
	return q.early || q.sys.IsQuorum(p, func(id uint64) bool { return q.heard[id] })
}

// reach returns what this node can tell of range rangeID's quorums, or
// false if it holds no replica of it. Loop only.
func (s *Store) reach(rangeID uint64) (quorumReach, bool) {
	r, ok := s.Replicas[rangeID]
	if !ok {
		return quorumReach{}, false
	}
	var nodes []quorum.Node
	geometry := r.desc.Geometry
	if rangeID == catalog.MetaRangeID {
		for _, v := range MetaCore(r).RawNode.ConfState().Voters {
			nodes = append(nodes, quorum.Node{ID: v.ID, Zone: v.Zone, Weight: v.Weight})
		}
	} else {
		for _, rep := range r.desc.Replicas {
			nodes = append(nodes, quorum.Node{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
		}
	}
	sys, err := quorum.Parse(geometry, nodes)
	if err != nil {
		return quorumReach{}, false // placement proved it when the range was made: cannot happen
	}
	timeout := int64(s.electionTicks())
	q := quorumReach{rangeID: rangeID, sys: sys, heard: map[uint64]bool{}, early: s.Quiesce.ticks < timeout}
	for _, id := range sys.Voters() {
		if id == s.nodeID {
			q.heard[id] = true
		} else if at, ok := s.Quiesce.heard[id]; ok && s.Quiesce.ticks-at <= timeout {
			q.heard[id] = true
		}
	}
	return q, true
}

// Reach is reach for the API's goroutines.
func (s *Store) Reach(ctx context.Context, rangeID uint64) (quorumReach, bool, error) {
	var q quorumReach
	var ok bool
	err := s.Do(ctx, func() { q, ok = s.reach(rangeID) })
	return q, ok, err
}

// NoQuorumError says that a range cannot serve because this node cannot
// reach a quorum of its replicas. It is an ErrUnavailable: nothing was
// written.
type NoQuorumError struct {
	RangeID uint64
	// Phase is the quorum lacking: phase 1 to elect a leader, phase 2 to
	// commit or confirm a read.
	Phase quorum.Phase
	// Need describes the quorum, Heard and Silent the voters by name.
	Need          string
	Heard, Silent []string
}

func (e *NoQuorumError) Error() string {
	what := "elect a leader: an election needs"
	if e.Phase == quorum.Phase2 {
		what = "commit: a write needs"
	}
	return fmt.Sprintf("%v: range %d cannot %s %s; this node hears from %d of %d replicas (%s), not from %s",
		ErrUnavailable, e.RangeID, what, e.Need, len(e.Heard), len(e.Heard)+len(e.Silent),
		strings.Join(e.Heard, ", "), strings.Join(e.Silent, ", "))
}

func (e *NoQuorumError) Unwrap() error { return ErrUnavailable }

// NoQuorum returns the NoQuorumError of q for phase p, naming voters with
// name.
func (q quorumReach) NoQuorum(p quorum.Phase, name func(uint64) string) *NoQuorumError {
	e := &NoQuorumError{RangeID: q.rangeID, Phase: p, Need: q.sys.Describe(p)}
	for _, id := range q.sys.Voters() {
		if q.heard[id] {
			e.Heard = append(e.Heard, name(id))
		} else {
			e.Silent = append(e.Silent, name(id))
		}
	}
	slices.Sort(e.Heard)
	slices.Sort(e.Silent)
	return e
}
