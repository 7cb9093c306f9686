package quorum

import (
	"fmt"
	"slices"
)

// Joint is the geometry in force during a configuration change: a set is a
// phase-p quorum when it is one of both the old and the new system. Every
// decision taken in the joint phase is therefore known to a quorum of the
// old configuration and of the new one, so neither can go on alone without
// hearing of it (Raft's joint consensus, §6 of the Raft paper). It works for
// any pair of geometries: majority of 3 to zones, 3x3 grid to majority of 5.
type Joint struct {
	Old, New System
	voters   []uint64
}

// NewJoint returns the joint system of old and new.
func NewJoint(old, new System) *Joint {
	voters := append(old.Voters(), new.Voters()...)
	slices.Sort(voters)
	return &Joint{Old: old, New: new, voters: slices.Compact(voters)}
}

func (j *Joint) String() string { return fmt.Sprintf("joint(%s,%s)", j.Old, j.New) }

func (j *Joint) Voters() []uint64 { return slices.Clone(j.voters) }

func (j *Joint) Describe(p Phase) string {
	return fmt.Sprintf("old: %s; new: %s", j.Old.Describe(p), j.New.Describe(p))
}

func (j *Joint) IsQuorum(p Phase, in func(uint64) bool) bool {
	return j.Old.IsQuorum(p, in) && j.New.IsQuorum(p, in)
}

// QuorumIndex is the lower of the two: an index is held by a joint quorum
// once it is held by a quorum of each side.
func (j *Joint) QuorumIndex(p Phase, acked func(uint64) uint64) uint64 {
	return min(j.Old.QuorumIndex(p, acked), j.New.QuorumIndex(p, acked))
}

func (j *Joint) bits(u *universe) bitQuorum {
	o, n := j.Old.bits(u), j.New.bits(u)
	return func(p Phase, s uint64) bool { return o(p, s) && n(p, s) }
}
