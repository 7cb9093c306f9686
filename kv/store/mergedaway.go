package store

import (
	"errors"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/storage"
)

// What becomes of a replica of a merged range on a node that was behind
// when the merge applied (merge.go's steps).
//
// A replica of the right range R, subsumed, keeps its state (data, dedup
// answers, log, Raft state) for the merge entry m of the left range L:
// applyMerge reads it from Pebble, and the ingested merge file deletes it
// and leaves R's split state as a tombstone (mergedAway). A replica of L
// here that was behind may instead install a snapshot of L past m: it
// holds R's keys then, and no entry of its log will ever take R's state,
// which nothing reads again. Before, that state stayed, as found by
// TestSimMerges seed 22 ("n3 holds 6 keys of range 14, which the catalog
// does not have"):
//
//  1. n2 leads L (12) and R (14); every replica applies R's subsume at
//     72 and reports it, n3 too.
//  2. A partition cuts n3 off; n2 proposes m, n1 and n2 apply it, n2
//     records the merge in the catalog (and crashes, as the test has it),
//     and n1, leading L next, compacts L's log past m.
//  3. The partition heals. n3's meta applies the catalog's merge, and
//     reconcile keeps n3's replica of R: it is subsumed, and L here has
//     not taken its span (keepSubsumed), as it must for m to merge it.
//  4. n3's replica of L installs a snapshot past m. Nothing looked at R
//     again, since reconcile runs when the catalog changes and it did
//     not: R ran on, refusing every request, its six keys in Pebble. Had
//     n3 restarted after 3, R would not even have run (reconcile starts
//     what the catalog lists), and its state would have stayed for good.
//
// So R's state goes once a replica here of R's keyspace, not subsumed
// itself, holds the start of R's span (takenHere: a merge or a snapshot
// past it took R), whether R runs or not:
//
//   - R runs: reconcile removes it (keepSubsumed), and runs again after
//     any snapshot install that changed a range's span (ingestInstalls),
//     not only when the catalog changes.
//   - R does not run (the catalog no longer listed it when the node
//     opened, waiting): reconcile removes its state too (dropTaken). Its
//     keyspace, which the catalog has forgotten, is that of the range it
//     was subsumed into (subsumedKeyspace).
//
// Either way its split state stays as the tombstone a merge applied here
// leaves (clearMerged), so a request for R is told its keys moved. A
// crash before the removal leaves R's state, which the next start finds
// waiting and removes.
//
// A limit kept from keepSubsumed: holding the start of R's span is taken
// as proof that L here took R. A replica of L still behind the split that
// founded R holds it too (possible in principle, not seen: R's replica
// here started from the catalog and caught up by a snapshot of its own
// while L's lagged behind); that L would later apply the split, found R
// anew from its own data, and stop at m with a fault (R not subsumed):
// loudly, not with a wrong state.

// takenHere reports whether a replica here of keyspace ks other than
// range except, not subsumed itself, holds hash lo in its applied span:
// it took the range of ks that began at lo (it applied the merge, or
// installed a snapshot past it), and that range's state here is of no
// more use. Loop only.
func (s *Store) takenHere(ks string, lo, except uint64) bool {
	for _, x := range s.Replicas {
		if x.desc.ID != except && x.desc.Keyspace == ks && x.split.known && x.split.subsumedInto == 0 && x.split.span.Contains(lo) {
			return true
		}
	}
	return false
}

// findWaiting finds the subsumed ranges whose state this node holds and
// that its catalog does not list: reconcile will not start them, and a
// merge applied here, or dropTaken, takes their state. At open, once the
// catalog is loaded, before the first reconcile.
func (s *Store) findWaiting() error {
	var ids []uint64
	it, err := s.DB.NewIter(storage.AppliedStatesSpan())
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		id, err := storage.DecodeAppliedStateKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if _, listed := s.cat.Ranges[id]; !listed && id != catalog.MetaRangeID {
			ids = append(ids, id)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	s.merges.waiting = map[uint64]splitState{}
	for _, id := range ids {
		st, err := s.appliedSpan(id)
		if err != nil {
			return err
		}
		if st.subsumedInto != 0 {
			s.merges.waiting[id] = st
		}
	}
	return nil
}

// dropTaken removes the state of the waiting ranges that a replica here
// took, all but their tombstones. A waiting range that runs now (the
// catalog was behind when the node opened, and listed it since) is left
// to reconcile's own removal, and one the catalog lists to reconcile's
// start. Reconcile only.
func (s *Store) dropTaken() error {
	for _, id := range slices.Sorted(maps.Keys(s.merges.waiting)) {
		if s.Replicas[id] != nil || s.Failed[id] != nil {
			delete(s.merges.waiting, id)
			continue
		}
		if _, listed := s.cat.Ranges[id]; listed {
			continue
		}
		st := s.merges.waiting[id]
		ks, ok, err := s.subsumedKeyspace(st)
		if err != nil {
			return err
		}
		if !ok || !s.takenHere(ks, st.span.Lo, id) {
			continue
		}
		if err := s.clearMerged(id, st); err != nil {
			return err
		}
		delete(s.merges.waiting, id)
		s.Logger.Info("removed the state of a range merged while this node was behind", "range", id, "keyspace", ks, "into", st.subsumedInto)
	}
	return nil
}

// subsumedKeyspace returns the keyspace of a range that does not run here
// and that st says is subsumed: that of the range it was subsumed into,
// its left neighbour in one keyspace (catalog.Mergeable), as the catalog
// or a replica here names it; if that range merged away too, that of the
// range its tombstone here was subsumed into, and so on. ok is false if
// the chain ends first (this node holds nothing of a range on it).
func (s *Store) subsumedKeyspace(st splitState) (ks string, ok bool, err error) {
	seen := map[uint64]bool{}
	for id := st.subsumedInto; id != 0 && !seen[id]; {
		seen[id] = true
		if d, listed := s.cat.Ranges[id]; listed {
			return d.Keyspace, true, nil
		}
		if r := s.Replicas[id]; r != nil {
			return r.desc.Keyspace, true, nil
		}
		next, err := s.appliedSpan(id)
		if err != nil {
			return "", false, err
		}
		id = next.subsumedInto
	}
	return "", false, nil
}

// clearMerged deletes range id's replica state here, all but its split
// state st, kept as the tombstone a merge applied here leaves
// (mergefile.go): a request for the range is told its keys moved
// (mergedAway).
func (s *Store) clearMerged(id uint64, st splitState) error {
	b := s.DB.NewBatch()
	defer b.Close()
	for _, span := range storage.ReplicaSpans(id) {
		if err := b.DeleteRange(span.Start, span.End); err != nil {
			return err
		}
	}
	tombstone := splitState{known: true, span: st.span, subsumedInto: st.subsumedInto, subsumedAt: st.subsumedAt}
	if err := b.Set(storage.SplitStateKey(id), tombstone.encode()); err != nil {
		return err
	}
	return b.Commit(false)
}
