package store

// The size cache: what a put or delete needs to know of the value it
// replaces is only whether there was one and how many bytes it counted
// toward the range's size (splitState.bytes), and reading it from Pebble
// was, after a minute of puts, 17% of a node's CPU, most of it reading
// sstable blocks that compactions had just rewritten. So each replica
// remembers, for the keys its apply wrote lately, the size the key counts
// now (splitBytes; 0: absent), and a put or delete of a remembered key
// reads nothing. A compare-and-swap needs the value itself and reads it.
//
// What it promises: every size it holds is the one splitBytes gives the
// key's value on disk (as applied). Only the apply writes the range's
// data, except a split, a merge and a snapshot install, which forget the
// whole cache (replica.forgetSizes). A wrong size would only make the
// range's size wrong, never a value: the split state's bytes, which every
// replica counts alike since each cache is exact. internal/invariants
// checks every size it gives against the disk.

// Bounds of the keys remembered. A key of 23 bytes costs 77 bytes (the
// key, a map slot; measured), so the node's 256 Ki keys are ~20 MiB. Too low reads Pebble
// for most puts of ranges with more keys written often; too high holds
// memory for keys not written again.
const (
	// maxCachedSizesPerNode is shared by the node's replicas: each may
	// hold its share (and at least minCachedSizes), as counted when it
	// adds a key.
	maxCachedSizesPerNode = 256 << 10
	minCachedSizes        = 256
)

// sizesCap is how many keys each replica of a node with n replicas may
// remember.
func sizesCap(n int) int { return max(minCachedSizes, maxCachedSizesPerNode/max(n, 1)) }

// sizeCache maps user keys to the size they count (0: absent).
type sizeCache map[string]uint32

// get returns the size key counts, if remembered.
func (c sizeCache) get(key []byte) (uint32, bool) {
	sz, ok := c[string(key)]
	return sz, ok
}

// put remembers the size key counts now, forgetting arbitrary keys to
// keep at most limit.
func (c sizeCache) put(key []byte, sz uint64, limit int) {
	if _, ok := c[string(key)]; !ok {
		for k := range c {
			if len(c) < limit {
				break
			}
			delete(c, k)
		}
	}
	c[string(key)] = uint32(sz)
}
