package command

import (
	"bytes"
	"slices"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/storage"
)

// EachData calls f with each user key of range rangeID that starts with
// prefix and comes after startAfter (from the first when it is empty), in
// key order, with its stored value, until f returns false or an error.
// Both slices alias the iterator: f copies what it keeps. Every walk over
// a range's data (scans, the catalog, anti-entropy) goes through here.
func EachData(r storage.Reader, rangeID uint64, prefix, startAfter []byte, f func(key, raw []byte) (bool, error)) error {
	it, err := r.NewIter(storage.DataPrefixSpan(rangeID, prefix))
	if err != nil {
		return err
	}
	defer it.Close()
	ok := it.First()
	if len(startAfter) > 0 {
		// The first key after startAfter: startAfter followed by a zero byte.
		ok = it.SeekGE(storage.DataKey(rangeID, append(bytes.Clone(startAfter), 0)))
	}
	for ; ok; ok = it.Next() {
		_, key, err := storage.DecodeDataKey(it.Key())
		if err != nil {
			return err
		}
		raw, err := it.Value()
		if err != nil {
			return err
		}
		more, err := f(key, raw)
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

// MergePages merges the pages of a scan that each range answered with up
// to limit+1 keys: in key order, cut to limit, and whether more remain.
func MergePages(all []catalog.KeyValue, limit int) ([]catalog.KeyValue, bool) {
	slices.SortFunc(all, func(a, b catalog.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}
