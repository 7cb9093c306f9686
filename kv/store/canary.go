package store

// Canary plants a bug in the node layer, for the tests that must catch it
// (the simulator's seeds, kv/canary_test.go): a test that cannot fail
// proves nothing. The zero value plants nothing; only tests set it, through
// StoreConfig.Canary; kvd never does. The protocol cores have their own
// (raft.Canary, paxos.Canary).
type Canary struct {
	// WaitersByID numbers requests from 0 again at every start, as a plain
	// counter did, and hands a waiter the result of any entry that carries
	// its request ID, not only its own entry: after a restart, an old
	// entry's result reaches a new request.
	WaitersByID bool
	// AckBeforeSync commits a round's entries and hard state without
	// syncing the WAL before sending the messages that acknowledge them:
	// a crash forgets votes and entries that others counted.
	AckBeforeSync bool
	// SyncedBeforeSync tells a raft core that a round's writes are
	// durable as soon as the round that did not wait for its sync
	// (syncs.go) advances it: a leader counts its own copy of entries
	// that a crash can still take, toward commits it acknowledges.
	SyncedBeforeSync bool
	// SkipReadBarrier serves a linearizable read from the leader's applied
	// data without confirming its leadership (no ReadIndex): a deposed
	// leader that does not know it yet answers stale reads.
	SkipReadBarrier bool
	// ReadAnyReplica serves a linearizable read from whichever replica
	// the request reaches, leader or not, without a barrier: a replica
	// cut off from its range, or behind it, answers stale reads. (The
	// container fault suite's canary for reads: SkipReadBarrier's window,
	// between a new leader's first write and the old one's step-down, is
	// too short for a real cluster to hit it reliably.)
	ReadAnyReplica bool
	// CasAtPropose decides a compare-and-swap when it is proposed, against
	// the leader's applied data, instead of when it is applied: a swap
	// whose condition holds becomes a plain put, so two concurrent swaps
	// of one value may both win.
	CasAtPropose bool
	// NoDedup applies every command with an idempotency key, even one
	// the range has answered already: a retried write is applied twice.
	NoDedup bool
	// LetGoEarly answers LetGo from any replica whose configuration leaves
	// the node out, a new one that has no configuration yet included: a
	// moved replica is deleted while its range still counts on it, and a
	// range of one replica loses its only copy.
	LetGoEarly bool
	// SnapshotInstallEarly takes a snapshot transfer as complete after its
	// first chunk: a replica installs a snapshot that lacks the rest of
	// the range's data.
	SnapshotInstallEarly bool
	// ServeMovedKeys lets a range that split keep serving the keys of its
	// right half: it neither refuses them at propose or apply nor checks
	// a read's key against its span, so writes land where no read looks
	// and reads miss what the new range holds.
	ServeMovedKeys bool
	// SplitDropsLastKey leaves the last key of a split's right half (in
	// key order) out of the new range, as an off-by-one in the copy would:
	// the old range gives it away and the new one never has it.
	SplitDropsLastKey bool
	// SplitStateFirst ingests a split's state (the ranges' consensus state,
	// applied indexes and split states) in a file of its own before the
	// file of its data: a crash between the two leaves the old range
	// split, with its right half still under its own prefix where no read
	// looks, and the new range empty.
	SplitStateFirst bool
	// SplitFoundsLow founds a paxos range born of a split at slot 1
	// instead of the split's slot: its log starts over, so its writes
	// take versions (range, slot) that the versions of the values it
	// inherited, rewritten as its own (kv's inheritedVersion), also name,
	// and a compare-and-swap with a version read before the split wins
	// against a later write.
	SplitFoundsLow bool
	// MergeWithoutWait proposes a merge as soon as the right range is
	// subsumed here, without waiting for every replica to report it, and
	// applies it whatever state the right range's replica is in: a
	// replica whose right range had not applied its last writes yet merges
	// without them.
	MergeWithoutWait bool
	// LeaseKeptOnQuiesce keeps a raft or paxos leader's read lease when
	// its range quiesces: its ticks stop, so once woken it counts its
	// lease from ticks long past, and a leader deposed meanwhile serves
	// stale reads.
	LeaseKeptOnQuiesce bool
	// AllEager sends every message of a round before the round's batch is
	// synced, not only a leader's appends (consensus.Ready.Eager): votes
	// and acknowledgements of entries go out before what they promise is
	// durable, and a crash before the sync forgets what others counted.
	AllEager bool
}
