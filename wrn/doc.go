// Package wrn is the pure core of eventual keyspaces: Dynamo-style
// replication where a write goes to all N replicas of a key and succeeds
// after W acknowledge, and a read asks the replicas and returns after R
// answer, with the newest version winning (DESIGN.md §5, the article's
// W/R/N chapter).
//
// The package decides and the node layer acts: given a key's replicas, the
// write and read quorums (sizes W and R, or a geometry's phase-2 write sets
// and phase-1 read sets) and the replies so far, a WriteTracker says when a
// write is done or cannot be, and a ReadTracker says when a read is done,
// which version wins and which replicas need repair. When every read set
// meets every write set (W+R>N for sizes), a read that starts after a
// write was acknowledged sees it or something newer.
//
// Versions are hybrid logical clock timestamps (Kulkarni et al., "Logical
// Physical Clocks", 2014) plus the writing node's ID: the clock follows
// physical time closely, never goes backwards, and orders causally related
// writes even when clocks drift; the node ID breaks ties, so the last
// writer wins the same way on every replica. The clock reads physical time
// through a function the caller supplies: the package has no clock of its
// own, no IO and no goroutines, and imports only the standard library and
// quorum.
package wrn
