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

// maxCachedSizes bounds the keys a node remembers, over all its replicas:
// a key of 23 bytes costs 77 bytes (the key, a map slot; measured), so
// 256 Ki keys are ~20 MiB. Too low reads Pebble for most puts of ranges
// with more keys written often; too high holds memory for keys not written
// again. The replicas that write take the room: a replica adds a key while
// the node holds fewer (Store.sizesHeld), and once it is full replaces one
// of its own, if it has any.
const maxCachedSizes = 256 << 10

// sizeCache maps user keys to the size they count (0: absent).
type sizeCache map[string]uint32

// get returns the size key counts, if remembered.
func (c sizeCache) get(key []byte) (uint32, bool) {
	sz, ok := c[string(key)]
	return sz, ok
}

// remember records the size r's key counts now, within the node's bound.
func (s *Store) remember(r *replica, key []byte, sz uint64) {
	if r.sizes == nil {
		r.sizes = sizeCache{}
	}
	if _, ok := r.sizes[string(key)]; !ok {
		if s.sizesHeld >= maxCachedSizes {
			if len(r.sizes) == 0 {
				return
			}
			for k := range r.sizes {
				delete(r.sizes, k)
				break
			}
		} else {
			s.sizesHeld++
		}
	}
	r.sizes[string(key)] = uint32(sz)
}

// countSizes recounts the keys the node remembers (sizesHeld), so that the
// caches of replicas gone or emptied give their room back. On every tick.
func (s *Store) countSizes() {
	n := 0
	for _, r := range s.Replicas {
		n += len(r.sizes)
	}
	s.sizesHeld = n
}
