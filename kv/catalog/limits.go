package catalog

import (
	"errors"
	"fmt"
	"regexp"
)

// Limits bound what one request may carry (SPEC.md "Limits"). Each has a
// default in DefaultLimits; over a limit, a request is refused with an
// error naming it, and nothing is written.
type Limits struct {
	// MaxKeyBytes bounds a key. Keys are copied into every log entry, index
	// and hint, so large keys cost on every path; 4 KiB is far above what
	// real keys need.
	MaxKeyBytes int
	// MaxValueBytes bounds a value. A value travels in one Raft entry or
	// Paxos slot, so it bounds message and log sizes; larger objects belong
	// in a blob store with the key here.
	MaxValueBytes int
	// MaxRequestBytes bounds a request body on the wire (value + key +
	// envelope), checked before decoding.
	MaxRequestBytes int
	// MaxScanKeys bounds one page of a scan: the answering node holds the
	// page in memory while merging the ranges.
	MaxScanKeys int
}

// DefaultLimits are SPEC.md's defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxKeyBytes:     4 << 10,
		MaxValueBytes:   1 << 20,
		MaxRequestBytes: 2 << 20,
		MaxScanKeys:     10000,
	}
}

// Validate checks the rules across fields.
func (l Limits) Validate() error {
	if l.MaxKeyBytes < 1 || l.MaxValueBytes < 0 || l.MaxScanKeys < 1 {
		return fmt.Errorf("kv: limits must be positive: %+v", l)
	}
	if l.MaxRequestBytes < l.MaxKeyBytes+l.MaxValueBytes {
		return fmt.Errorf("kv: MaxRequestBytes %d is below MaxKeyBytes %d + MaxValueBytes %d: the largest legal put could not be sent",
			l.MaxRequestBytes, l.MaxKeyBytes, l.MaxValueBytes)
	}
	return nil
}

// ErrInvalidArgument marks requests that break a rule of the API: bad keys,
// values, names, geometries. The API maps it to InvalidArgument.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrLimit marks requests over a configured limit. The API maps it to
// ResourceExhausted (HTTP 413).
var ErrLimit = errors.New("over a limit")

// CheckKey checks a key against the rules and limits.
func (l Limits) CheckKey(key []byte) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("%w: key is empty", ErrInvalidArgument)
	case len(key) > l.MaxKeyBytes:
		return fmt.Errorf("%w: key is %d bytes, the limit is %d (MaxKeyBytes)", ErrLimit, len(key), l.MaxKeyBytes)
	}
	return nil
}

// CheckValue checks a value against the limits.
func (l Limits) CheckValue(value []byte) error {
	if len(value) > l.MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, the limit is %d (MaxValueBytes)", ErrLimit, len(value), l.MaxValueBytes)
	}
	return nil
}

// MaxIdempotencyKeyBytes bounds an idempotency key. A key is kept with
// the request's answer for the dedup window in the range's state, so its
// size costs in every entry and snapshot; a UUID or a session and sequence
// number need far less.
const MaxIdempotencyKeyBytes = 128

// CheckIdempotencyKey checks an idempotency key (empty means none).
func (l Limits) CheckIdempotencyKey(k []byte) error {
	if len(k) > MaxIdempotencyKeyBytes {
		return fmt.Errorf("%w: idempotency key is %d bytes, the limit is %d (MaxIdempotencyKeyBytes)", ErrLimit, len(k), MaxIdempotencyKeyBytes)
	}
	return nil
}

// keyspaceName is SPEC.md's rule for keyspace names.
var keyspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CheckKeyspaceName checks a keyspace name.
func CheckKeyspaceName(name string) error {
	if !keyspaceName.MatchString(name) {
		return fmt.Errorf("%w: keyspace name %q: want [a-z0-9][a-z0-9_-]{0,62}", ErrInvalidArgument, name)
	}
	return nil
}
