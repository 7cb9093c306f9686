package wrn

import "fmt"

// Version identifies a write: when (a hybrid logical clock reading of the
// coordinator) and by whom (its node ID). Versions are totally ordered, so
// every replica resolves concurrent writes to a key the same way: the
// greater version wins (last writer wins).
type Version struct {
	Timestamp Timestamp
	Node      uint64
}

// Compare orders versions by timestamp, then node ID.
func (v Version) Compare(o Version) int {
	if c := v.Timestamp.Compare(o.Timestamp); c != 0 {
		return c
	}
	switch {
	case v.Node < o.Node:
		return -1
	case v.Node > o.Node:
		return 1
	}
	return 0
}

// Less reports whether v orders before o.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// IsZero reports whether v is the zero version: no write.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string { return fmt.Sprintf("%v@%d", v.Timestamp, v.Node) }

// Record is one replica's state of a key: a value or a tombstone (a
// delete, kept so that the delete wins over older writes it meets during
// repair), at a version. The zero Record means the replica knows nothing
// of the key.
type Record struct {
	Version   Version
	Value     []byte
	Tombstone bool
}

// Exists reports whether the record holds a live value.
func (r Record) Exists() bool { return !r.Version.IsZero() && !r.Tombstone }

// Merge returns the record that wins between a and b: the greater version.
func Merge(a, b Record) Record {
	if a.Version.Less(b.Version) {
		return b
	}
	return a
}
