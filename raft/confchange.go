package raft

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/quorum"
)

// ConfChangeType is one kind of change to a configuration.
type ConfChangeType uint8

const (
	// ConfChangeAddVoter adds a voter, promotes a learner, or updates a
	// voter's zone and weight. New voters go after the existing ones: a
	// grid lays voters out row by row in this order.
	ConfChangeAddVoter ConfChangeType = iota
	// ConfChangeAddLearner adds a learner or demotes a voter to one.
	ConfChangeAddLearner
	// ConfChangeRemove removes a voter or learner.
	ConfChangeRemove
)

func (t ConfChangeType) String() string {
	switch t {
	case ConfChangeAddVoter:
		return "add-voter"
	case ConfChangeAddLearner:
		return "add-learner"
	case ConfChangeRemove:
		return "remove"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChangeSingle is one change to one node.
type ConfChangeSingle struct {
	Type   ConfChangeType
	Member Member // only ID matters for learners and removals
}

// ConfChange asks to change the configuration: the Changes, applied in
// order to the current configuration, and optionally a new geometry.
//
// Any change of voters or geometry goes through a joint configuration
// (quorums of the old AND the new geometry) which the leader leaves on its
// own once it is applied. Changes to learners alone take effect directly:
// learners are in no quorum.
type ConfChange struct {
	Changes []ConfChangeSingle
	// Geometry, if set, replaces the geometry (a quorum.ParseSpec string).
	Geometry string
}

func (cc ConfChange) String() string {
	var b strings.Builder
	for i, c := range cc.Changes {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s(%d)", c.Type, c.Member.ID)
	}
	if cc.Geometry != "" {
		fmt.Fprintf(&b, " geometry=%s", cc.Geometry)
	}
	return strings.TrimSpace(b.String())
}

// changeTo returns the configuration that results from cc on cs, which
// must not be joint.
func (cs ConfState) changeTo(cc ConfChange) (ConfState, error) {
	if cs.Joint() {
		return ConfState{}, fmt.Errorf("%w: already in a joint configuration", ErrInvalidConfig)
	}
	if len(cc.Changes) == 0 && (cc.Geometry == "" || cc.Geometry == cs.Geometry) {
		return ConfState{}, fmt.Errorf("%w: empty configuration change", ErrInvalidConfig)
	}
	voters, learners := slices.Clone(cs.Voters), slices.Clone(cs.Learners)
	isID := func(id uint64) func(Member) bool { return func(m Member) bool { return m.ID == id } }
	for _, c := range cc.Changes {
		id := c.Member.ID
		if id == None {
			return ConfState{}, fmt.Errorf("%w: node ID 0 is reserved", ErrInvalidConfig)
		}
		learners = slices.DeleteFunc(learners, func(l uint64) bool { return l == id })
		switch c.Type {
		case ConfChangeAddVoter:
			if i := slices.IndexFunc(voters, isID(id)); i >= 0 {
				voters[i] = c.Member
			} else {
				voters = append(voters, c.Member)
			}
		case ConfChangeAddLearner:
			voters = slices.DeleteFunc(voters, isID(id))
			learners = append(learners, id)
		case ConfChangeRemove:
			voters = slices.DeleteFunc(voters, isID(id))
		default:
			return ConfState{}, fmt.Errorf("%w: unknown change %s", ErrInvalidConfig, c.Type)
		}
	}
	if len(voters) == 0 {
		return ConfState{}, fmt.Errorf("%w: removing all voters", ErrInvalidConfig)
	}
	geometry := cs.Geometry
	if cc.Geometry != "" {
		geometry = cc.Geometry
	}
	slices.Sort(learners)
	if geometry == cs.Geometry && slices.Equal(voters, cs.Voters) {
		// Learners only: no quorum changes, no joint phase needed.
		return ConfState{Geometry: geometry, Voters: voters, Learners: learners}, nil
	}
	next := ConfState{
		Geometry: geometry, Voters: voters,
		OutgoingGeometry: cs.Geometry, VotersOutgoing: slices.Clone(cs.Voters),
	}
	for _, l := range learners {
		if slices.ContainsFunc(cs.Voters, isID(l)) {
			// A demoted voter still votes on the old side until the joint
			// configuration is left.
			next.LearnersNext = append(next.LearnersNext, l)
		} else {
			next.Learners = append(next.Learners, l)
		}
	}
	return next, nil
}

// leaveJoint returns the new side of the joint configuration cs.
func (cs ConfState) leaveJoint() ConfState {
	out := ConfState{Geometry: cs.Geometry, Voters: slices.Clone(cs.Voters)}
	out.Learners = append(slices.Clone(cs.Learners), cs.LearnersNext...)
	slices.Sort(out.Learners)
	return out
}

func encodeConfState(cs ConfState) []byte {
	b, err := json.Marshal(cs)
	if err != nil {
		panic(fmt.Sprintf("raft: encoding a configuration: %v", err))
	}
	return b
}

func decodeConfState(data []byte) (ConfState, error) {
	var cs ConfState
	if err := json.Unmarshal(data, &cs); err != nil {
		return ConfState{}, fmt.Errorf("raft: corrupt configuration entry: %w", err)
	}
	return cs, nil
}

// config is a ConfState compiled for the core: its quorum system and
// whether its candidates must take unique Terms.
type config struct {
	cs ConfState
	// sys is nil for the empty configuration of a node that has not yet
	// learned one (it was added and waits for the log or a snapshot).
	sys         quorum.System
	voters      []uint64 // sys.Voters(), kept: it is read on every message
	uniqueTerms bool
}

func validateConfState(cs ConfState) error {
	_, err := newConfig(cs)
	return err
}

// newConfig compiles cs, refusing configurations Raft cannot run safely.
func newConfig(cs ConfState) (config, error) {
	c := config{cs: cs.Clone()}
	if len(cs.Voters) == 0 {
		if cs.Joint() || len(cs.Learners) > 0 {
			return config{}, fmt.Errorf("%w: a configuration without voters", ErrInvalidConfig)
		}
		return c, nil
	}
	incoming, uniqIn, err := buildSystem(cs.Geometry, cs.Voters)
	if err != nil {
		return config{}, err
	}
	c.sys, c.uniqueTerms = incoming, uniqIn
	if cs.Joint() {
		outgoing, uniqOut, err := buildSystem(cs.OutgoingGeometry, cs.VotersOutgoing)
		if err != nil {
			return config{}, err
		}
		c.sys, c.uniqueTerms = quorum.NewJoint(outgoing, incoming), uniqIn || uniqOut
	} else if cs.OutgoingGeometry != "" || len(cs.LearnersNext) > 0 {
		return config{}, fmt.Errorf("%w: outgoing state in a configuration that is not joint", ErrInvalidConfig)
	}
	voters := c.sys.Voters()
	c.voters = voters
	for _, l := range append(slices.Clone(cs.Learners), cs.LearnersNext...) {
		if _, ok := slices.BinarySearch(voters, l); ok && !slices.Contains(cs.LearnersNext, l) {
			return config{}, fmt.Errorf("%w: node %d is both a voter and a learner", ErrInvalidConfig, l)
		}
	}
	for _, l := range cs.LearnersNext {
		if !slices.ContainsFunc(cs.VotersOutgoing, func(m Member) bool { return m.ID == l }) {
			return config{}, fmt.Errorf("%w: next learner %d is not an outgoing voter", ErrInvalidConfig, l)
		}
	}
	if c.uniqueTerms {
		owner := map[uint64]uint64{}
		for _, id := range voters {
			if o, ok := owner[id%TermSlots]; ok {
				return config{}, fmt.Errorf("%w: %s needs unique Terms per candidate, but voters %d and %d own the same Terms (IDs equal modulo %d)",
					ErrInvalidConfig, c.sys, o, id, TermSlots)
			}
			owner[id%TermSlots] = id
		}
	}
	return c, nil
}

// buildSystem builds the quorum system of a geometry and proves it safe
// for Raft. It also says whether two of its election quorums can be
// disjoint, so that Terms must be unique per candidate.
func buildSystem(geometry string, voters []Member) (sys quorum.System, uniqueTerms bool, err error) {
	spec, err := quorum.ParseSpec(geometry)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	nodes := make([]quorum.Node, len(voters))
	for i, m := range voters {
		nodes[i] = quorum.Node{ID: m.ID, Zone: m.Zone, Weight: m.Weight}
	}
	sys, err = quorum.New(spec, nodes)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if len(voters) > quorum.MaxProofVoters {
		// Too many voters to enumerate. Majorities (of votes or of weight)
		// are known to meet each other; anything else is refused rather
		// than run unproven.
		if spec.Kind == quorum.KindMajority || spec.Kind == quorum.KindWeighted {
			return sys, false, nil
		}
		return nil, false, fmt.Errorf("%w: cannot prove %s on %d voters (more than %d)",
			ErrInvalidConfig, geometry, len(voters), quorum.MaxProofVoters)
	}
	rep, err := quorum.Prove(sys)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if !rep.Intersect {
		return nil, false, fmt.Errorf("%w: %s is unsafe for Raft: phase-1 quorum %v and phase-2 quorum %v share no voter",
			ErrInvalidConfig, geometry, rep.Counterexample.A, rep.Counterexample.B)
	}
	return sys, !rep.Phase1Intersect, nil
}

// isVoter reports whether id votes in c (on either side when joint).
func (c config) isVoter(id uint64) bool {
	_, ok := slices.BinarySearch(c.voters, id)
	return ok
}

// isLearner reports whether id is a learner of c and not a voter.
func (c config) isLearner(id uint64) bool {
	return slices.Contains(c.cs.Learners, id) || (slices.Contains(c.cs.LearnersNext, id) && !c.isVoter(id))
}

// members returns every voter and learner of c, in ascending order.
func (c config) members() []uint64 {
	ids := slices.Clone(c.voters)
	ids = append(ids, c.cs.Learners...)
	ids = append(ids, c.cs.LearnersNext...)
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (c config) String() string {
	if c.sys == nil {
		return "(none)"
	}
	var b strings.Builder
	describe := func(geometry string, voters []Member) {
		fmt.Fprintf(&b, "%s(", geometry)
		for i, m := range voters {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d", m.ID)
			if m.Zone != "" {
				fmt.Fprintf(&b, "@%s", m.Zone)
			}
			if m.Weight > 1 {
				fmt.Fprintf(&b, "*%d", m.Weight)
			}
		}
		b.WriteByte(')')
	}
	if c.cs.Joint() {
		b.WriteString("joint ")
		describe(c.cs.OutgoingGeometry, c.cs.VotersOutgoing)
		b.WriteString(" && ")
	}
	describe(c.cs.Geometry, c.cs.Voters)
	if len(c.cs.Learners) > 0 {
		fmt.Fprintf(&b, " learners=%v", c.cs.Learners)
	}
	if len(c.cs.LearnersNext) > 0 {
		fmt.Fprintf(&b, " learners_next=%v", c.cs.LearnersNext)
	}
	if c.uniqueTerms {
		b.WriteString(" unique-terms")
	}
	return b.String()
}
