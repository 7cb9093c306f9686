package wrn

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// MaxMerkleDepth bounds a tree: 2^16 leaves of 8 bytes is 512 KiB per
// tree, and two replicas exchanging leaves of a huge range find
// differences within ranges of 1/65536 of it.
const MaxMerkleDepth = 16

// Merkle is a hash tree over one range's keys and their versions, for
// anti-entropy: two replicas compare trees instead of data, and exchange
// only the keys of leaves whose hashes differ (Dynamo, Cassandra's repair).
//
// The range's hash span [Lo, Hi) is cut into 2^depth leaves of equal
// width by position (the key's 64-bit hash, as the node routes keys). A
// leaf's hash combines the hashes of its entries with XOR, so entries can
// be added and removed in any order and the tree need not be rebuilt when
// one key changes; inner nodes hash their two children, so the root
// depends on where each difference lies.
type Merkle struct {
	lo, hi uint64 // hi == 0 means 2^64
	depth  int
	leaves []uint64
	inner  []uint64 // heap order: inner[1] is the root; rebuilt by Root
	dirty  bool
}

// NewMerkle returns an empty tree over [lo, hi) with 2^depth leaves.
func NewMerkle(lo, hi uint64, depth int) (*Merkle, error) {
	if depth < 0 || depth > MaxMerkleDepth {
		return nil, fmt.Errorf("%w: merkle depth %d: want 0 to %d", ErrInvalid, depth, MaxMerkleDepth)
	}
	if hi != 0 && hi <= lo {
		return nil, fmt.Errorf("%w: empty span [%d, %d)", ErrInvalid, lo, hi)
	}
	n := 1 << depth
	return &Merkle{lo: lo, hi: hi, depth: depth, leaves: make([]uint64, n), inner: make([]uint64, n), dirty: true}, nil
}

// Leaves returns the number of leaves.
func (m *Merkle) Leaves() int { return len(m.leaves) }

// Leaf returns the leaf that holds position pos, which must be in the span.
func (m *Merkle) Leaf(pos uint64) int {
	if m.hi == 0 && m.lo == 0 {
		return int(pos >> (64 - m.depth)) // the whole space: the top bits (a shift by 64 is 0)
	}
	// floor((pos-lo) * 2^depth / width), in 128 bits; width is mod 2^64,
	// right for hi == 0 too.
	hi, lo := bits.Mul64(pos-m.lo, uint64(len(m.leaves)))
	q, _ := bits.Div64(hi, lo, m.hi-m.lo)
	return int(q)
}

// Span returns leaf i's positions [lo, hi).
func (m *Merkle) Span(i int) (lo, hi uint64) {
	return m.boundary(i), m.boundary(i + 1)
}

func (m *Merkle) boundary(i int) uint64 {
	if i == 0 {
		return m.lo
	}
	if i == len(m.leaves) {
		return m.hi
	}
	if m.hi == 0 && m.lo == 0 {
		return uint64(i) << (64 - m.depth)
	}
	// ceil(i * width / 2^depth), in 128 bits.
	hi, lo := bits.Mul64(uint64(i), m.hi-m.lo)
	q, r := bits.Div64(hi, lo, uint64(len(m.leaves)))
	if r != 0 {
		q++
	}
	return m.lo + q
}

// EntryHash is the hash of one key at one version: replicas holding the
// same version of a key (value or tombstone) hash it alike.
func EntryHash(key []byte, v Version, tombstone bool) uint64 {
	h := sha256.New()
	var buf [8 + 8 + 4 + 8 + 1]byte
	binary.BigEndian.PutUint64(buf[0:], uint64(len(key)))
	binary.BigEndian.PutUint64(buf[8:], uint64(v.Timestamp.WallTime))
	binary.BigEndian.PutUint32(buf[16:], v.Timestamp.Logical)
	binary.BigEndian.PutUint64(buf[20:], v.Node)
	buf[28] = byte(boolUint(tombstone))
	h.Write(buf[:])
	h.Write(key)
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// Toggle adds an entry with hash eh at position pos, or removes it if it
// is there: XOR is its own inverse. To change a key's version, toggle the
// old entry and the new one.
func (m *Merkle) Toggle(pos, eh uint64) {
	m.leaves[m.Leaf(pos)] ^= eh
	m.dirty = true
}

// Root returns the root hash.
func (m *Merkle) Root() uint64 {
	m.rebuild()
	if len(m.leaves) == 1 {
		return m.leaves[0]
	}
	return m.inner[1]
}

// LeafHashes returns the leaves' hashes, in a new slice: what a replica
// sends another to compare.
func (m *Merkle) LeafHashes() []uint64 { return append([]uint64(nil), m.leaves...) }

func (m *Merkle) rebuild() {
	if !m.dirty {
		return
	}
	n := len(m.leaves)
	node := func(i int) uint64 { // heap index: leaves are n..2n-1
		if i >= n {
			return m.leaves[i-n]
		}
		return m.inner[i]
	}
	for i := n - 1; i >= 1; i-- {
		var buf [16]byte
		binary.BigEndian.PutUint64(buf[0:], node(2*i))
		binary.BigEndian.PutUint64(buf[8:], node(2*i+1))
		sum := sha256.Sum256(buf[:])
		m.inner[i] = binary.BigEndian.Uint64(sum[:8])
	}
	m.dirty = false
}

// DiffLeaves returns the leaves whose hashes differ between two trees of
// the same span and depth, walking down from the root so that equal
// subtrees are skipped.
func DiffLeaves(a, b *Merkle) ([]int, error) {
	if a.lo != b.lo || a.hi != b.hi || a.depth != b.depth {
		return nil, fmt.Errorf("%w: merkle trees of different shapes", ErrInvalid)
	}
	a.rebuild()
	b.rebuild()
	n := len(a.leaves)
	if n == 1 {
		if a.leaves[0] != b.leaves[0] {
			return []int{0}, nil
		}
		return nil, nil
	}
	var out []int
	var walk func(i int)
	walk = func(i int) {
		if i >= n {
			if a.leaves[i-n] != b.leaves[i-n] {
				out = append(out, i-n)
			}
			return
		}
		if a.inner[i] == b.inner[i] {
			return
		}
		walk(2 * i)
		walk(2*i + 1)
	}
	walk(1)
	return out, nil
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
