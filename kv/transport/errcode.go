package transport

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/command"
	"github.com/quorumkv/quorumkv/kv/store"
)

// NotFoundHeader, on a NotFound error (a Connect error's metadata, or a
// REST 404's header), says what was not found: "keyspace" or "key". A
// client tells a misspelled keyspace from a missing key by it; kvctl
// exits 3 for a missing key only.
const NotFoundHeader = "Quorumkv-Not-Found"

// QuorumHeader, on an Unavailable error (Connect metadata or a REST
// header), says "lost" when the node cannot reach a quorum of the range's
// replicas (NoQuorumError): not a passing election. A client may still
// try other nodes (they may be on the other side of a partition), but not
// wait for this one.
const QuorumHeader = "Quorumkv-Quorum"

// NotFoundWhat returns what err did not find ("keyspace", "key"), or "".
// An error forwarded from another node says it in its metadata.
func NotFoundWhat(err error) string {
	switch {
	case errors.Is(err, catalog.ErrNoKeyspace):
		return "keyspace"
	case errors.Is(err, catalog.ErrKeyNotFound):
		return "key"
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) && cerr.Code() == connect.CodeNotFound {
		return cerr.Meta().Get(NotFoundHeader)
	}
	return ""
}

func ToConnect(err error) error {
	if err == nil {
		return nil
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return err
	}
	cerr = connect.NewError(ConnectCode(err), err)
	if what := NotFoundWhat(err); what != "" {
		cerr.Meta().Set(NotFoundHeader, what)
	}
	var nq *store.NoQuorumError
	if errors.As(err, &nq) {
		cerr.Meta().Set(QuorumHeader, "lost")
	}
	if errors.Is(err, store.ErrKeyMoved) {
		cerr.Meta().Set(MovedHeader, "true")
	}
	return cerr
}

// MovedHeader, on an Unavailable error, says "true" when the range the
// request reached split and no longer holds its key (store.ErrKeyMoved):
// nothing was done, and the request may be routed again once the
// catalog names the key's new range.
const MovedHeader = "Quorumkv-Moved"

// KeyMoved reports whether err, here or forwarded from another node, is
// store.ErrKeyMoved.
func KeyMoved(err error) bool {
	var cerr *connect.Error
	return errors.Is(err, store.ErrKeyMoved) || errors.As(err, &cerr) && cerr.Meta().Get(MovedHeader) == "true"
}

// ConnectCode maps the node's errors to Connect codes (SPEC.md "Errors").
func ConnectCode(err error) connect.Code {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Code() // an answer forwarded from another node
	}
	switch {
	case errors.Is(err, catalog.ErrUnauthenticated):
		return connect.CodeUnauthenticated
	case errors.Is(err, catalog.ErrPermissionDenied):
		return connect.CodePermissionDenied
	case errors.Is(err, catalog.ErrInvalidArgument):
		return connect.CodeInvalidArgument
	case errors.Is(err, catalog.ErrLimit):
		return connect.CodeResourceExhausted
	case errors.Is(err, catalog.ErrNoKeyspace), errors.Is(err, catalog.ErrKeyNotFound), errors.Is(err, catalog.ErrNoUser), errors.Is(err, catalog.ErrNoRole):
		return connect.CodeNotFound
	case errors.Is(err, catalog.ErrExists):
		return connect.CodeAlreadyExists
	case errors.Is(err, command.ErrConditionFailed), errors.Is(err, catalog.ErrNotEnoughNodes), errors.Is(err, catalog.ErrRemoved), errors.Is(err, catalog.ErrNodeAlive):
		return connect.CodeFailedPrecondition
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrStopped):
		return connect.CodeUnavailable
	case errors.Is(err, catalog.ErrNotServed):
		return connect.CodeUnimplemented
	case errors.Is(err, store.ErrOutcomeUnknown):
		return connect.CodeUnknown
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	}
	return connect.CodeInternal
}

// QuorumLost reports whether a forwarded error says its node cannot
// reach a quorum.
func QuorumLost(err error) bool {
	var cerr *connect.Error
	return errors.As(err, &cerr) && cerr.Meta().Get(QuorumHeader) == "lost"
}

// RetrySafeHeader, on an Unknown error (outcome unknown), says "true" when
// sending the request again with the same idempotency key is safe: the
// keyspace applies it at most once (kv/store/dedup.go). The Go client then retries.
const RetrySafeHeader = "Quorumkv-Retry-Safe"

// RetryHeader, set to "true" on a write request, says that its client
// sent it before, with the same idempotency key, and did not learn what
// became of it. A compare-and-swap in an eventual keyspace that cannot
// find the first attempt in the key's swap history then answers "outcome
// unknown" rather than "condition failed" (kv/eventual/eventual_cas.go).
const RetryHeader = "Quorumkv-Retry"

// WriteError is toConnect for a write's error; an outcome unknown is
// marked safe to retry with the same idempotency key when retrySafe.
func WriteError(err error, retrySafe bool) error {
	cerr := ToConnect(err)
	var ce *connect.Error
	if retrySafe && !errors.Is(err, catalog.ErrSwapForgotten) && connect.CodeOf(cerr) == connect.CodeUnknown && errors.As(cerr, &ce) {
		ce.Meta().Set(RetrySafeHeader, "true")
	}
	return cerr
}
