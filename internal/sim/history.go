package sim

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// History records the operations clients invoke and what they return, for
// a linearizability check. Each operation has a call time and a return
// time; the checker then asks whether every operation can be placed at one
// instant inside its interval such that the results match a single copy of
// the data.
//
// History is safe for concurrent use, so multi-process tests on the wall
// clock can share one (NewHistoryClock); in the simulator it is driven from
// the simulation goroutine like everything else.
type History struct {
	now   func() time.Duration
	trace func(TraceEvent) // nil outside the simulator

	mu struct {
		sync.Mutex
		ops     []*histOp
		clients map[NodeID]int // client -> dense porcupine ClientId, in order of first use
		last    int64          // last timestamp handed out
	}
}

type opState uint8

const (
	opPending opState = iota
	opReturned
	opUnknown
	opFailed
)

type histOp struct {
	client NodeID
	in     KVInput
	out    KVOutput
	call   int64
	ret    int64
	state  opState
}

// Op is one invoked operation of a History. Exactly one of Return, Unknown
// or Fail should be called on it; an operation still pending when the
// history is checked counts as Unknown.
type Op struct {
	h  *History
	op *histOp
}

// NewHistory returns a history timed by s's virtual clock, which also
// traces every call and return in s's trace.
func NewHistory(s *Sim) *History {
	h := NewHistoryClock(s.Now)
	h.trace = s.record
	return h
}

// NewHistoryClock returns a history timed by now, e.g. the wall time since
// a multi-process test started.
func NewHistoryClock(now func() time.Duration) *History {
	h := &History{now: now}
	h.mu.clients = make(map[NodeID]int)
	return h
}

// stamp returns a timestamp strictly after every earlier one. In the
// simulator many events share one virtual instant, yet they happen in a
// definite order; porcupine treats equal times as concurrent, which would
// let it accept a history in which a read started after a write returned
// (at the same instant) and missed it. Bumping by 1ns keeps the real order.
func (h *History) stamp() int64 {
	ts := max(int64(h.now()), h.mu.last+1)
	h.mu.last = ts
	return ts
}

// Invoke records that client called in, now. Each client must have at most
// one operation pending at a time: that is what makes its operations
// ordered, and what porcupine's per-client view shows.
func (h *History) Invoke(client NodeID, in KVInput) *Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.mu.clients[client]; !ok {
		h.mu.clients[client] = len(h.mu.clients)
	}
	op := &histOp{client: client, in: in, call: h.stamp()}
	h.mu.ops = append(h.mu.ops, op)
	h.emit(TraceEvent{Kind: EvCall, From: client, Text: in.String()})
	return &Op{h: h, op: op}
}

func (h *History) emit(e TraceEvent) {
	if h.trace != nil {
		h.trace(e)
	}
}

func (o *Op) finish(state opState, out KVOutput, ret func() int64) {
	h := o.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if o.op.state != opPending {
		panic(fmt.Sprintf("sim: operation %v finished twice", o.op.in))
	}
	o.op.state, o.op.out, o.op.ret = state, out, ret()
	h.emit(TraceEvent{Kind: EvReturn, From: o.op.client, Text: describeOp(o.op.in, out)})
}

// Return records that the operation completed with out, now.
func (o *Op) Return(out KVOutput) {
	out.Unknown = false
	o.finish(opReturned, out, o.h.stamp)
}

// Unknown records that the client gave up (timed out, lost its
// connection): the operation may or may not have taken effect, now or at
// any later time. Porcupine models this as an operation that never returns
// (return time +infinity) whose output matches anything.
func (o *Op) Unknown() {
	o.finish(opUnknown, KVOutput{Unknown: true}, func() int64 { return math.MaxInt64 })
}

// Fail records that the operation certainly did not take effect (the
// server refused it before doing anything); it is left out of the check.
func (o *Op) Fail() {
	o.finish(opFailed, KVOutput{}, func() int64 { return 0 })
}

// Len returns the number of operations invoked.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mu.ops)
}

// Operations returns the history in porcupine's form. Pending operations
// are given unknown outcomes; failed ones are left out.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := make([]porcupine.Operation, 0, len(h.mu.ops))
	for _, op := range h.mu.ops {
		out, ret := op.out, op.ret
		switch op.state {
		case opFailed:
			continue
		case opPending:
			out, ret = KVOutput{Unknown: true}, math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{
			ClientId: h.mu.clients[op.client],
			Input:    op.in,
			Call:     op.call,
			Output:   out,
			Return:   ret,
			Metadata: fmt.Sprintf("n%d", op.client),
		})
	}
	return ops
}
