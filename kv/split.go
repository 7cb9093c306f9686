package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/store"
	"github.com/quorumkv/quorumkv/kv/transport"
)

// The split driver: on every node, once a second (splitInterval), it
// takes the split steps of the raft and paxos ranges the node leads
// (store.SplitTasks), and those of the eventual ranges it decides for
// (eventualSplitPass). A step that needs meta goes to meta's leader, here
// or through the Peer service's Split call, since the range's leader and
// meta's need not be one node. See kv/store/split.go for the split itself.

// splitInterval is the period of the split driver's passes: a range over
// its size splits within about a second, and recording a split in the
// catalog is retried as often.
const splitInterval = time.Second

// StartSplits starts the split driver on this node, and lets its store
// merge ranges, since the driver's passes record the merges too
// (mergePass). Close stops it.
func (n *Node) StartSplits() {
	n.store.EnableMerges()
	n.stopSplits = startLoop(splitInterval, n.splitPass)
}

// splitPass takes every split step there is now, one range after the
// other, and logs what it could not do (the next pass retries).
func (n *Node) splitPass(ctx context.Context) {
	tasks, err := n.store.SplitWork(ctx)
	if err != nil {
		return
	}
	log := n.store.Logger
	for _, t := range tasks {
		if err := n.splitStep(ctx, t); err != nil {
			log.Warn("a range split step failed; the next pass retries", "range", t.Range, "catalog", t.Catalog, "bytes", t.Bytes, "err", err)
		}
	}
	n.eventualSplitPass(ctx)
	n.mergePass(ctx)
}

// eventualSplitPass moves the records of this node's eventual ranges that
// split (their sweeps), then asks meta for the splits of the eventual
// ranges this node decides for that passed their size
// (kv/eventual/split.go).
func (n *Node) eventualSplitPass(ctx context.Context) {
	n.ev.SweepStep()
	for _, t := range n.ev.SplitTasks(int64(n.store.Config.RangeMaxBytes)) {
		start := time.Now()
		id, err := n.metaSplit(ctx, &peerv1.SplitRequest{RangeId: t.Op.Range, Reserve: true, Mid: t.Op.Mid})
		if err != nil {
			n.store.Logger.Warn("an eventual range's split was refused; the next pass retries", "range", t.Op.Range, "bytes", t.Bytes, "err", err)
			continue
		}
		n.store.Logger.Info("split an eventual range", "range", t.Op.Range, "new_range", id, "bytes", t.Bytes,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// splitStep takes one step: record a split in the catalog, or split a
// range over its size and then record it.
func (n *Node) splitStep(ctx context.Context, t store.SplitTask) error {
	if t.Catalog {
		_, err := n.metaSplit(ctx, &peerv1.SplitRequest{RangeId: t.Range, Mid: t.Mid, NewRangeId: t.NewRange})
		return err
	}
	start := time.Now()
	id, err := n.metaSplit(ctx, &peerv1.SplitRequest{RangeId: t.Range, Reserve: true})
	if err != nil {
		return fmt.Errorf("reserving a range ID: %w", err)
	}
	res, err := n.store.ProposeSplit(ctx, t.Range, id)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("splitting in the range's log: %w", err)
	}
	tasks, err := n.store.SplitWork(ctx)
	if err != nil {
		return err
	}
	for _, next := range tasks {
		if next.Range == t.Range && next.Catalog {
			if _, err := n.metaSplit(ctx, &peerv1.SplitRequest{RangeId: t.Range, Mid: next.Mid, NewRangeId: next.NewRange}); err != nil {
				return fmt.Errorf("recording the split in the catalog: %w", err)
			}
			n.store.Logger.Info("split a range", "range", t.Range, "new_range", next.NewRange, "bytes", t.Bytes,
				"took", time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// metaSplit runs a split's catalog change on meta's leader: here if this
// node leads meta, else through the Peer service's Split call.
func (n *Node) metaSplit(ctx context.Context, req *peerv1.SplitRequest) (uint64, error) {
	id, err := n.localMetaSplit(ctx, req)
	var nl *store.NotLeaderError
	if !errors.As(err, &nl) {
		return id, err
	}
	if nl.Leader == 0 || nl.Leader == n.store.NodeID() {
		return 0, fmt.Errorf("%w: meta has no leader now", store.ErrUnavailable)
	}
	addr, ok := n.store.NodeAddr(nl.Leader)
	if !ok {
		return 0, fmt.Errorf("%w: meta's leader, node %d, has no known address", store.ErrUnavailable, nl.Leader)
	}
	resp, err := n.peers.PeerClient(addr).Split(ctx, connect.NewRequest(req))
	if err != nil {
		return 0, err
	}
	return resp.Msg.NewRangeId, nil
}

// localMetaSplit proposes a split's catalog change to meta on this node,
// which must lead it (a NotLeaderError otherwise).
func (n *Node) localMetaSplit(ctx context.Context, req *peerv1.SplitRequest) (uint64, error) {
	op := catalog.CatalogOp{Split: &catalog.SplitRange{Range: req.RangeId, Mid: req.Mid, NewRange: req.NewRangeId}}
	switch {
	case req.Reserve && req.Mid != 0:
		// An eventual range's split: reserved and recorded at once
		// (kv/eventual/split.go). A raft range's reservation has no Mid.
		op = catalog.CatalogOp{SplitEventual: &catalog.SplitEventual{Range: req.RangeId, Mid: req.Mid}}
	case req.Reserve:
		op = catalog.CatalogOp{ReserveRange: req.RangeId}
	case req.MergeRight != 0:
		// Mid is where the right range ended (kv/merge.go).
		op = catalog.CatalogOp{Merge: &catalog.MergeRanges{Left: req.RangeId, Right: req.MergeRight, Hi: req.Mid}}
	}
	res, err := n.store.Propose(ctx, catalog.MetaRangeID, &command.Command{Op: command.OpCatalog, Value: catalog.MustJSON(op)})
	if err == nil {
		err = res.Err
	}
	return res.ID, err
}

// Split is the Peer service's Split: meta's leader runs a split's catalog
// change for the range's leader.
func (p *peerServer) Split(ctx context.Context, req *connect.Request[peerv1.SplitRequest]) (*connect.Response[peerv1.SplitResponse], error) {
	id, err := p.node.localMetaSplit(ctx, req.Msg)
	if err != nil {
		return nil, transport.ToConnect(err)
	}
	return connect.NewResponse(&peerv1.SplitResponse{NewRangeId: id}), nil
}

// Routing after splits. The catalog names a key's range; a range that
// split applied it before the catalog has it, and refuses the keys it gave
// away (store.ErrKeyMoved: nothing was done). The node then routes the
// request again, after a short wait, until the catalog names the new
// range or the request's context ends.

// movedBackoff bounds the waits between two routings of a request whose
// key moved: the catalog takes a meta round trip to follow a split.
const (
	movedBackoffMin = time.Millisecond
	movedBackoffMax = 50 * time.Millisecond
)

// onRange runs f on key's range, routing again while f finds that the key
// moved.
func (n *Node) onRange(ctx context.Context, keyspace string, key []byte, f func(r *catalog.RangeDescriptor) error) error {
	for backoff := movedBackoffMin; ; backoff = min(2*backoff, movedBackoffMax) {
		r, err := n.Route(keyspace, key)
		if err != nil {
			return err
		}
		if err = f(r); !errors.Is(err, store.ErrKeyMoved) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

// inheritedVersion rewrites a version of one of r's ancestors (the range
// r was split from, and so on) as a version of r: a value a split moved
// keeps its log index, which r's own log never reuses (it starts after
// the split), so the version names the same write.
func (n *Node) inheritedVersion(keyspace string, r *catalog.RangeDescriptor, expect catalog.Expect) catalog.Expect {
	if expect.Version == "" {
		return expect
	}
	var rid, index uint64
	if _, err := fmt.Sscanf(expect.Version, "%d.%d", &rid, &index); err != nil || rid == r.ID {
		return expect
	}
	byID := map[uint64]*catalog.RangeDescriptor{}
	for _, d := range n.store.Catalog().Ranges[keyspace] {
		byID[d.ID] = d
	}
	if catalog.Ancestor(byID, r, rid) {
		expect.Version = command.FormatVersion(r.ID, index)
	}
	return expect
}
