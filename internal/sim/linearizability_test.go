package sim_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// hop builds one operation of a hand-written history; ret < 0 means the
// outcome is unknown.
func hop(client int, in sim.KVInput, out sim.KVOutput, call, ret int64) porcupine.Operation {
	if ret < 0 {
		ret, out = math.MaxInt64, sim.KVOutput{Unknown: true}
	}
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

var (
	none     = sim.KVOutput{}
	absent   = sim.KVOutput{Found: false}
	swapped  = sim.KVOutput{Swapped: true}
	rejected = sim.KVOutput{Swapped: false}
)

func found(v string) sim.KVOutput { return sim.KVOutput{Found: true, Value: v} }

func TestKVModel(t *testing.T) {
	const unknown = -1
	tests := []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"get of a never-written key is absent", true, []porcupine.Operation{
			hop(0, sim.KVGet("x"), absent, 0, 10),
		}},
		{"get invents a value", false, []porcupine.Operation{
			hop(0, sim.KVGet("x"), found("1"), 0, 10),
		}},
		{"get after put", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(1, sim.KVGet("x"), found("1"), 20, 30),
		}},
		{"stale read after a completed put", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(1, sim.KVGet("x"), absent, 20, 30),
		}},
		{"concurrent get may see either", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 100),
			hop(1, sim.KVGet("x"), absent, 10, 20),
			hop(2, sim.KVGet("x"), found("1"), 30, 40),
		}},
		{"new-old inversion", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 100),
			hop(1, sim.KVGet("x"), found("1"), 10, 20),
			hop(2, sim.KVGet("x"), absent, 30, 40),
		}},
		{"get after delete", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVDelete("x"), none, 20, 30),
			hop(1, sim.KVGet("x"), absent, 40, 50),
		}},
		{"delete ignored", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVDelete("x"), none, 20, 30),
			hop(1, sim.KVGet("x"), found("1"), 40, 50),
		}},
		{"cas on the expected value swaps", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "1", "2"), swapped, 20, 30),
			hop(1, sim.KVGet("x"), found("2"), 40, 50),
		}},
		{"cas on another value must not swap", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "7", "2"), swapped, 20, 30),
		}},
		{"cas that should swap reports failure", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "1", "2"), rejected, 20, 30),
		}},
		{"failed cas leaves the value", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "7", "2"), rejected, 20, 30),
			hop(1, sim.KVGet("x"), found("2"), 40, 50),
		}},
		{"cas-absent creates once", true, []porcupine.Operation{
			hop(0, sim.KVCASAbsent("x", "a"), swapped, 0, 100),
			hop(1, sim.KVCASAbsent("x", "b"), rejected, 0, 100),
			hop(2, sim.KVGet("x"), found("a"), 110, 120),
		}},
		{"two cas-absent both succeed: the phone sold twice", false, []porcupine.Operation{
			hop(0, sim.KVCASAbsent("x", "a"), swapped, 0, 100),
			hop(1, sim.KVCASAbsent("x", "b"), swapped, 0, 100),
		}},
		{"cas-absent on a present key", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(1, sim.KVCASAbsent("x", "b"), swapped, 20, 30),
		}},
		{"unknown put may have happened", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, unknown),
			hop(1, sim.KVGet("x"), found("1"), 50, 60),
		}},
		{"unknown put may not have happened", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, unknown),
			hop(1, sim.KVGet("x"), absent, 50, 60),
		}},
		{"unknown put may take effect late", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, unknown),
			hop(1, sim.KVGet("x"), absent, 50, 60),
			hop(1, sim.KVGet("x"), found("1"), 70, 80),
		}},
		{"unknown put takes effect at most once", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, unknown),
			hop(1, sim.KVGet("x"), found("1"), 50, 60),
			hop(1, sim.KVPut("x", "2"), none, 70, 80),
			hop(1, sim.KVGet("x"), found("1"), 90, 100),
		}},
		{"unknown put cannot act before it was called", false, []porcupine.Operation{
			hop(1, sim.KVGet("x"), found("1"), 0, 10),
			hop(0, sim.KVPut("x", "1"), none, 20, unknown),
		}},
		{"unknown delete may have happened", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVDelete("x"), none, 20, unknown),
			hop(1, sim.KVGet("x"), absent, 50, 60),
		}},
		{"unknown cas swaps only if its condition held", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "7", "2"), none, 20, unknown),
			hop(1, sim.KVGet("x"), found("2"), 50, 60),
		}},
		{"unknown cas may have swapped", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(0, sim.KVCAS("x", "1", "2"), none, 20, unknown),
			hop(1, sim.KVGet("x"), found("2"), 50, 60),
		}},
		{"unknown get matches anything", true, []porcupine.Operation{
			hop(0, sim.KVGet("x"), none, 0, unknown),
		}},
		{"keys are independent", true, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(1, sim.KVGet("y"), absent, 20, 30),
			hop(1, sim.KVGet("x"), found("1"), 40, 50),
		}},
		{"a violation on one key fails the history", false, []porcupine.Operation{
			hop(0, sim.KVPut("x", "1"), none, 0, 10),
			hop(1, sim.KVGet("y"), found("1"), 20, 30),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := porcupine.CheckOperationsTimeout(sim.KVModel(), tt.ops, 5*time.Second)
			if want := map[bool]porcupine.CheckResult{true: porcupine.Ok, false: porcupine.Illegal}[tt.ok]; res != want {
				t.Fatalf("got %v, want %v", res, want)
			}
		})
	}
}

func TestHistoryRecorder(t *testing.T) {
	s := sim.New(sim.Config{})
	h := sim.NewHistory(s)
	put := h.Invoke(1, sim.KVPut("x", "1"))
	get := h.Invoke(2, sim.KVGet("x")) // same instant: must still come after
	put.Return(sim.KVOutput{})
	get.Return(found("1"))
	h.Invoke(1, sim.KVPut("x", "2")).Unknown()
	h.Invoke(2, sim.KVPut("x", "3")).Fail()
	h.Invoke(3, sim.KVGet("x")) // left pending
	ops := h.Operations()
	if len(ops) != 4 {
		t.Fatalf("%d operations, want 4 (the failed one left out)", len(ops))
	}
	if !(ops[0].Call < ops[1].Call && ops[1].Call < ops[0].Return && ops[0].Return < ops[1].Return) {
		t.Errorf("timestamps at one instant do not keep the order of events: %+v", ops[:2])
	}
	for _, op := range ops[2:] {
		if op.Return != math.MaxInt64 || !op.Output.(sim.KVOutput).Unknown {
			t.Errorf("unknown or pending operation %v has return %d, output %v", op.Input, op.Return, op.Output)
		}
	}
	if ops[0].ClientId != 0 || ops[1].ClientId != 1 || ops[3].ClientId != 2 {
		t.Errorf("client ids not dense in order of first use")
	}
	if h.Check(time.Second) != porcupine.Ok {
		t.Error("linearizable history rejected")
	}
	defer func() {
		if recover() == nil {
			t.Error("returning an operation twice did not panic")
		}
	}()
	put.Return(sim.KVOutput{})
}

// fakeT captures failures of a helper under test.
type fakeT struct {
	testing.TB
	errs []string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Name() string              { return "TestFake/seed=3" }
func (f *fakeT) Error(args ...any)         { f.errs = append(f.errs, fmt.Sprint(args...)) }
func (f *fakeT) Errorf(s string, a ...any) { f.errs = append(f.errs, fmt.Sprintf(s, a...)) }

func TestAssertLinearizableWritesVisualization(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(sim.EnvArtifacts, dir)
	s := sim.New(sim.Config{})
	h := sim.NewHistory(s)
	h.Invoke(1, sim.KVPut("x", "1")).Return(none)
	s.RunFor(time.Millisecond) //nolint:errcheck // nothing scheduled
	h.Invoke(2, sim.KVGet("x")).Return(absent)

	ft := &fakeT{TB: t}
	if sim.AssertLinearizable(ft, h, time.Second) || len(ft.errs) != 1 {
		t.Fatalf("stale read passed: %v", ft.errs)
	}
	msg := ft.errs[0]
	i := strings.Index(msg, "visualization: ")
	if i < 0 {
		t.Fatalf("no visualization path in %q", msg)
	}
	path := strings.TrimSpace(msg[i+len("visualization: "):])
	if !strings.HasPrefix(path, dir) {
		t.Errorf("visualization %s not in %s", path, dir)
	}
	if html, err := os.ReadFile(path); err != nil || !strings.Contains(string(html), "<html") {
		t.Errorf("visualization unreadable: %v", err)
	}
	if !strings.Contains(msg, `>>    1 n2`) || !strings.Contains(msg, `get(x) -> absent`) {
		t.Errorf("message does not point at the stale read:\n%s", msg)
	}
}
