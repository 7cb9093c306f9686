package quorum

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is a family of geometries.
type Kind string

const (
	KindMajority Kind = "majority"
	KindWeighted Kind = "weighted"
	KindGrid     Kind = "grid"
	KindZones    Kind = "zones"
	KindFlexible Kind = "flexible"
)

// MaxGridSide bounds the rows and columns of a grid, and MaxFlexibleSize the
// sizes of flexible quorums: far above any real replica set, low enough that
// a typo is caught instead of becoming a cluster nobody can build.
const (
	MaxGridSide     = 64
	MaxFlexibleSize = 1024
)

// Spec is a parsed geometry string, not yet bound to a cluster.
type Spec struct {
	Kind       Kind
	Rows, Cols int // grid
	Q1, Q2     int // flexible
}

// String returns s in the syntax ParseSpec accepts.
func (s Spec) String() string {
	switch s.Kind {
	case KindGrid:
		return fmt.Sprintf("grid:%dx%d", s.Rows, s.Cols)
	case KindFlexible:
		return fmt.Sprintf("flexible:%d,%d", s.Q1, s.Q2)
	}
	return string(s.Kind)
}

const specSyntax = "want majority, weighted, grid:RxC, zones or flexible:Q1,Q2"

// ParseSpec parses a geometry: majority, weighted, grid:RxC, zones or
// flexible:Q1,Q2. Surrounding spaces are ignored; nothing else is.
func ParseSpec(str string) (Spec, error) {
	str = strings.TrimSpace(str)
	name, arg, hasArg := strings.Cut(str, ":")
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s", ErrInvalid, str, fmt.Sprintf(format, args...))
	}
	switch Kind(name) {
	case KindMajority, KindWeighted, KindZones:
		if hasArg {
			return bad("%s takes no parameters", name)
		}
		return Spec{Kind: Kind(name)}, nil
	case KindGrid:
		r, c, ok := strings.Cut(arg, "x")
		rows, err1 := strconv.Atoi(r)
		cols, err2 := strconv.Atoi(c)
		if !hasArg || !ok || err1 != nil || err2 != nil {
			return bad("want grid:RxC, e.g. grid:3x3")
		}
		if rows < 1 || cols < 1 || rows > MaxGridSide || cols > MaxGridSide {
			return bad("rows and columns must be 1 to %d", MaxGridSide)
		}
		return Spec{Kind: KindGrid, Rows: rows, Cols: cols}, nil
	case KindFlexible:
		a, b, ok := strings.Cut(arg, ",")
		q1, err1 := strconv.Atoi(a)
		q2, err2 := strconv.Atoi(b)
		if !hasArg || !ok || err1 != nil || err2 != nil {
			return bad("want flexible:Q1,Q2, e.g. flexible:4,2")
		}
		if q1 < 1 || q2 < 1 || q1 > MaxFlexibleSize || q2 > MaxFlexibleSize {
			return bad("quorum sizes must be 1 to %d", MaxFlexibleSize)
		}
		return Spec{Kind: KindFlexible, Q1: q1, Q2: q2}, nil
	}
	return bad(specSyntax)
}

// New binds a geometry to its voters. It refuses clusters that cannot carry
// the geometry (a 3x3 grid on 8 nodes, zones without zone names) but accepts
// geometries whose quorums fail to intersect: Prove tells those apart.
func New(spec Spec, nodes []Node) (System, error) {
	vs, err := newVoterSet(nodes)
	if err != nil {
		return nil, err
	}
	switch spec.Kind {
	case KindMajority:
		return newMajority(vs), nil
	case KindWeighted:
		return newWeighted(vs, nodes)
	case KindGrid:
		return newGrid(vs, spec.Rows, spec.Cols)
	case KindZones:
		return newZones(vs, nodes)
	case KindFlexible:
		return newFlexible(vs, spec.Q1, spec.Q2)
	}
	return nil, fmt.Errorf("%w: unknown kind %q: %s", ErrInvalid, spec.Kind, specSyntax)
}

// Parse is ParseSpec followed by New.
func Parse(geometry string, nodes []Node) (System, error) {
	spec, err := ParseSpec(geometry)
	if err != nil {
		return nil, err
	}
	return New(spec, nodes)
}

// Majority is the majority system of ids, for callers that need no parsing.
func Majority(ids ...uint64) (System, error) {
	nodes := make([]Node, len(ids))
	for i, id := range ids {
		nodes[i] = Node{ID: id}
	}
	return New(Spec{Kind: KindMajority}, nodes)
}
