package consensus

import (
	"errors"
	"log/slog"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
	"github.com/quorumkv/quorumkv/paxos"
	"github.com/quorumkv/quorumkv/raft"
	"github.com/quorumkv/quorumkv/storage"
)

// Host is what a range's core needs from the store that runs it: the
// same for every range of the store. Its functions are called only on the
// store's goroutine.
type Host struct {
	DB     *storage.DB
	NodeID uint64
	Raft   raft.Config
	Paxos  paxos.Config
	// LogKeepEntries, LogTruncateEntries, LogKeepBytes and
	// LogTruncateBytes: see StoreConfig.
	LogKeepEntries, LogTruncateEntries uint64
	LogKeepBytes, LogTruncateBytes     uint64
	Logger, RaftLogger                 *slog.Logger
	// Seed returns a fresh random seed for a core's randomized timeouts.
	Seed func() uint64
	// Ticks is the store's tick count, the clock of snapshot retries.
	Ticks func() int64
	// SnapshotFailed counts a snapshot that could not be built.
	SnapshotFailed func()
	// OpenSnapshot holds the range's replicated state at its applied
	// index, which the caller passes, for other nodes to pull, and returns
	// the handle a snapshot message carries as its data (kv/store).
	OpenSnapshot func(rangeID, applied uint64) ([]byte, error)
	// SnapshotHeld reports whether this node still holds the snapshot a
	// handle names (held snapshots expire when nobody reads them). A
	// core that hands a handle out again checks it, and asking keeps it.
	SnapshotHeld func(handle []byte) bool
}

// Range is the range a core runs: its descriptor, the replica's
// applied index (which the core reads, and sets when it founds the range),
// and where a Raft leader keeps its failures to build a snapshot.
type Range struct {
	Desc      *catalog.RangeDescriptor
	Applied   *uint64
	SnapFault *SnapshotFault
	// Founder says the replica is one of the range's founding replicas:
	// with no state yet, it founds the range's log with the descriptor's
	// replicas. A replica added later (catalog.ReplicaDescriptor.Added)
	// starts empty and waits for the range's leader to send it the range.
	Founder bool
	// ReadLease: the range serves linearizable reads from its leader's
	// lease (raft.ReadOnlyLeaseBased, paxos.Config.ReadLease;
	// catalog.KeyspaceDescriptor.ReadLease). The host must then keep the
	// core's ticks in step with time, and call ForgetLease when it stops
	// ticking the range.
	ReadLease bool
}

func LoadApplied(db *storage.DB, rangeID uint64) (uint64, error) {
	b, err := db.Get(storage.AppliedStateKey(rangeID))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := codec.Dec{Buf: b}
	if d.Byte() != CodecV1 {
		d.Fail("applied state version")
	}
	idx := d.Uint()
	return idx, d.Done()
}

func AppliedState(index uint64) []byte {
	e := codec.Enc{Buf: []byte{CodecV1}}
	e.Uint(index)
	return e.Buf
}
