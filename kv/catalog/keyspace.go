package catalog

import (
	"cmp"
	"fmt"

	"github.com/quorumkv/quorumkv/quorum"
)

// Mode is how a keyspace keeps its data.
type Mode string

const (
	// ModeEventual: Dynamo-style, write to W of N replicas, read R.
	ModeEventual Mode = "eventual"
	// ModeRaft: linearizable through one Raft group per range.
	ModeRaft Mode = "raft"
	// ModePaxos: linearizable through one Multi-Paxos group per range.
	ModePaxos Mode = "paxos"
)

// Bounds on keyspace shapes. Replica sets must fit the quorum proof, and
// every range costs a consensus group on each of its replicas.
const (
	MaxReplicas = quorum.MaxProofVoters
	MaxRanges   = 4096
	// DefaultRanges is SPEC.md's default for --ranges.
	DefaultRanges = 8
)

// KeyspaceDescriptor is a keyspace as the catalog keeps it.
type KeyspaceDescriptor struct {
	// ID is assigned by the catalog; it prefixes the keyspace's ranges.
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	Mode Mode   `json:"mode"`
	// Replicas is N, the replicas of each range.
	Replicas int `json:"replicas"`
	// Quorum is the geometry, a quorum.ParseSpec string.
	Quorum string `json:"quorum"`
	// W and R are an eventual keyspace's default write and read quorums
	// (0 for the other modes, whose geometry decides).
	W int `json:"w,omitempty"`
	R int `json:"r,omitempty"`
	// Ranges is how many ranges the hash space is split into at creation.
	Ranges int `json:"ranges"`
	// SloppyQuorum lets hints count toward W (eventual only). It breaks
	// the W+R>N promise: a read may miss a write acknowledged by hints.
	SloppyQuorum bool `json:"sloppy_quorum,omitempty"`
	// GrowTo, when above Replicas, is the N the keyspace grows to once
	// that many nodes are alive (CatalogOp.Grow): the default keyspace,
	// founded with one replica on the first node, grows to three as nodes
	// join. Only the store's bootstrap sets it.
	GrowTo int `json:"grow_to,omitempty"`
	// NoReadLease makes a raft or paxos keyspace's leaders confirm every
	// linearizable read with a round of heartbeats to a phase-2 quorum,
	// instead of serving it from their lease (raft.ReadOnlyLeaseBased,
	// paxos.Config.ReadLease), which assumes the nodes' clocks run at
	// nearly the same rate. Eventual keyspaces refuse it.
	NoReadLease bool `json:"no_read_lease,omitempty"`
}

// ReadLease reports whether the keyspace's ranges serve linearizable
// reads from their leader's lease: raft and paxos keyspaces do unless
// NoReadLease. (A paxos keyspace created before paxos had leases has
// NoReadLease unset too, so its leaders take leases once upgraded.)
func (d *KeyspaceDescriptor) ReadLease() bool {
	return (d.Mode == ModeRaft || d.Mode == ModePaxos) && !d.NoReadLease
}

// ParseMode accepts eventual, raft or paxos.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeEventual, ModeRaft, ModePaxos:
		return m, nil
	}
	return "", fmt.Errorf("%w: mode %q: want eventual, raft or paxos", ErrInvalidArgument, s)
}

// Normalize fills defaults (majority geometry, default ranges, W and R of
// a majority for eventual keyspaces) and checks every rule that does not
// depend on placement. Placement then proves the geometry on the nodes it
// picks (zones and weights are only known there).
func (d *KeyspaceDescriptor) Normalize() error {
	if err := CheckKeyspaceName(d.Name); err != nil {
		return err
	}
	if _, err := ParseMode(string(d.Mode)); err != nil {
		return err
	}
	if d.Replicas < 1 || d.Replicas > MaxReplicas {
		return fmt.Errorf("%w: keyspace %s: replicas %d: want 1 to %d", ErrInvalidArgument, d.Name, d.Replicas, MaxReplicas)
	}
	if d.Ranges == 0 {
		d.Ranges = DefaultRanges
	}
	if d.Ranges < 1 || d.Ranges > MaxRanges {
		return fmt.Errorf("%w: keyspace %s: ranges %d: want 1 to %d", ErrInvalidArgument, d.Name, d.Ranges, MaxRanges)
	}
	if d.Quorum == "" {
		d.Quorum = string(quorum.KindMajority)
	}
	spec, err := quorum.ParseSpec(d.Quorum)
	if err != nil {
		return fmt.Errorf("%w: keyspace %s: %v", ErrInvalidArgument, d.Name, err)
	}
	d.Quorum = spec.String()
	if d.Mode == ModeEventual && d.NoReadLease {
		return fmt.Errorf("%w: keyspace %s: read leases are for raft and paxos keyspaces; an eventual keyspace's reads ask R replicas",
			ErrInvalidArgument, d.Name)
	}
	if d.Mode != ModeEventual {
		if d.W != 0 || d.R != 0 || d.SloppyQuorum {
			return fmt.Errorf("%w: keyspace %s: --w, --r and sloppy quorum are for eventual keyspaces; a %s keyspace's geometry decides its quorums",
				ErrInvalidArgument, d.Name, d.Mode)
		}
		return nil
	}
	return d.normalizeWR(spec)
}

// normalizeWR settles an eventual keyspace's W and R. With a size-based
// geometry (majority, flexible) they are the sizes of write and read sets:
// W defaults to the phase-2 size and R to the phase-1 size, so "majority"
// gives W = R = N/2+1. Other geometries define their write and read sets
// themselves, so W and R must be left out.
func (d *KeyspaceDescriptor) normalizeWR(spec quorum.Spec) error {
	n := d.Replicas
	switch spec.Kind {
	case quorum.KindMajority:
		d.W, d.R = cmp.Or(d.W, n/2+1), cmp.Or(d.R, n/2+1)
	case quorum.KindFlexible:
		d.W, d.R = cmp.Or(d.W, spec.Q2), cmp.Or(d.R, spec.Q1)
	default:
		if d.W != 0 || d.R != 0 {
			return fmt.Errorf("%w: keyspace %s: the %s geometry defines write sets (phase 2) and read sets (phase 1); --w and --r apply to majority and flexible only",
				ErrInvalidArgument, d.Name, d.Quorum)
		}
		return nil
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"w", d.W}, {"r", d.R}} {
		if c.v < 1 || c.v > n {
			return fmt.Errorf("%w: keyspace %s: %s=%d: want 1 to the %d replicas", ErrInvalidArgument, d.Name, c.name, c.v, n)
		}
	}
	// The keyspace's own W and R must make every read meet every write;
	// a single request may still ask for less and take the risk.
	if d.W+d.R <= n {
		return fmt.Errorf("%w: keyspace %s: w=%d + r=%d must exceed the %d replicas, or a read can miss an acknowledged write "+
			"(a write to replicas 1..%d and a read from replicas %d..%d share none); per-request --w/--r may still go lower",
			ErrInvalidArgument, d.Name, d.W, d.R, n, d.W, n-d.R+1, n)
	}
	return nil
}
