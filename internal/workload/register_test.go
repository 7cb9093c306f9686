package workload

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/client"
)

func TestWriteOutcome(t *testing.T) {
	unavailable := connect.NewWireError(connect.CodeUnavailable, errors.New("range 3 cannot commit"))
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"success", nil, Done},
		{"the node's own Unavailable", unavailable, Failed},
		{"no node could serve", fmt.Errorf("%w in time (%w)", client.ErrNoNode, context.DeadlineExceeded), Failed},
		// The client's outcome unknown wraps every attempt's error: an
		// Unavailable of the last one does not undo the first.
		{"outcome unknown after an Unavailable", fmt.Errorf("%w (%w): the write may have been applied; last errors: %w",
			client.ErrOutcomeUnknown, context.DeadlineExceeded, unavailable), Unknown},
		{"a deadline", context.DeadlineExceeded, Unknown},
		{"the server's Unknown", connect.NewWireError(connect.CodeUnknown, errors.New("outcome unknown")), Unknown},
	} {
		if got := WriteOutcome(tc.err); got != tc.want {
			t.Errorf("%s: WriteOutcome(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
