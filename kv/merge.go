package kv

import (
	"context"

	peerv1 "github.com/quorumkv/quorumkv/api/quorumkv/peer/v1"
)

// The merge driver's catalog step. A merge itself runs in the store
// (kv/store/merge.go: subsume, wait, merge, all on the store's goroutine,
// since both ranges' leaderships are on one node); what needs meta, which
// may lead elsewhere, is recording it: on every split pass (splitInterval)
// the leader of a range that merged its neighbour proposes
// catalog.CatalogOp.Merge to meta's leader, here or through the Peer
// service's Split call (merge_right set), until the catalog has it.

// mergePass records every merge the catalog does not have yet, and logs
// what it could not do (the next pass retries).
func (n *Node) mergePass(ctx context.Context) {
	tasks, err := n.store.MergeWork(ctx)
	if err != nil {
		return
	}
	for _, t := range tasks {
		_, err := n.metaSplit(ctx, &peerv1.SplitRequest{RangeId: t.Left, MergeRight: t.Right, Mid: t.Hi})
		if err != nil {
			n.store.Logger.Warn("recording a range merge failed; the next pass retries", "range", t.Left, "right", t.Right, "err", err)
			continue
		}
		n.store.Logger.Info("recorded a range merge", "range", t.Left, "right", t.Right)
	}
}
