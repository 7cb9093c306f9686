package server

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/quorum"
)

// GeometryView is a keyspace's quorum geometry on the replicas of its
// first range, with the proof `kvctl quorum check` prints (quorum.Prove,
// Report.WriteText) and a picture of it.
type GeometryView struct {
	Geometry string   `json:"geometry"`
	Range    uint64   `json:"range"`
	Voters   []string `json:"voters"`
	// Phase1 and Phase2 are a minimal quorum of each phase, the first
	// the proof lists (for phase 2 the first that is not Phase1).
	Phase1 []string `json:"phase1_example"`
	Phase2 []string `json:"phase2_example"`
	// Tolerates: failures after which both phases still have a quorum;
	// Tolerates1 and Tolerates2 each phase's.
	Tolerates  int    `json:"tolerates"`
	Tolerates1 int    `json:"phase1_tolerates"`
	Tolerates2 int    `json:"phase2_tolerates"`
	Safe       bool   `json:"safe"`
	Proof      string `json:"proof"`
	Error      string `json:"error,omitempty"`
	SVG        SVG    `json:"-"`
}

// SVG is the picture: zones as boxes, voters as circles in them.
type SVG struct {
	Width, Height int
	Zones         []SVGZone
	Nodes         []SVGNode
}

type SVGZone struct {
	X, Y, W, H int
	Name       string
	// LabelX, LabelY place the zone's name.
	LabelX, LabelY int
}

type SVGNode struct {
	X, Y   int
	Name   string
	Weight int
	// WeightY places the weight (shown when over 1) under the circle.
	WeightY int
	// Class: q1, q2, q1 q2 (in both example quorums), or none.
	Class string
}

// proofCache keeps proofs by geometry and voters: the proof enumerates
// every subset of the voters, and the console asks every two seconds.
type proofCache struct {
	mu sync.Mutex
	m  map[string]GeometryView
}

// maxCachedProofs bounds the cache; past it the cache starts over.
const maxCachedProofs = 256

// geometry proves ks's geometry on range r's replicas.
func (s *Server) geometry(ks catalog.KeyspaceDescriptor, r catalog.RangeDescriptor) GeometryView {
	if ks.Mode == catalog.ModeEventual && ks.W > 0 {
		// Size-based eventual keyspaces read R and write W replicas
		// (KeyspaceDescriptor.ProveOn).
		r.Geometry = fmt.Sprintf("flexible:%d,%d", ks.R, ks.W)
	}
	var nodes []quorum.Node
	var key strings.Builder
	fmt.Fprintf(&key, "%s|%s", r.Geometry, ks.Mode)
	for _, rep := range r.Replicas {
		nodes = append(nodes, quorum.Node{ID: rep.NodeID, Zone: rep.Zone, Weight: rep.Weight})
		fmt.Fprintf(&key, "|%d@%s:%d=%s", rep.NodeID, rep.Zone, rep.Weight, s.api.nodeName(rep.NodeID))
	}
	c := &s.console.proofs
	c.mu.Lock()
	g, ok := c.m[key.String()]
	c.mu.Unlock()
	if ok {
		g.Range = r.ID
		return g
	}
	g = proveGeometry(ks, r, nodes, s.api.nodeName)
	c.mu.Lock()
	if len(c.m) >= maxCachedProofs {
		c.m = map[string]GeometryView{}
	}
	c.m[key.String()] = g
	c.mu.Unlock()
	return g
}

func proveGeometry(ks catalog.KeyspaceDescriptor, r catalog.RangeDescriptor, nodes []quorum.Node, name func(uint64) string) GeometryView {
	g := GeometryView{Geometry: r.Geometry, Range: r.ID}
	names := func(ids []uint64) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = name(id)
		}
		return out
	}
	sys, err := quorum.Parse(r.Geometry, nodes)
	if err != nil {
		g.Error = err.Error()
		return g
	}
	rep, err := quorum.Prove(sys)
	if err != nil {
		g.Error = err.Error()
		return g
	}
	g.Voters = names(rep.Voters)
	var p1, p2 []uint64
	if len(rep.Phase1.Examples) > 0 {
		p1 = rep.Phase1.Examples[0]
	}
	for _, e := range rep.Phase2.Examples {
		if p2 == nil || slices.Equal(p2, p1) {
			p2 = e
		}
	}
	g.Phase1, g.Phase2 = names(p1), names(p2)
	g.Tolerates, g.Tolerates1, g.Tolerates2 = rep.Tolerates(), rep.Phase1.Tolerates, rep.Phase2.Tolerates
	protocol := quorum.Protocol(ks.Mode)
	g.Safe, _ = rep.Safe(protocol)
	var b strings.Builder
	rep.WriteText(&b, name, []quorum.Protocol{protocol})
	g.Proof = b.String()
	g.SVG = drawGeometry(nodes, p1, p2, name)
	return g
}

// drawGeometry lays the voters out by zone, zones and the voters in
// each in name order.
func drawGeometry(nodes []quorum.Node, p1, p2 []uint64, name func(uint64) string) SVG {
	const (
		pad     = 10
		cell    = 76 // a node's width in its zone box
		boxTop  = 10
		boxH    = 110
		nodeY   = boxTop + 64
		labelsH = 0
	)
	var zones []string
	byZone := map[string][]quorum.Node{}
	for _, n := range nodes {
		if _, ok := byZone[n.Zone]; !ok {
			zones = append(zones, n.Zone)
		}
		byZone[n.Zone] = append(byZone[n.Zone], n)
	}
	slices.Sort(zones)
	for _, z := range zones {
		slices.SortFunc(byZone[z], func(a, b quorum.Node) int { return strings.Compare(name(a.ID), name(b.ID)) })
	}
	var svg SVG
	x := pad
	for _, z := range zones {
		members := byZone[z]
		w := len(members)*cell + pad
		svg.Zones = append(svg.Zones, SVGZone{X: x, Y: boxTop, W: w, H: boxH, Name: z, LabelX: x + 8, LabelY: boxTop + 18})
		for i, n := range members {
			var class []string
			if slices.Contains(p1, n.ID) {
				class = append(class, "q1")
			}
			if slices.Contains(p2, n.ID) {
				class = append(class, "q2")
			}
			svg.Nodes = append(svg.Nodes, SVGNode{X: x + pad/2 + i*cell + cell/2, Y: nodeY, Name: name(n.ID), Weight: n.Weight,
				WeightY: nodeY + 36, Class: strings.Join(class, " ")})
		}
		x += w + pad
	}
	svg.Width, svg.Height = max(x, 200), boxTop+boxH+pad+labelsH
	return svg
}
