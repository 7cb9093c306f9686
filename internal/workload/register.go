// Package workload holds the client workloads that the multi-process
// tests (e2e/) and the container fault suite (e2e/faults/) run against
// real kvd nodes through the Go client, recording what each operation was
// told so that checkers can judge the history.
package workload

import (
	"context"
	"errors"
	"math/rand/v2"

	"connectrpc.com/connect"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/sim"
)

// Outcome is what a client learned of an operation.
type Outcome int

const (
	// Done: it happened, and the client was told so.
	Done Outcome = iota
	// Failed: it did not happen (a read that failed, a node's own
	// Unavailable, no node to send to).
	Failed
	// Unknown: it may or may not have happened (a connection lost
	// mid-request, a deadline): the checker must allow both.
	Unknown
)

// Op is what RegisterOp ran and learned.
type Op struct {
	Key     string
	Write   bool // a put or a compare-and-swap, not a get
	Outcome Outcome
	Err     error // what the client returned (a failed condition included)
}

// RegisterOp runs one random operation on a key of keyspace ks through cl,
// in the manner of a register per key (get, put, put-if-absent, or a
// compare-and-swap against the value read just before), and records it in
// h under the key ks/key, for porcupine. value is the value it may write;
// give every operation its own.
func RegisterOp(ctx context.Context, h *sim.History, id sim.NodeID, cl *client.Client, rng *rand.Rand, ks string, keys []string,
	value string) Op {
	key := keys[rng.IntN(len(keys))]
	model := ks + "/" + key
	switch rng.IntN(4) {
	case 0:
		op := h.Invoke(id, sim.KVGet(model))
		kv, err := cl.Get(ctx, ks, []byte(key), client.Quorum{})
		switch {
		case err == nil:
			op.Return(sim.KVOutput{Value: string(kv.Value), Found: true})
			return Op{Key: key, Outcome: Done}
		case errors.Is(err, client.ErrNotFound):
			op.Return(sim.KVOutput{})
			return Op{Key: key, Outcome: Done}
		default:
			op.Fail() // a read has no effect
			return Op{Key: key, Outcome: Failed, Err: err}
		}
	case 1:
		op := h.Invoke(id, sim.KVPut(model, value))
		_, err := cl.Put(ctx, ks, []byte(key), []byte(value), client.Quorum{})
		return Op{Key: key, Write: true, Outcome: FinishWrite(op, err, sim.KVOutput{}), Err: err}
	case 2:
		op := h.Invoke(id, sim.KVCASAbsent(model, value))
		_, err := cl.CompareAndSwap(ctx, ks, []byte(key), client.Expect{Absent: true}, []byte(value))
		return Op{Key: key, Write: true, Outcome: FinishCAS(op, err), Err: err}
	default:
		// Compare against a value read just before: often still current.
		kv, err := cl.Get(ctx, ks, []byte(key), client.Quorum{})
		if err != nil {
			return Op{Key: key, Outcome: Failed, Err: err}
		}
		op := h.Invoke(id, sim.KVCAS(model, string(kv.Value), value))
		_, err = cl.CompareAndSwap(ctx, ks, []byte(key), client.Expect{Value: kv.Value}, []byte(value))
		return Op{Key: key, Write: true, Outcome: FinishCAS(op, err), Err: err}
	}
}

// FinishCAS records the end of a compare-and-swap: a failed condition is
// an answer (it did not swap), like a success.
func FinishCAS(op *sim.Op, err error) Outcome {
	if errors.Is(err, client.ErrConditionFailed) {
		op.Return(sim.KVOutput{Swapped: false})
		return Done
	}
	return FinishWrite(op, err, sim.KVOutput{Swapped: true})
}

// FinishWrite records the end of a write that returned err, and ok if it
// succeeded.
func FinishWrite(op *sim.Op, err error, ok sim.KVOutput) Outcome {
	switch out := WriteOutcome(err); out {
	case Done:
		op.Return(ok)
		return out
	case Failed:
		op.Fail()
		return out
	default:
		op.Unknown()
		return out
	}
}

// WriteOutcome classifies the error of a write (nil included). A node's
// own Unavailable, or the client finding no node to send to, mean nothing
// was written; anything else (a connection lost mid-request, a deadline,
// Unknown) may have been. The client's "outcome unknown" is tested first:
// it wraps the errors of every attempt, where an Unavailable of a later
// attempt says nothing of an earlier one.
func WriteOutcome(err error) Outcome {
	switch {
	case err == nil:
		return Done
	case errors.Is(err, client.ErrOutcomeUnknown):
		return Unknown
	case errors.Is(err, client.ErrNoNode),
		connect.IsWireError(err) && connect.CodeOf(err) == connect.CodeUnavailable:
		return Failed
	default:
		return Unknown
	}
}
