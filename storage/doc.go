// Package storage is the node's one Pebble database. It holds, for every
// range replica on the node, the consensus log and hard state (or acceptor
// state), the applied state and the user data, plus node metadata and hints
// (the key layout is drawn at the top of keys.go; DESIGN.md §6 has the
// why).
//
// Writes go through atomic Batches committed with or without a WAL sync.
// Synced commits from many goroutines share WAL syncs (group commit), so the
// number of fsyncs per second does not grow with the number of ranges;
// Stats reports the syncs so that this can be watched.
//
// Ownership of byte slices: methods that take a []byte copy what they keep
// and never modify it, so the caller may reuse it as soon as they return.
// Slices returned by Get and Snapshot.Get are copies the caller owns.
// Slices returned by an Iterator belong to it and are valid only until its
// next positioning call or Close.
//
// Tests run the database on Pebble's in-memory filesystem (OpenMem) and
// simulate crashes that lose unsynced writes (DB.CrashClone,
// CrashAndReopen).
package storage
