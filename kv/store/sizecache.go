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

// maxCachedSizes bounds the keys each replica remembers: about 70 bytes
// each (key, map slot), so 16,384 keys is ~1 MiB per replica. Too low
// reads Pebble for most puts of a range with more keys written often;
// too high holds memory for keys not written again.
const maxCachedSizes = 16 << 10

// sizeCache maps user keys to the size they count (0: absent).
type sizeCache map[string]uint32

// get returns the size key counts, if remembered.
func (c sizeCache) get(key []byte) (uint32, bool) {
	sz, ok := c[string(key)]
	return sz, ok
}

// put remembers the size key counts now, forgetting an arbitrary key to
// make room.
func (c sizeCache) put(key []byte, sz uint64) {
	if _, ok := c[string(key)]; !ok && len(c) >= maxCachedSizes {
		for k := range c {
			delete(c, k)
			break
		}
	}
	c[string(key)] = uint32(sz)
}
