package catalog

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

// The catalog lives in the system range meta, itself a Raft group
// (majority): keyspace descriptors and range descriptors with their
// replica sets. Every change to it is a command in meta's log, so every
// replica of meta holds the same catalog at the same index, and topology
// is never decided by gossip (DESIGN.md §3).

// MetaRangeID is the range of the catalog, created at bootstrap.
const MetaRangeID = 1

// MetaKeyspace names the system keyspace that holds the catalog.
const MetaKeyspace = "meta"

// ReplicaDescriptor is one replica of a range.
type ReplicaDescriptor struct {
	NodeID uint64 `json:"node"`
	Zone   string `json:"zone,omitempty"`
	Weight int    `json:"weight,omitempty"`
	// Added marks a replica that joined the range after it was founded (a
	// move): it starts empty and gets the range from the range's leader,
	// never founding the range's log itself as the founding replicas do.
	Added bool `json:"added,omitempty"`
	// Filling marks a replica of an eventual range that a move or a growth
	// added and that has not yet copied the records and compare-and-swap
	// states the range's other replicas hold (CatalogOp.Filled clears it).
	// Writes reach it and count toward W, and its acceptances toward a
	// compare-and-swap's phase 2; reads, scans and phase 1 do not count
	// it, so a quorum never hears from an empty replica in place of one
	// that held an acknowledged write.
	Filling bool `json:"filling,omitempty"`
}

// RangeDescriptor is a range as the catalog keeps it.
type RangeDescriptor struct {
	ID       uint64              `json:"id"`
	Keyspace string              `json:"keyspace"`
	Span     Span                `json:"span"`
	Replicas []ReplicaDescriptor `json:"replicas"`
	// Leaving are replicas a move took off the range (MoveReplica) that
	// still run until the range has let them go: a Raft range once its
	// configuration no longer holds them, an eventual range once the
	// leaving replica handed its records to the others. Meta's leader
	// then drops them (CatalogOp.Left) and their nodes delete them. Until
	// then a node that was a voter keeps voting, so a move off a live node
	// never leaves the range a replica short.
	Leaving []ReplicaDescriptor `json:"leaving,omitempty"`
	// Geometry is the quorum geometry of the range's consensus group (the
	// keyspace's), over Replicas in order.
	Geometry string `json:"geometry"`
	// Mode is the keyspace's mode, repeated so a replica needs nothing
	// else to start.
	Mode Mode `json:"mode"`
	// Parent is the range this one was split from (CatalogOp.Split), 0
	// for a range the keyspace was created with. Its values keep the
	// versions they had there: a version of an ancestor names the same
	// log index (kv.Node's compare-and-swap accepts it).
	Parent uint64 `json:"parent,omitempty"`
}

// HasReplica reports whether node holds a replica of r.
func (r *RangeDescriptor) HasReplica(node uint64) bool {
	return slices.ContainsFunc(r.Replicas, func(rep ReplicaDescriptor) bool { return rep.NodeID == node })
}

// IsLeaving reports whether node's replica of r is leaving (Leaving).
func (r *RangeDescriptor) IsLeaving(node uint64) bool {
	return slices.ContainsFunc(r.Leaving, func(rep ReplicaDescriptor) bool { return rep.NodeID == node })
}

// IsFilling reports whether node's replica of r is still filling
// (ReplicaDescriptor.Filling).
func (r *RangeDescriptor) IsFilling(node uint64) bool {
	return slices.ContainsFunc(r.Replicas, func(rep ReplicaDescriptor) bool { return rep.NodeID == node && rep.Filling })
}

// AnyFilling reports whether one of r's replicas is still filling.
func (r *RangeDescriptor) AnyFilling() bool {
	return slices.ContainsFunc(r.Replicas, func(rep ReplicaDescriptor) bool { return rep.Filling })
}

// Holds reports whether node runs a replica of r: one of its replicas,
// or one leaving.
func (r *RangeDescriptor) Holds(node uint64) bool { return r.HasReplica(node) || r.IsLeaving(node) }

// Clone returns a copy of r that shares no slice with it.
func (r *RangeDescriptor) Clone() *RangeDescriptor {
	c := *r
	c.Replicas, c.Leaving = slices.Clone(r.Replicas), slices.Clone(r.Leaving)
	return &c
}

// NodeDescriptor is a node of the cluster as the catalog knows it: its ID
// (what Raft calls it), who it is (its UUID, see kv/store/identity.go) and where to
// reach it. Names may repeat: a node whose data dir was lost comes back
// under its old name with a new UUID and a new ID.
type NodeDescriptor struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Gossip is the node's memberlist address, so that a node restarted
	// without --join can find the others again.
	Gossip string `json:"gossip,omitempty"`
	Zone   string `json:"zone"`
	Weight int    `json:"weight"`
	// UUID is the node's identity, chosen at its first start.
	UUID string `json:"uuid"`
	// SecretHash is the hex SHA-256 of the node's secret: a change to a
	// known node must carry the secret (the catalog op carries its hash).
	SecretHash string `json:"secret_sha256"`
	// Removed marks a node an operator removed (CatalogOp.RemoveNode): its
	// replicas move away at once, and it may never come back under this
	// identity.
	Removed bool `json:"removed,omitempty"`
	// Decommissioning marks a node an operator is taking out of the
	// cluster while it runs (CatalogOp.Decommission): it takes no new
	// replicas, its replicas move to other nodes while it keeps serving
	// them, and once it holds none and is not one of meta's voters, meta's
	// leader marks it Removed.
	Decommissioning bool `json:"decommissioning,omitempty"`
}

// Catalog is the decoded state of meta. Only the store's goroutine
// changes it; readers get copies.
type Catalog struct {
	Keyspaces map[string]KeyspaceDescriptor
	Ranges    map[uint64]*RangeDescriptor
	Nodes     map[uint64]NodeDescriptor
	// nextID numbers keyspaces and ranges; meta is range 1.
	nextID uint64
	// NextNodeID numbers nodes; the founding node is 1.
	NextNodeID uint64
	// Users, Roles and Auth are the cluster's users and roles (auth.go),
	// root aside, and whether it checks them.
	Users map[string]User
	Roles map[string]Role
	Auth  AuthSettings
	// nextGeneration numbers users' password generations
	// (User.Generation), all users from one counter.
	nextGeneration uint64
}

func NewCatalog() *Catalog {
	return &Catalog{Keyspaces: map[string]KeyspaceDescriptor{}, Ranges: map[uint64]*RangeDescriptor{},
		Nodes: map[uint64]NodeDescriptor{}, nextID: MetaRangeID + 1, NextNodeID: 1,
		Users: map[string]User{}, Roles: map[string]Role{}, nextGeneration: 1}
}

// KeyspaceRanges returns the keyspace's ranges in hash order.
func (c *Catalog) KeyspaceRanges(name string) []*RangeDescriptor {
	var out []*RangeDescriptor
	for _, r := range c.Ranges {
		if r.Keyspace == name {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *RangeDescriptor) int {
		switch {
		case a.Span.Lo < b.Span.Lo:
			return -1
		case a.Span.Lo > b.Span.Lo:
			return 1
		}
		return 0
	})
	return out
}

// CatalogOp is a change to the catalog.
type CatalogOp struct {
	// Create adds a keyspace with one range per replica set in Replicas,
	// spans split evenly. The proposer (meta's leader, the placement
	// driver) chose the replicas and proved the geometry on them.
	Create   *KeyspaceDescriptor   `json:"create,omitempty"`
	Replicas [][]ReplicaDescriptor `json:"replicas,omitempty"`
	// Drop removes a keyspace and its ranges.
	Drop string `json:"drop,omitempty"`
	// AddNode registers a node by UUID: a UUID the catalog does not know
	// gets the next node ID, whatever its name; a known one may change
	// its address, gossip address, zone and weight if its SecretHash is
	// the one the catalog keeps. With UpdateOnly, an unknown UUID is
	// refused: a member announcing itself is never registered anew.
	AddNode    *NodeDescriptor `json:"add_node,omitempty"`
	UpdateOnly bool            `json:"update_only,omitempty"`
	// Move replaces one replica of a range by another on a node the range
	// does not have (the placement driver's repair of a dead node's
	// replicas). The proposer proved the geometry on the new replica set.
	Move *MoveReplica `json:"move,omitempty"`
	// RemoveNode marks node RemoveNode removed (NodeDescriptor.Removed).
	RemoveNode uint64 `json:"remove_node,omitempty"`
	// Grow raises a keyspace's N toward its GrowTo (the placement driver,
	// as nodes join). The proposer proved the geometry on every new
	// replica set.
	Grow *GrowKeyspace `json:"grow,omitempty"`
	// Left drops a leaving replica (RangeDescriptor.Leaving) that its
	// range has let go; its node then deletes it.
	Left *RangeReplica `json:"left,omitempty"`
	// Filled clears the Filling mark of a replica of an eventual range
	// once it holds what the range's other replicas held
	// (ReplicaDescriptor.Filling); one not filling changes nothing.
	Filled *RangeReplica `json:"filled,omitempty"`
	// Decommission marks node Decommission decommissioning
	// (NodeDescriptor.Decommissioning).
	Decommission uint64 `json:"decommission,omitempty"`
	// ReserveRange reserves a new range ID (Apply returns it) for a split
	// of range ReserveRange that its leader is about to propose in the
	// range's own log; an ID reserved and never used is skipped.
	ReserveRange uint64 `json:"reserve_range,omitempty"`
	// Split records a split that range Split.Range has applied in its
	// own log: its span ends at Mid, and range NewRange, with the same
	// replicas, holds [Mid, its old end). Proposed by the range's leader
	// until applied; a retry of an applied split changes nothing.
	Split *SplitRange `json:"split,omitempty"`
	// Merge records a merge that range Merge.Left has applied in its own
	// log (merge.go). Proposed by the range's leader until applied; a
	// retry of an applied merge changes nothing.
	Merge *MergeRanges `json:"merge,omitempty"`
	// SplitEventual reserves a range ID (Apply returns it) and splits an
	// eventual range in one step (split_eventual.go).
	SplitEventual *SplitEventual `json:"split_eventual,omitempty"`
	// Auth changes users, roles or auth settings (auth.go).
	Auth *AuthOp `json:"auth,omitempty"`
}

// SplitRange splits range Range at hash Mid into Range [Lo, Mid) and
// NewRange [Mid, Hi).
type SplitRange struct {
	Range    uint64 `json:"range"`
	Mid      uint64 `json:"mid"`
	NewRange uint64 `json:"new_range"`
}

// RangeReplica names node Node's replica of range Range.
type RangeReplica struct {
	Range uint64 `json:"range"`
	Node  uint64 `json:"node"`
}

// GrowKeyspace raises keyspace Keyspace's N to Replicas, adding to each of
// its ranges the replicas Add lists for it, all ranges at once.
type GrowKeyspace struct {
	Keyspace string          `json:"keyspace"`
	Replicas int             `json:"replicas"`
	Add      []RangeReplicas `json:"add"`
}

// RangeReplicas are replicas of range Range.
type RangeReplicas struct {
	Range    uint64              `json:"range"`
	Replicas []ReplicaDescriptor `json:"replicas"`
}

// MoveReplica moves range Range's replica on node From to node To.
type MoveReplica struct {
	Range uint64            `json:"range"`
	From  uint64            `json:"from"`
	To    ReplicaDescriptor `json:"to"`
}

// Catalog keys inside meta's data.
const (
	catalogKeyspacePrefix = "keyspace/"
	catalogRangePrefix    = "range/"
	catalogNodePrefix     = "node/"
	catalogNextID         = "next-id"
	catalogNextNodeID     = "next-node-id"
)

func nodeCatalogKey(id uint64) []byte { return fmt.Appendf(nil, "%s%016x", catalogNodePrefix, id) }

func rangeCatalogKey(id uint64) []byte { return fmt.Appendf(nil, "%s%016x", catalogRangePrefix, id) }

// catalogWrite is one key of meta's data set (value) or deleted (nil).
type catalogWrite struct {
	Key   []byte
	Value []byte
}

// Apply checks op against the catalog and changes it, returning the
// writes that record the change in meta's data. A refused op changes
// nothing: every replica refuses it the same way.
// For AddNode, id is the node's ID.
func (c *Catalog) Apply(op *CatalogOp) (writes []catalogWrite, id uint64, err error) {
	switch {
	case op.Create != nil:
		writes, err = c.create(op.Create, op.Replicas)
		return writes, 0, err
	case op.Drop != "":
		writes, err = c.drop(op.Drop)
		return writes, 0, err
	case op.AddNode != nil:
		return c.addNode(*op.AddNode, op.UpdateOnly)
	case op.Move != nil:
		writes, err = c.move(*op.Move)
		return writes, 0, err
	case op.RemoveNode != 0:
		writes, err = c.removeNode(op.RemoveNode)
		return writes, 0, err
	case op.Grow != nil:
		writes, err = c.grow(*op.Grow)
		return writes, 0, err
	case op.Left != nil:
		writes, err = c.left(*op.Left)
		return writes, 0, err
	case op.Filled != nil:
		writes, err = c.filled(*op.Filled)
		return writes, 0, err
	case op.Decommission != 0:
		writes, err = c.decommission(op.Decommission)
		return writes, 0, err
	case op.ReserveRange != 0:
		return c.reserveRange(op.ReserveRange)
	case op.Split != nil:
		writes, err = c.split(*op.Split)
		return writes, 0, err
	case op.Merge != nil:
		writes, err = c.merge(*op.Merge)
		return writes, 0, err
	case op.SplitEventual != nil:
		return c.splitEventual(*op.SplitEventual)
	case op.Auth != nil:
		writes, err = c.applyAuth(op.Auth)
		return writes, 0, err
	}
	return nil, 0, fmt.Errorf("%w: empty catalog operation", ErrInvalidArgument)
}

// ErrIdentity marks a change to a known node that does not carry the
// node's secret. Every replica of meta refuses it the same way, and
// nothing changes.
var ErrIdentity = errors.New("node identity not proven")

func (c *Catalog) addNode(n NodeDescriptor, updateOnly bool) ([]catalogWrite, uint64, error) {
	switch {
	case n.Name == "":
		return nil, 0, fmt.Errorf("%w: a node needs a name", ErrInvalidArgument)
	case !ValidUUID(n.UUID):
		return nil, 0, fmt.Errorf("%w: node %s: %q is not a node UUID (version 4, canonical form)", ErrInvalidArgument, n.Name, n.UUID)
	case !validSecretHash(n.SecretHash):
		return nil, 0, fmt.Errorf("%w: node %s: the hash of its secret is not a hex SHA-256", ErrInvalidArgument, n.Name)
	}
	old, known := c.nodeByUUID(n.UUID)
	if !known {
		if updateOnly {
			return nil, 0, fmt.Errorf("%w: node %s (uuid %s) is not in the catalog: a node that lost its data dir "+
				"must join again on an empty one, as a new node", ErrIdentity, n.Name, n.UUID)
		}
		n.ID, n.Removed, n.Decommissioning = c.NextNodeID, false, false // only RemoveNode and Decommission set them
		c.NextNodeID++
		c.Nodes[n.ID] = n
		return []catalogWrite{
			{[]byte(catalogNextNodeID), MustJSON(c.NextNodeID)},
			{nodeCatalogKey(n.ID), MustJSON(n)},
		}, n.ID, nil
	}
	if old.Removed {
		return nil, 0, fmt.Errorf("%w: node %d (%s, uuid %s) was removed from the cluster: start it on an empty data dir "+
			"to join as a new node", ErrRemoved, old.ID, old.Name, old.UUID)
	}
	if subtle.ConstantTimeCompare([]byte(old.SecretHash), []byte(n.SecretHash)) != 1 {
		return nil, 0, fmt.Errorf("%w: node %d (%s, uuid %s) can be changed only by itself: the request does not carry its secret",
			ErrIdentity, old.ID, old.Name, old.UUID)
	}
	if old.Name != n.Name {
		// The node itself refuses to start under another name
		// (identity.Open): this is not a kvd.
		return nil, 0, fmt.Errorf("%w: node %d (uuid %s) is named %q, not %q", ErrInvalidArgument, old.ID, old.UUID, old.Name, n.Name)
	}
	n.ID, n.Removed, n.Decommissioning = old.ID, old.Removed, old.Decommissioning
	if n == old {
		return nil, n.ID, nil // a retried join, or an address that did not change
	}
	c.Nodes[n.ID] = n
	return []catalogWrite{{nodeCatalogKey(n.ID), MustJSON(n)}}, n.ID, nil
}

// nodeByUUID returns the node of that UUID. The catalog never gives one
// UUID two IDs, so at most one matches.
func (c *Catalog) nodeByUUID(uuid string) (NodeDescriptor, bool) {
	for _, n := range c.Nodes {
		if n.UUID == uuid {
			return n, true
		}
	}
	return NodeDescriptor{}, false
}

// ErrExists and ErrNoKeyspace mark catalog conflicts; the API maps them
// to AlreadyExists and NotFound.
var (
	ErrExists     = fmt.Errorf("already exists")
	ErrNoKeyspace = fmt.Errorf("no such keyspace")
)

func (c *Catalog) create(d *KeyspaceDescriptor, replicas [][]ReplicaDescriptor) ([]catalogWrite, error) {
	if _, ok := c.Keyspaces[d.Name]; ok || d.Name == MetaKeyspace {
		return nil, fmt.Errorf("%w: keyspace %s", ErrExists, d.Name)
	}
	if len(replicas) != d.Ranges {
		return nil, fmt.Errorf("%w: keyspace %s has %d ranges but %d replica sets", ErrInvalidArgument, d.Name, d.Ranges, len(replicas))
	}
	ks := *d
	ks.ID = c.nextID
	c.nextID++
	var writes []catalogWrite
	for i, span := range InitialSpans(d.Ranges) {
		r := &RangeDescriptor{ID: c.nextID, Keyspace: d.Name, Span: span, Replicas: slices.Clone(replicas[i]), Geometry: d.Quorum, Mode: d.Mode}
		c.nextID++
		c.Ranges[r.ID] = r
		writes = append(writes, catalogWrite{rangeCatalogKey(r.ID), MustJSON(r)})
	}
	c.Keyspaces[ks.Name] = ks
	writes = append(writes,
		catalogWrite{[]byte(catalogKeyspacePrefix + ks.Name), MustJSON(ks)},
		catalogWrite{[]byte(catalogNextID), MustJSON(c.nextID)})
	return writes, nil
}

func (c *Catalog) drop(name string) ([]catalogWrite, error) {
	if _, ok := c.Keyspaces[name]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoKeyspace, name)
	}
	delete(c.Keyspaces, name)
	writes := []catalogWrite{{Key: []byte(catalogKeyspacePrefix + name)}}
	for id, r := range c.Ranges {
		if r.Keyspace == name {
			delete(c.Ranges, id)
			writes = append(writes, catalogWrite{Key: rangeCatalogKey(id)})
		}
	}
	return writes, nil
}

// move replaces a replica of a range: the one on From leaves (Leaving)
// and one on To joins, or, if To's replica is leaving, stays. The descriptor is copied, not changed in place:
// replicas hold the one they started with.
func (c *Catalog) move(m MoveReplica) ([]catalogWrite, error) {
	r, ok := c.Ranges[m.Range]
	switch {
	case !ok || m.Range == MetaRangeID:
		return nil, fmt.Errorf("%w: range %d cannot have its replicas moved (unknown, or meta)", ErrInvalidArgument, m.Range)
	case !r.HasReplica(m.From):
		return nil, fmt.Errorf("%w: range %d has no replica on node %d", ErrInvalidArgument, m.Range, m.From)
	case r.HasReplica(m.To.NodeID):
		return nil, fmt.Errorf("%w: range %d already has a replica on node %d", ErrInvalidArgument, m.Range, m.To.NodeID)
	}
	if nd, ok := c.Nodes[m.To.NodeID]; !ok || nd.Removed || nd.Decommissioning {
		return nil, fmt.Errorf("%w: node %d cannot take a replica (unknown, removed or decommissioning)", ErrInvalidArgument, m.To.NodeID)
	}
	// The new replica goes last, where Raft's configuration change puts
	// the voter it adds, so that both lay out the geometry alike. A
	// replica still leaving the range comes back as it was (its data and
	// its place in the range's log are still there): the move off its node
	// is undone.
	next := r.Clone()
	i := slices.IndexFunc(next.Replicas, func(rep ReplicaDescriptor) bool { return rep.NodeID == m.From })
	next.Leaving = append(next.Leaving, next.Replicas[i])
	next.Replicas = slices.Delete(next.Replicas, i, i+1)
	to := m.To
	to.Added = true
	to.Filling = r.Mode == ModeEventual
	if j := slices.IndexFunc(next.Leaving, func(rep ReplicaDescriptor) bool { return rep.NodeID == m.To.NodeID }); j >= 0 {
		to = next.Leaving[j]
		next.Leaving = slices.Delete(next.Leaving, j, j+1)
	}
	next.Replicas = append(next.Replicas, to)
	c.Ranges[next.ID] = next
	return []catalogWrite{{rangeCatalogKey(next.ID), MustJSON(next)}}, nil
}

// left drops node's leaving replica of a range; one already gone changes
// nothing, so a retried Left is harmless.
func (c *Catalog) left(l RangeReplica) ([]catalogWrite, error) {
	r, ok := c.Ranges[l.Range]
	if !ok || !r.IsLeaving(l.Node) {
		return nil, nil
	}
	next := r.Clone()
	next.Leaving = slices.DeleteFunc(next.Leaving, func(rep ReplicaDescriptor) bool { return rep.NodeID == l.Node })
	c.Ranges[next.ID] = next
	return []catalogWrite{{rangeCatalogKey(next.ID), MustJSON(next)}}, nil
}

// filled clears the Filling mark of node's replica of a range; one not
// filling (or gone) changes nothing, so a retried Filled is harmless.
func (c *Catalog) filled(f RangeReplica) ([]catalogWrite, error) {
	r, ok := c.Ranges[f.Range]
	if !ok || !r.IsFilling(f.Node) {
		return nil, nil
	}
	next := r.Clone()
	for i := range next.Replicas {
		if next.Replicas[i].NodeID == f.Node {
			next.Replicas[i].Filling = false
		}
	}
	c.Ranges[next.ID] = next
	return []catalogWrite{{rangeCatalogKey(next.ID), MustJSON(next)}}, nil
}

// decommission marks node id decommissioning; doing it again changes
// nothing.
func (c *Catalog) decommission(id uint64) ([]catalogWrite, error) {
	n, ok := c.Nodes[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: node %d is not in the catalog", ErrInvalidArgument, id)
	case n.Removed:
		return nil, fmt.Errorf("%w: node %d (%s) was removed already", ErrRemoved, id, n.Name)
	case n.Decommissioning:
		return nil, nil
	}
	n.Decommissioning = true
	c.Nodes[id] = n
	return []catalogWrite{{nodeCatalogKey(id), MustJSON(n)}}, nil
}

// grow adds replicas to every range of a keyspace and raises its N. The
// descriptors are copied, not changed in place.
func (c *Catalog) grow(g GrowKeyspace) ([]catalogWrite, error) {
	ks, ok := c.Keyspaces[g.Keyspace]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s", ErrNoKeyspace, g.Keyspace)
	case g.Replicas <= ks.Replicas || g.Replicas > ks.GrowTo:
		return nil, fmt.Errorf("%w: keyspace %s has %d replicas and grows to %d, not %d", ErrInvalidArgument, ks.Name, ks.Replicas, ks.GrowTo, g.Replicas)
	}
	ranges := c.KeyspaceRanges(ks.Name)
	if len(g.Add) != len(ranges) {
		return nil, fmt.Errorf("%w: keyspace %s has %d ranges, the growth lists %d", ErrInvalidArgument, ks.Name, len(ranges), len(g.Add))
	}
	next := make([]*RangeDescriptor, 0, len(ranges))
	for _, add := range g.Add {
		r, ok := c.Ranges[add.Range]
		if !ok || r.Keyspace != ks.Name || slices.ContainsFunc(next, func(n *RangeDescriptor) bool { return n.ID == add.Range }) {
			return nil, fmt.Errorf("%w: range %d is not a range of keyspace %s, or is listed twice", ErrInvalidArgument, add.Range, ks.Name)
		}
		if len(r.Replicas)+len(add.Replicas) != g.Replicas {
			return nil, fmt.Errorf("%w: range %d has %d replicas; %d more do not make %d", ErrInvalidArgument, r.ID, len(r.Replicas), len(add.Replicas), g.Replicas)
		}
		n := r.Clone()
		for _, rep := range add.Replicas {
			nd, known := c.Nodes[rep.NodeID]
			if !known || nd.Removed || nd.Decommissioning || n.Holds(rep.NodeID) {
				return nil, fmt.Errorf("%w: node %d cannot take a replica of range %d (unknown, removed, decommissioning, or a replica already)", ErrInvalidArgument, rep.NodeID, r.ID)
			}
			rep.Added = true
			rep.Filling = r.Mode == ModeEventual
			n.Replicas = append(n.Replicas, rep)
		}
		next = append(next, n)
	}
	var writes []catalogWrite
	for _, n := range next {
		c.Ranges[n.ID] = n
		writes = append(writes, catalogWrite{rangeCatalogKey(n.ID), MustJSON(n)})
	}
	ks.Replicas = g.Replicas
	c.Keyspaces[ks.Name] = ks
	return append(writes, catalogWrite{[]byte(catalogKeyspacePrefix + ks.Name), MustJSON(ks)}), nil
}

// removeNode marks node id removed; removing it again changes nothing.
func (c *Catalog) removeNode(id uint64) ([]catalogWrite, error) {
	n, ok := c.Nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w: node %d is not in the catalog", ErrInvalidArgument, id)
	}
	if n.Removed {
		return nil, nil
	}
	n.Removed = true
	c.Nodes[id] = n
	return []catalogWrite{{nodeCatalogKey(id), MustJSON(n)}}, nil
}

// Load rebuilds the catalog from meta's data, as written by apply.
func (c *Catalog) Load(key, value []byte) error {
	k := string(key)
	var err error
	switch {
	case strings.HasPrefix(k, catalogKeyspacePrefix):
		var ks KeyspaceDescriptor
		if err = json.Unmarshal(value, &ks); err == nil {
			c.Keyspaces[ks.Name] = ks
		}
	case strings.HasPrefix(k, catalogRangePrefix):
		var r RangeDescriptor
		if err = json.Unmarshal(value, &r); err == nil {
			c.Ranges[r.ID] = &r
		}
	case strings.HasPrefix(k, catalogNodePrefix):
		var n NodeDescriptor
		if err = json.Unmarshal(value, &n); err == nil {
			c.Nodes[n.ID] = n
		}
	case strings.HasPrefix(k, catalogUserPrefix):
		var u User
		if err = json.Unmarshal(value, &u); err == nil {
			c.Users[u.Name] = u
		}
	case strings.HasPrefix(k, catalogRolePrefix):
		var r Role
		if err = json.Unmarshal(value, &r); err == nil {
			c.Roles[r.Name] = r
		}
	case k == catalogAuth:
		err = json.Unmarshal(value, &c.Auth)
	case k == catalogNextID:
		err = json.Unmarshal(value, &c.nextID)
	case k == catalogNextNodeID:
		err = json.Unmarshal(value, &c.NextNodeID)
	case k == catalogNextGeneration:
		err = json.Unmarshal(value, &c.nextGeneration)
	default:
		err = fmt.Errorf("unknown catalog key %q", k)
	}
	if err != nil {
		return fmt.Errorf("%w: catalog key %q: %v", codec.ErrCorrupt, k, err)
	}
	return nil
}

func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("kv: encoding %T: %v", v, err)) // plain structs always encode
	}
	return b
}

// ValidUUID reports whether s is a version 4 UUID in canonical form
// (lower-case hex, dashes at 8, 13, 18 and 23), the only form nodes
// write: one UUID has one spelling, so the catalog can compare them as
// strings.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b')
}

// validSecretHash reports whether s is a hex SHA-256 as hashSecret
// writes it.
func validSecretHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
