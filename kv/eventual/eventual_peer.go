package eventual

import (
	"context"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/records"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/wrn"
)

// RecordTransport carries a node's requests to other nodes' peer
// service, apart from consensus messages: a coordinator's record requests
// to other replicas (the node's own replica is called directly, never
// through it) and the catalog barrier's. Tests replace it to run several
// nodes in one process.
type RecordTransport interface {
	// metaIndex asks node to, meta's leader, for meta's index after a
	// ReadIndex (catalogBarrier).
	MetaIndex(ctx context.Context, to uint64) (uint64, error)
	WriteRecord(ctx context.Context, to, rangeID uint64, key []byte, rec wrn.Record, lazy bool) (existed bool, err error)
	ReadRecord(ctx context.Context, to, rangeID uint64, key []byte) (wrn.Record, error)
	ScanRecords(ctx context.Context, to, rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error)
	// merkleLeaves and leafRecords serve anti-entropy (antientropy.go).
	MerkleLeaves(ctx context.Context, to, rangeID uint64, depth int) ([]uint64, error)
	LeafRecords(ctx context.Context, to, rangeID uint64, depth int, leaves []uint32, limit int) ([]records.KeyRecord, bool, error)
	// casStep hands a compare-and-swap Prepare or Accept to node to's
	// acceptor of key and returns its answer (eventual_cas.go).
	CASStep(ctx context.Context, to, rangeID uint64, key []byte, m paxos.BasicMessage) (paxos.BasicMessage, error)
	// LetGo asks node to whether range rangeID let node's leaving
	// replica go (Coordinator.LetGo).
	LetGo(ctx context.Context, to, rangeID, node uint64) (bool, error)
	// Filled and Acceptors serve the filling of a new replica (fill.go).
	Filled(ctx context.Context, to, rangeID uint64) (bool, error)
	Acceptors(ctx context.Context, to, rangeID uint64, after []byte, limit int) ([]records.KeyAcceptor, error)
}

// Peer service: the replica side.

// localEventualRange returns range id if it is an eventual range with a
// replica on this node, leaving or not.
func (c *Coordinator) localEventualRange(id uint64) (*catalog.RangeDescriptor, error) {
	cat := c.store.Catalog()
	for name, ks := range cat.Keyspaces {
		if ks.Mode != catalog.ModeEventual {
			continue
		}
		for _, r := range cat.Ranges[name] {
			if r.ID != id {
				continue
			}
			if !r.Holds(c.store.NodeID()) { // a leaving replica serves until it has handed off
				return nil, fmt.Errorf("%w: eventual range %d", store.ErrNoReplicaHere, id)
			}
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: eventual range %d", errNotInCatalog, id)
}

// errNotInCatalog: this node's catalog has no such range. It may be of a
// keyspace created a moment ago through another node (awaitEventualRange).
var errNotInCatalog = fmt.Errorf("%w: not in this node's catalog", store.ErrNoReplicaHere)

// AwaitEventualRange runs before a replica serves another node's call for
// eventual range id. A keyspace created through one node reaches the
// others' catalogs a moment later, and its coordinators may call at once:
// if this node's catalog does not have the range, it first catches up
// with every catalog change committed so far (catalogBarrier). Any
// refusal is left to the call itself, which looks the range up again.
func (c *Coordinator) AwaitEventualRange(ctx context.Context, id uint64) error {
	if _, err := c.localEventualRange(id); !errors.Is(err, errNotInCatalog) {
		return nil
	}
	return c.catchUpCatalog(ctx, fmt.Sprintf("eventual range %d", id))
}

// WriteLocalRecord stores rec on this node's replica of range rangeID,
// or of the range a split gave the key to (split.go; see
// records.Store.Write), and moves the clock past its version so that
// later writes coordinated here order after it. It refuses a version more
// than the maximum clock offset ahead of this node's clock
// (eventual_clock.go, rule 1). lazy stores it without waiting for the
// WAL's sync (records.Store.WriteLazily).
func (c *Coordinator) WriteLocalRecord(rangeID uint64, key []byte, rec wrn.Record, lazy bool) (applied, existed bool, err error) {
	if err := c.limits.CheckKey(key); err != nil {
		return false, false, err
	}
	if err := c.limits.CheckValue(rec.Value); err != nil {
		return false, false, err
	}
	if err := c.checkVersionClock(rec.Version, "record"); err != nil {
		return false, false, err
	}
	c.split.barrier.RLock()
	defer c.split.barrier.RUnlock()
	r, err := c.resolve(rangeID, key)
	if err != nil {
		return false, false, err
	}
	c.observeVersion(rec.Version)
	if lazy {
		return c.Records.WriteLazily(r.ID, key, rec)
	}
	return c.Records.Write(r.ID, key, rec)
}

// ReadLocalRecord returns key's record on this node's replica of range
// rangeID, or of the range a split gave the key to (split.go).
func (c *Coordinator) ReadLocalRecord(rangeID uint64, key []byte) (wrn.Record, error) {
	c.split.barrier.RLock()
	defer c.split.barrier.RUnlock()
	r, err := c.resolve(rangeID, key)
	if err != nil {
		return wrn.Record{}, err
	}
	return c.Records.Read(r.ID, key)
}

// ScanLocalRecords returns a page of this node's replica of range
// rangeID, which must be settled here (split.go).
func (c *Coordinator) ScanLocalRecords(rangeID uint64, prefix, startAfter []byte, limit int) ([]records.KeyRecord, error) {
	r, err := c.localEventualRange(rangeID)
	if err != nil {
		return nil, err
	}
	if err := c.settled(r); err != nil {
		return nil, err
	}
	return c.Records.Scan(rangeID, prefix, startAfter, limit)
}
