package transport

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/store"
)

// connectCode maps the node's errors to Connect codes (SPEC.md "Errors").
func ConnectCode(err error) connect.Code {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr.Code() // an answer forwarded from another node
	}
	switch {
	case errors.Is(err, catalog.ErrInvalidArgument):
		return connect.CodeInvalidArgument
	case errors.Is(err, catalog.ErrLimit):
		return connect.CodeResourceExhausted
	case errors.Is(err, catalog.ErrNoKeyspace), errors.Is(err, catalog.ErrKeyNotFound):
		return connect.CodeNotFound
	case errors.Is(err, catalog.ErrExists):
		return connect.CodeAlreadyExists
	case errors.Is(err, store.ErrConditionFailed), errors.Is(err, catalog.ErrNotEnoughNodes):
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
