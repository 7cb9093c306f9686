package sim

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is the kind of a key/value operation.
type OpKind uint8

// Operation kinds of the key/value register model.
const (
	OpGet OpKind = iota + 1
	OpPut
	OpDelete
	OpCAS // compare-and-swap: set Value if the key holds Expect (or is absent, with ExpectAbsent)
)

// KVInput is an operation on one key, as a client invoked it. Build it with
// KVGet, KVPut, KVDelete, KVCAS or KVCASAbsent.
type KVInput struct {
	Op           OpKind
	Key          string
	Value        string // OpPut, OpCAS: the value written
	Expect       string // OpCAS: the value the key must hold
	ExpectAbsent bool   // OpCAS: the key must be absent instead
}

// KVGet reads key.
func KVGet(key string) KVInput { return KVInput{Op: OpGet, Key: key} }

// KVPut writes value to key.
func KVPut(key, value string) KVInput { return KVInput{Op: OpPut, Key: key, Value: value} }

// KVDelete removes key.
func KVDelete(key string) KVInput { return KVInput{Op: OpDelete, Key: key} }

// KVCAS writes value to key if key holds expect.
func KVCAS(key, expect, value string) KVInput {
	return KVInput{Op: OpCAS, Key: key, Expect: expect, Value: value}
}

// KVCASAbsent writes value to key if key is absent (create-if-not-exists).
func KVCASAbsent(key, value string) KVInput {
	return KVInput{Op: OpCAS, Key: key, ExpectAbsent: true, Value: value}
}

func (in KVInput) String() string {
	switch in.Op {
	case OpGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case OpPut:
		return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case OpDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	case OpCAS:
		expect := fmt.Sprintf("%q", in.Expect)
		if in.ExpectAbsent {
			expect = "absent"
		}
		return fmt.Sprintf("cas(%s, %s -> %q)", in.Key, expect, in.Value)
	}
	return fmt.Sprintf("op%d(%s)", in.Op, in.Key)
}

// KVOutput is what an operation returned. Put and Delete return nothing
// checked (KVOutput{}).
type KVOutput struct {
	Value   string // OpGet: the value read, when Found
	Found   bool   // OpGet: the key was present
	Swapped bool   // OpCAS: the swap happened
	// Unknown marks an operation whose outcome the client never learned.
	// Set by Op.Unknown; it matches any result.
	Unknown bool
}

func describeOp(in KVInput, out KVOutput) string {
	switch {
	case out.Unknown:
		return in.String() + " -> ?"
	case in.Op == OpGet && out.Found:
		return fmt.Sprintf("%v -> %q", in, out.Value)
	case in.Op == OpGet:
		return in.String() + " -> absent"
	case in.Op == OpCAS:
		return fmt.Sprintf("%v -> %t", in, out.Swapped)
	}
	return in.String() + " -> ok"
}

// kvState is the model's state for one key (the history is partitioned by
// key, so the model only ever sees one). It is comparable, so porcupine's
// default == equality works.
type kvState struct {
	present bool
	value   string
}

func kvStep(state, input, output any) (bool, any) {
	st, in, out := state.(kvState), input.(KVInput), output.(KVOutput)
	switch in.Op {
	case OpGet:
		if out.Unknown {
			return true, st
		}
		return out.Found == st.present && (!st.present || out.Value == st.value), st
	case OpPut:
		return true, kvState{present: true, value: in.Value}
	case OpDelete:
		return true, kvState{}
	case OpCAS:
		// An unknown CAS still has a definite effect once linearized at a
		// point: it swaps if and only if the state there allows it. "It
		// never happened" is covered by linearizing it last.
		swap := (in.ExpectAbsent && !st.present) || (!in.ExpectAbsent && st.present && st.value == in.Expect)
		if !out.Unknown && out.Swapped != swap {
			return false, st
		}
		if swap {
			return true, kvState{present: true, value: in.Value}
		}
		return true, st
	}
	panic(fmt.Sprintf("sim: unknown operation kind %d", in.Op))
}

// partitionByKey splits a history into one history per key, in order of
// each key's first operation (porcupine checks them independently, which
// is what keeps checking fast: linearizability is compositional).
func partitionByKey(ops []porcupine.Operation) [][]porcupine.Operation {
	index := make(map[string]int)
	var parts [][]porcupine.Operation
	for _, op := range ops {
		k := op.Input.(KVInput).Key
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

// KVModel is the porcupine model of a map of independent registers
// supporting get, put, delete and compare-and-swap, partitioned per key.
// Inputs are KVInput, outputs KVOutput.
func KVModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return kvState{} },
		Step:      kvStep,
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(KVInput), output.(KVOutput))
		},
		DescribeState: func(state any) string {
			st := state.(kvState)
			if !st.present {
				return "absent"
			}
			return fmt.Sprintf("%q", st.value)
		},
	}
}

// Check checks the history against KVModel. It returns porcupine.Unknown
// if the check did not finish within timeout (wall time; 0 means none).
func (h *History) Check(timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(KVModel(), h.Operations(), timeout)
}

// DefaultCheckTimeout bounds one linearizability check in the tests. The
// check is NP-hard in the number of concurrent operations per key; a test
// whose histories need longer should use fewer clients or shorter runs.
const DefaultCheckTimeout = 10 * time.Second

// AssertLinearizable checks h and fails t unless it is linearizable. An
// illegal history gets a porcupine visualization (an HTML file; open it in
// a browser) in ArtifactDir, its path in the failure message, along with
// the operations of each offending key around the first one the checker
// could not place. A check that times out fails too: "unknown" must not
// pass silently. It reports whether h passed.
func AssertLinearizable(t testing.TB, h *History, timeout time.Duration) bool {
	t.Helper()
	model := KVModel()
	ops := h.Operations()
	switch porcupine.CheckOperationsTimeout(model, ops, timeout) {
	case porcupine.Ok:
		return true
	case porcupine.Unknown:
		t.Errorf("sim: linearizability check of %d operations timed out after %v (result unknown); "+
			"use fewer concurrent clients or shorter runs, or raise the timeout", len(ops), timeout)
		return false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sim: history of %d operations is not linearizable\n", len(ops))
	_, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	partials := info.PartialLinearizationsOperations()
	for i, part := range partitionByKey(ops) {
		if i < len(partials) {
			describeFailure(&b, part, partials[i])
		}
	}
	path, err := writeArtifact(t, "porcupine.html", func(f *os.File) error {
		return porcupine.Visualize(model, info, f)
	})
	if err != nil {
		fmt.Fprintf(&b, "could not write the visualization: %v", err)
	} else {
		fmt.Fprintf(&b, "visualization: %s", path)
	}
	t.Error(b.String())
	return false
}

// describeFailure lists one key's operations around the first operation
// (in call order) that the longest partial linearization could not place,
// which is where to start reading. Keys whose history linearizes entirely
// are skipped.
func describeFailure(b *strings.Builder, ops []porcupine.Operation, partials [][]porcupine.Operation) {
	var longest []porcupine.Operation
	for _, p := range partials {
		if len(p) > len(longest) {
			longest = p
		}
	}
	if len(longest) == len(ops) {
		return
	}
	placed := make(map[int64]bool, len(longest)) // call stamps are unique per history
	for _, op := range longest {
		placed[op.Call] = true
	}
	stuck := 0
	for i, op := range ops {
		if !placed[op.Call] {
			stuck = i
			break
		}
	}
	// A window of operations: enough to see the writes a stale read missed,
	// short enough to read in a log; the HTML file has everything.
	const before, after = 25, 10
	lo, hi := max(0, stuck-before), min(len(ops), stuck+after+1)
	fmt.Fprintf(b, "key %q: %d operations, at most %d linearizable; no place for operation %d (marked >>); operations %d..%d:\n",
		ops[0].Input.(KVInput).Key, len(ops), len(longest), stuck, lo, hi-1)
	for i := lo; i < hi; i++ {
		op := ops[i]
		mark := "  "
		if i == stuck {
			mark = ">>"
		}
		ret := "never"
		if !op.Output.(KVOutput).Unknown {
			ret = time.Duration(op.Return).String()
		}
		fmt.Fprintf(b, "%s %4d %v [%v, %s] %s\n", mark, i, op.Metadata, time.Duration(op.Call), ret,
			describeOp(op.Input.(KVInput), op.Output.(KVOutput)))
	}
}
