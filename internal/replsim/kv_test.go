package replsim

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, in := range []sim.KVInput{
		sim.KVGet("k"), sim.KVPut("k", "v"), sim.KVDelete("k"),
		sim.KVCAS("k", "old", "new"), sim.KVCASAbsent("k", ""),
	} {
		c := Command{Client: 101, Seq: 7, In: in}
		got, err := DecodeCommand(EncodeCommand(c))
		if err != nil || got != c {
			t.Errorf("%v: got %+v, %v", in, got, err)
		}
	}
	if _, err := DecodeCommand([]byte{1}); err == nil {
		t.Error("decoding garbage: no error")
	}
}

// TestKVApply: commands take effect once, in order; a retried command
// gets its first result; snapshots keep data, sessions and the hash.
func TestKVApply(t *testing.T) {
	kv := NewKV()
	apply := func(idx, seq uint64, in sim.KVInput) Applied {
		t.Helper()
		a, err := kv.Apply(Entry{Index: idx, Kind: EntryCommand, Data: EncodeCommand(Command{Client: 1, Seq: seq, In: in})})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	apply(1, 1, sim.KVPut("x", "a"))
	if a := apply(2, 2, sim.KVCAS("x", "a", "b")); !a.Out.Swapped || a.Index != 2 {
		t.Fatalf("cas: %+v", a)
	}
	if a := apply(3, 2, sim.KVCAS("x", "a", "c")); !a.Out.Swapped || a.Index != 2 {
		t.Fatalf("a retry must return the first result and index: %+v", a)
	}
	if a := apply(4, 1, sim.KVPut("x", "z")); a.IsCmd {
		t.Fatalf("an older command must have no effect: %+v", a)
	}
	if got := kv.Get("x"); got.Value != "b" {
		t.Fatalf("x = %+v", got)
	}
	if _, err := kv.Apply(Entry{Index: 9, Kind: EntryNoop}); err == nil {
		t.Fatal("a gap was applied")
	}
	back, err := LoadKV(kv.Applied, kv.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if back.Hash != kv.Hash || back.Get("x") != kv.Get("x") || back.Sessions[1] != kv.Sessions[1] {
		t.Fatalf("snapshot round trip: %+v vs %+v", back, kv)
	}
}
