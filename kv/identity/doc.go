// Package identity is who a node is, as its data dir remembers it: a
// random UUID and secret chosen at the node's very first start, its name,
// and once it founded or joined a cluster, its node ID and the cluster's
// ID. It opens, checks and saves them (Open, Save, SaveJoin, IsMember).
//
// It imports kv/catalog (the UUID's form), kv/internal/codec and storage.
//
// Invariants: an identity is written once, synced, before the node founds
// or joins a cluster, and never changes but to record the node ID and
// cluster ID it got (SaveJoin); a data dir created under another name is
// refused (ErrWrongNode), and so is one that belongs to a cluster but
// holds no identity (ErrNoIdentity). The catalog keeps only the secret's
// SHA-256 (HashSecret), never the secret.
package identity
