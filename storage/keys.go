package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
)

// Key layout.
//
// Every key in the node's Pebble database starts with a one-byte prefix that
// says what the key is. Pebble compares keys bytewise, so the prefix groups
// each kind of key into one contiguous span, and the fixed-width big-endian
// integers after it make iteration order equal numeric order:
//
//	prefix  kind             rest of the key                           value
//	------  ---------------  ----------------------------------------  ------------------------------
//	0x00    (reserved)       never written
//	0x01    node metadata    name (ASCII)                              node identity, node ID, cluster ID, store version
//	                         "snapshot-install" rangeID(8, BE)         a snapshot install in progress (SnapshotInstallKey)
//	0x02    consensus state  rangeID(8, BE) suffix(1)                  by suffix:
//	                                        (suffix 0x01)              HardState / acceptor state
//	                                        (suffix 0x02)              truncated-log state
//	                                        (suffix 0x03) user key     per-key CAS acceptor state (eventual ranges)
//	0x03    log entry        rangeID(8, BE) index(8, BE)               one Raft entry / Paxos slot
//	0x04    applied state    rangeID(8, BE)                            applied index (and term/ballot)
//	0x05    hint             escaped(target node)  sequence(8, BE)     a write held for a down replica
//	0x06    user data        rangeID(8, BE) user key (raw, to the end) the user's value
//	0x07    request dedup    rangeID(8, BE) suffix(1)                  by suffix:
//	                                        (suffix 0x00)              the range's dedup horizon
//	                                        (suffix 0x01) idem key     a write's answer, by idempotency key
//	                                        (suffix 0x02) time(8, BE) idem key   expiry index: nothing
//	                                        (suffix 0x03)              the range's split state: its span and size
//	                                        (suffix 0x04)              an eventual range's swept span (not replicated)
//
// Consequences a reader can rely on:
//
//   - All log entries of range R form one span and sort by index, so log
//     truncation ("delete entries below i") and dropping a replica's log are
//     each one DeleteRange (see LogSpan and RangeLogSpan).
//   - All user data of range R form one span, sorted in user-key order, so a
//     scan of one range is one bounded iteration and clearing a range's data
//     is one DeleteRange (RangeDataSpan, DataPrefixSpan).
//   - A range's consensus state and log (written by the protocol with every
//     append) are kept apart from its applied state and data (written by the
//     state machine, in one batch, per DESIGN.md §6), so replacing a state
//     machine from a snapshot clears exactly the applied state and data.
//   - Eventual ranges run no consensus group; their compare-and-swap
//     (Basic Paxos per key) keeps one acceptor state per key in the range's
//     consensus state span (CASStateKey), apart from the user data that
//     scans and anti-entropy read, and removed with the replica.
//   - The answers a range keeps for retried writes (request dedup) are part
//     of its replicated state, like its data, but apart from it so that
//     scans and the data span never see them; their expiry index sorts
//     them by time, so forgetting the expired ones is one ordered scan
//     from the start (DedupExpirySpan).
//   - A range's split state (its span as its own splits left it, the size
//     of its data, its last split) is replicated state too, kept with the
//     dedup state (after it) so that snapshots carry it and clearing the
//     range's dedup span clears it.
//   - Hints are grouped by target node and ordered by sequence, so replaying
//     the hints for one node that came back is one ordered scan (HintSpan).
//     Node names are strings (SPEC: --node-id), so they are escaped
//     (0x00 -> 0x00 0xFF, terminated by 0x00 0x01) to keep one node's hints
//     from being a prefix of another's ("a" vs "ab") while preserving order.
//
// User data is keyed by range ID rather than by keyspace and hash: a scan
// must return a range's keys in user-key order (DESIGN.md §2), which a
// hash-ordered layout cannot do. The price is that splitting a range rewrites
// the moved half under the new range ID, and that the half left behind is
// not a span of keys either: kv/store's split deletes the range's whole data
// span and writes the half it keeps again, in one ingested sstable.
//
// Integers are big-endian because bytewise order of big-endian unsigned
// integers is numeric order; little-endian or varints would not sort.
//
// Changing this layout changes the on-disk format: bump storeVersion.

// Key prefixes. One byte each; see the layout above.
const (
	prefixNodeMeta       byte = 0x01
	prefixConsensusState byte = 0x02
	prefixLogEntry       byte = 0x03
	prefixAppliedState   byte = 0x04
	prefixHint           byte = 0x05
	prefixUserData       byte = 0x06
	prefixDedup          byte = 0x07
)

// Suffixes of the per-range request dedup keys (prefix 0x07).
const (
	dedupHorizon byte = 0x00
	dedupEntry   byte = 0x01
	dedupExpiry  byte = 0x02
	splitState   byte = 0x03
	// eventualSwept: an eventual range's swept span (EventualSweptKey).
	eventualSwept byte = 0x04
)

// Suffixes of the per-range consensus state keys (prefix 0x02).
const (
	consensusHardState      byte = 0x01
	consensusTruncatedState byte = 0x02
	consensusCASState       byte = 0x03
)

// Names of the node metadata keys (prefix 0x01).
const (
	metaIdentity     = "identity"
	metaNodeID       = "node-id"
	metaClusterID    = "cluster-id"
	metaStoreVersion = "store-version"
	metaSnapInstall  = "snapshot-install"
)

const (
	uint64Len = 8
	// rangeKeyLen is the length of prefix + range ID.
	rangeKeyLen = 1 + uint64Len
	// logKeyLen is the length of every log entry key.
	logKeyLen = rangeKeyLen + uint64Len

	// Escaping of variable-length strings inside keys (hint target names).
	// The same scheme as CockroachDB's encoding.EncodeBytesAscending.
	escape      byte = 0x00
	escapedNul  byte = 0xFF
	escapedTerm byte = 0x01
)

// Span is the half-open key interval [Start, End). A nil Start means the
// beginning of the key space; End must be set. Functions returning a Span
// return fresh slices that the caller owns.
type Span struct {
	Start, End []byte
}

// Contains reports whether key lies in [s.Start, s.End).
func (s Span) Contains(key []byte) bool {
	return bytes.Compare(key, s.Start) >= 0 && bytes.Compare(key, s.End) < 0
}

// String formats the span for logs and errors.
func (s Span) String() string {
	return "[" + FormatKey(s.Start) + ", " + FormatKey(s.End) + ")"
}

// IdentityKey is the key of this node's identity: the random UUID and
// secret chosen at its first start, and the name (--node-id) it was
// started with then. kv writes and checks it (kv/identity.Open).
func IdentityKey() []byte { return metaKey(metaIdentity) }

// NodeIDKey is the key of this node's ID, the number the cluster gave it.
func NodeIDKey() []byte { return metaKey(metaNodeID) }

// ClusterIDKey is the key of the ID of the cluster this node belongs to.
func ClusterIDKey() []byte { return metaKey(metaClusterID) }

// StoreVersionKey is the key of the version of this key layout and value
// encodings that the store was written with. Open maintains it.
func StoreVersionKey() []byte { return metaKey(metaStoreVersion) }

// SnapshotInstallKey is the key of the marker of a snapshot install of
// range rangeID that is under way: it is written with the range's new
// consensus state and deleted by the ingest of the snapshot's data (the
// store's snapshot install). A marker found at start means the ingest
// has not happened yet. It sorts apart from the range's own spans so that
// the markers of every range are one short scan (SnapshotInstallSpan).
func SnapshotInstallKey(rangeID uint64) []byte {
	return binary.BigEndian.AppendUint64(metaKey(metaSnapInstall), rangeID)
}

// SnapshotInstallSpan is the span of every range's SnapshotInstallKey.
func SnapshotInstallSpan() Span {
	start := metaKey(metaSnapInstall)
	return Span{Start: start, End: prefixEnd(start)}
}

// DecodeSnapshotInstallKey returns the range ID of a key made by
// SnapshotInstallKey.
func DecodeSnapshotInstallKey(key []byte) (uint64, error) {
	prefix := metaKey(metaSnapInstall)
	if len(key) != len(prefix)+uint64Len || !bytes.HasPrefix(key, prefix) {
		return 0, fmt.Errorf("storage: snapshot install key %x: %w", key, ErrMalformedKey)
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), nil
}

func metaKey(name string) []byte {
	k := make([]byte, 0, 1+len(name))
	return append(append(k, prefixNodeMeta), name...)
}

// HardStateKey is the key of range rangeID's durable consensus state: the
// Raft HardState (term, vote, commit) or the Paxos acceptor state (promised
// ballot). A range runs one protocol, so one key serves both.
func HardStateKey(rangeID uint64) []byte {
	return consensusStateKey(rangeID, consensusHardState)
}

// TruncatedStateKey is the key of range rangeID's truncated-log state: the
// index and term (or ballot) of the last entry removed by log truncation,
// which the protocol needs once the log no longer holds that entry.
func TruncatedStateKey(rangeID uint64) []byte {
	return consensusStateKey(rangeID, consensusTruncatedState)
}

// CASStateKey is the key of the Basic Paxos acceptor state of userKey in
// eventual range rangeID (per-key compare-and-swap). It lies in
// RangeStateSpan(rangeID), so removing the replica removes it. userKey is
// copied.
func CASStateKey(rangeID uint64, userKey []byte) []byte {
	k := make([]byte, 0, rangeKeyLen+1+len(userKey))
	k = appendRangePrefix(k, prefixConsensusState, rangeID)
	return append(append(k, consensusCASState), userKey...)
}

// CASStateSpan is the span of every CASStateKey of range rangeID.
func CASStateSpan(rangeID uint64) Span {
	start := CASStateKey(rangeID, nil)
	return Span{Start: start, End: prefixEnd(start)}
}

// DecodeCASStateKey returns the range ID and user key of a key made by
// CASStateKey. userKey aliases key.
func DecodeCASStateKey(key []byte) (rangeID uint64, userKey []byte, err error) {
	if len(key) < rangeKeyLen+1 || key[0] != prefixConsensusState || key[rangeKeyLen] != consensusCASState {
		return 0, nil, fmt.Errorf("storage: CAS state key %x: %w", key, ErrMalformedKey)
	}
	return binary.BigEndian.Uint64(key[1:]), key[rangeKeyLen+1:], nil
}

func consensusStateKey(rangeID uint64, kind byte) []byte {
	k := make([]byte, 0, rangeKeyLen+1)
	k = appendRangePrefix(k, prefixConsensusState, rangeID)
	return append(k, kind)
}

// AppliedStateKey is the key of range rangeID's applied state. It lives
// apart from the consensus state because it is written with the range's user
// data in the state machine's batch, never with log appends.
func AppliedStateKey(rangeID uint64) []byte {
	return appendRangePrefix(make([]byte, 0, rangeKeyLen), prefixAppliedState, rangeID)
}

// AppliedStatesSpan is the span of every range's AppliedStateKey: one
// key per range with an applied state here, whether this node runs a
// replica of it or not.
func AppliedStatesSpan() Span {
	start := []byte{prefixAppliedState}
	return Span{Start: start, End: prefixEnd(start)}
}

// DecodeAppliedStateKey returns the range ID of a key made by
// AppliedStateKey.
func DecodeAppliedStateKey(key []byte) (uint64, error) {
	if len(key) != rangeKeyLen || key[0] != prefixAppliedState {
		return 0, fmt.Errorf("storage: applied state key %x: %w", key, ErrMalformedKey)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

// DedupHorizonKey is the key of range rangeID's dedup horizon: the time
// before which the answers it kept for retried writes are forgotten.
func DedupHorizonKey(rangeID uint64) []byte {
	return append(appendRangePrefix(make([]byte, 0, rangeKeyLen+1), prefixDedup, rangeID), dedupHorizon)
}

// DedupKey is the key of the answer range rangeID keeps for the write with
// idempotency key idem. idem is copied.
func DedupKey(rangeID uint64, idem []byte) []byte {
	k := appendRangePrefix(make([]byte, 0, rangeKeyLen+1+len(idem)), prefixDedup, rangeID)
	return append(append(k, dedupEntry), idem...)
}

// DedupExpiryKey is the expiry index entry of DedupKey(rangeID, idem),
// kept at time (nanoseconds, not negative) so that the expired entries
// come first. idem is copied.
func DedupExpiryKey(rangeID uint64, time uint64, idem []byte) []byte {
	k := appendRangePrefix(make([]byte, 0, rangeKeyLen+1+uint64Len+len(idem)), prefixDedup, rangeID)
	k = append(k, dedupExpiry)
	k = binary.BigEndian.AppendUint64(k, time)
	return append(k, idem...)
}

// DecodeDedupExpiryKey returns the time and idempotency key of a key made
// by DedupExpiryKey. idem aliases key.
func DecodeDedupExpiryKey(key []byte) (time uint64, idem []byte, err error) {
	if len(key) < rangeKeyLen+1+uint64Len || key[0] != prefixDedup || key[rangeKeyLen] != dedupExpiry {
		return 0, nil, fmt.Errorf("storage: %s is not a dedup expiry key: %w", FormatKey(key), ErrCorruption)
	}
	rest := key[rangeKeyLen+1:]
	return binary.BigEndian.Uint64(rest), rest[uint64Len:], nil
}

// DedupExpirySpan is the span of range rangeID's expiry index entries
// with a time before before.
func DedupExpirySpan(rangeID uint64, before uint64) Span {
	start := append(appendRangePrefix(make([]byte, 0, rangeKeyLen+1), prefixDedup, rangeID), dedupExpiry)
	end := binary.BigEndian.AppendUint64(bytes.Clone(start), before)
	return Span{Start: start, End: end}
}

// RangeDedupEntrySpan is the span of range rangeID's dedup entries
// (DedupKey).
func RangeDedupEntrySpan(rangeID uint64) Span {
	start := append(appendRangePrefix(make([]byte, 0, rangeKeyLen+1), prefixDedup, rangeID), dedupEntry)
	return Span{Start: start, End: prefixEnd(start)}
}

// RangeDedupSpan is the span of all of range rangeID's request dedup
// state: horizon, entries and expiry index.
func RangeDedupSpan(rangeID uint64) Span {
	return rangeSpan(prefixDedup, rangeID)
}

// SplitStateKey is the key of range rangeID's split state: the span of
// the hash space its own splits left it, the bytes of its data, and its
// last split (kv/store/split.go). It lies in RangeDedupSpan, after the
// dedup state.
func SplitStateKey(rangeID uint64) []byte {
	return append(appendRangePrefix(make([]byte, 0, rangeKeyLen+1), prefixDedup, rangeID), splitState)
}

// EventualSweptKey is the key of eventual range rangeID's swept span: the
// span its replica here held when its last sweep moved every record of
// keys outside it to the ranges split from it (kv/eventual/split.go). It
// lies in RangeDedupSpan, which eventual ranges do not otherwise use, so
// removing the replica removes it.
func EventualSweptKey(rangeID uint64) []byte {
	return append(appendRangePrefix(make([]byte, 0, rangeKeyLen+1), prefixDedup, rangeID), eventualSwept)
}

// LogKey is the key of the log entry (Raft) or slot (Paxos) at index of
// range rangeID.
func LogKey(rangeID, index uint64) []byte {
	return AppendLogKey(make([]byte, 0, logKeyLen), rangeID, index)
}

// AppendLogKey appends the key of LogKey(rangeID, index) to dst and returns
// the extended slice. For hot loops that reuse a buffer.
func AppendLogKey(dst []byte, rangeID, index uint64) []byte {
	dst = appendRangePrefix(dst, prefixLogEntry, rangeID)
	return binary.BigEndian.AppendUint64(dst, index)
}

// DecodeLogKey returns the range ID and index of a key made by LogKey.
func DecodeLogKey(key []byte) (rangeID, index uint64, err error) {
	if len(key) != logKeyLen || key[0] != prefixLogEntry {
		return 0, 0, fmt.Errorf("storage: log key %x: %w", key, ErrMalformedKey)
	}
	return binary.BigEndian.Uint64(key[1:]), binary.BigEndian.Uint64(key[rangeKeyLen:]), nil
}

// DataKey is the key under which range rangeID stores userKey. userKey is
// copied.
func DataKey(rangeID uint64, userKey []byte) []byte {
	return AppendDataKey(make([]byte, 0, rangeKeyLen+len(userKey)), rangeID, userKey)
}

// AppendDataKey appends the key of DataKey(rangeID, userKey) to dst and
// returns the extended slice.
func AppendDataKey(dst []byte, rangeID uint64, userKey []byte) []byte {
	dst = appendRangePrefix(dst, prefixUserData, rangeID)
	return append(dst, userKey...)
}

// DecodeDataKey returns the range ID and user key of a key made by DataKey.
// userKey aliases key: copy it if key's buffer is reused (as an Iterator's
// is).
func DecodeDataKey(key []byte) (rangeID uint64, userKey []byte, err error) {
	if len(key) < rangeKeyLen || key[0] != prefixUserData {
		return 0, nil, fmt.Errorf("storage: data key %x: %w", key, ErrMalformedKey)
	}
	return binary.BigEndian.Uint64(key[1:]), key[rangeKeyLen:], nil
}

// HintKey is the key of hint number seq held for the node named target.
// Sequence numbers order a target's hints; the caller assigns them.
func HintKey(target string, seq uint64) []byte {
	k := make([]byte, 0, 1+len(target)+2+uint64Len)
	k = appendHintPrefix(k, target)
	return binary.BigEndian.AppendUint64(k, seq)
}

// DecodeHintKey returns the target node and sequence of a key made by
// HintKey.
func DecodeHintKey(key []byte) (target string, seq uint64, err error) {
	if len(key) < 1 || key[0] != prefixHint {
		return "", 0, fmt.Errorf("storage: hint key %x: %w", key, ErrMalformedKey)
	}
	name, rest, ok := decodeEscaped(key[1:])
	if !ok || len(rest) != uint64Len {
		return "", 0, fmt.Errorf("storage: hint key %x: %w", key, ErrMalformedKey)
	}
	return string(name), binary.BigEndian.Uint64(rest), nil
}

// RangeStateSpan is the span of range rangeID's consensus state keys
// (HardStateKey, TruncatedStateKey).
func RangeStateSpan(rangeID uint64) Span {
	return rangeSpan(prefixConsensusState, rangeID)
}

// RangeLogSpan is the span of every log entry of range rangeID.
func RangeLogSpan(rangeID uint64) Span {
	return rangeSpan(prefixLogEntry, rangeID)
}

// LogSpan is the span of range rangeID's log entries with from <= index < to.
// Truncating the log below index i is one DeleteRange of LogSpan(r, 0, i).
func LogSpan(rangeID, from, to uint64) Span {
	return Span{Start: LogKey(rangeID, from), End: LogKey(rangeID, to)}
}

// RangeAppliedStateSpan is the span holding only AppliedStateKey(rangeID).
func RangeAppliedStateSpan(rangeID uint64) Span {
	return rangeSpan(prefixAppliedState, rangeID)
}

// RangeDataSpan is the span of all user data of range rangeID.
func RangeDataSpan(rangeID uint64) Span {
	return rangeSpan(prefixUserData, rangeID)
}

// DataPrefixSpan is the span of range rangeID's user keys that start with
// prefix (all of them if prefix is empty). prefix is copied.
func DataPrefixSpan(rangeID uint64, prefix []byte) Span {
	start := DataKey(rangeID, prefix)
	return Span{Start: start, End: prefixEnd(start)}
}

// ReplicaSpans returns every span that holds state of range rangeID on this
// node: consensus state, log, applied state, user data and request dedup.
// Deleting each one removes the replica entirely.
func ReplicaSpans(rangeID uint64) []Span {
	return []Span{
		RangeStateSpan(rangeID),
		RangeLogSpan(rangeID),
		RangeAppliedStateSpan(rangeID),
		RangeDataSpan(rangeID),
		RangeDedupSpan(rangeID),
	}
}

// HintSpan is the span of every hint held for the node named target, in
// sequence order.
func HintSpan(target string) Span {
	start := appendHintPrefix(make([]byte, 0, 1+len(target)+2), target)
	return Span{Start: start, End: prefixEnd(start)}
}

// AllHintsSpan is the span of the hints held for every target node.
func AllHintsSpan() Span {
	return Span{Start: []byte{prefixHint}, End: []byte{prefixHint + 1}}
}

// appendRangePrefix appends prefix and the big-endian range ID.
func appendRangePrefix(dst []byte, prefix byte, rangeID uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefix), rangeID)
}

// rangeSpan is the span of every key starting with prefix and rangeID.
func rangeSpan(prefix byte, rangeID uint64) Span {
	start := appendRangePrefix(make([]byte, 0, rangeKeyLen), prefix, rangeID)
	return Span{Start: start, End: prefixEnd(start)}
}

func appendHintPrefix(dst []byte, target string) []byte {
	return appendEscaped(append(dst, prefixHint), target)
}

// appendEscaped appends s so that escaped strings sort like the strings and
// none is a prefix of another: 0x00 becomes 0x00 0xFF, and 0x00 0x01 ends it.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == escape {
			dst = append(dst, escape, escapedNul)
			continue
		}
		dst = append(dst, s[i])
	}
	return append(dst, escape, escapedTerm)
}

// decodeEscaped undoes appendEscaped at the start of b and returns the
// string's bytes (a new slice) and what follows the terminator.
func decodeEscaped(b []byte) (s, rest []byte, ok bool) {
	for i := 0; i < len(b); i++ {
		if b[i] != escape {
			s = append(s, b[i])
			continue
		}
		if i+1 == len(b) {
			return nil, nil, false
		}
		i++
		switch b[i] {
		case escapedNul:
			s = append(s, escape)
		case escapedTerm:
			return s, b[i+1:], true
		default:
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// prefixEnd returns the smallest key greater than every key that starts
// with p, as a new slice. Every p built here starts with a prefix byte below
// 0xFF, so the result always exists.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	panic(fmt.Sprintf("storage: no key follows every key with prefix %x", p))
}

// kindName names each prefix for FormatKey, or returns "" for unknown ones.
func kindName(prefix byte) string {
	switch prefix {
	case prefixNodeMeta:
		return "Meta"
	case prefixConsensusState:
		return "State"
	case prefixLogEntry:
		return "Log"
	case prefixAppliedState:
		return "Applied"
	case prefixHint:
		return "Hint"
	case prefixUserData:
		return "Data"
	case prefixDedup:
		return "Dedup"
	}
	return ""
}

// FormatKey renders a key of this layout for people: logs, errors, debug
// tools and span bounds. Bytes it does not recognize are printed in hex.
func FormatKey(key []byte) string {
	if len(key) == 0 {
		return "/Min"
	}
	p := key[0]
	name := kindName(p)
	if name == "" {
		return fmt.Sprintf("/Unknown/%x", key)
	}
	kind := "/" + name
	switch {
	case len(key) == 1:
		return kind
	case p == prefixNodeMeta:
		return kind + "/" + strconv.Quote(string(key[1:]))
	case p == prefixHint:
		if t, s, err := DecodeHintKey(key); err == nil {
			return fmt.Sprintf("%s/%q/%d", kind, t, s)
		}
		return fmt.Sprintf("%s/%x", kind, key[1:])
	case len(key) < rangeKeyLen:
		return fmt.Sprintf("%s/%x", kind, key[1:])
	}
	// The remaining kinds are keyed by range ID.
	s := fmt.Sprintf("%s/r%d", kind, binary.BigEndian.Uint64(key[1:]))
	rest := key[rangeKeyLen:]
	switch {
	case len(rest) == 0:
		return s
	case p == prefixConsensusState && len(rest) == 1 && rest[0] == consensusHardState:
		return s + "/HardState"
	case p == prefixConsensusState && len(rest) == 1 && rest[0] == consensusTruncatedState:
		return s + "/TruncatedState"
	case p == prefixConsensusState && len(rest) >= 1 && rest[0] == consensusCASState:
		return fmt.Sprintf("%s/CAS/%q", s, rest[1:])
	case p == prefixLogEntry && len(rest) == uint64Len:
		return fmt.Sprintf("%s/%d", s, binary.BigEndian.Uint64(rest))
	case p == prefixUserData:
		return fmt.Sprintf("%s/%q", s, rest)
	case p == prefixDedup && len(rest) == 1 && rest[0] == dedupHorizon:
		return s + "/Horizon"
	case p == prefixDedup && len(rest) == 1 && rest[0] == splitState:
		return s + "/SplitState"
	case p == prefixDedup && rest[0] == dedupEntry:
		return fmt.Sprintf("%s/Entry/%q", s, rest[1:])
	case p == prefixDedup && rest[0] == dedupExpiry && len(rest) >= 1+uint64Len:
		return fmt.Sprintf("%s/Expiry/%d/%q", s, binary.BigEndian.Uint64(rest[1:]), rest[1+uint64Len:])
	}
	return fmt.Sprintf("%s/%x", s, rest)
}
