package command

import (
	"testing"

	"github.com/quorumkv/quorumkv/internal/fuzzcheck"
)

// DecodeCommand (every log entry a range applies) and DecodeValue (every
// stored value) never panic and allocate in proportion to their input;
// what they accept encodes back to the same; `go test -fuzz FuzzDecoders
// ./kv/command/` searches further than the seeds.
func FuzzDecoders(f *testing.F) {
	f.Add((&Command{Op: OpPut, Key: []byte("k"), Value: []byte("v")}).Encode())
	f.Add((&Command{Op: OpDelete, Key: []byte("k")}).Encode())
	f.Add(Value{Data: []byte("v")}.Encode())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzcheck.Bounded(t, "DecodeCommand", b, func(b []byte) {
			if c, err := DecodeCommand(b); err == nil {
				if again, err := DecodeCommand(c.Encode()); err != nil || again.Op != c.Op || string(again.Key) != string(c.Key) {
					t.Fatalf("an accepted command does not round-trip: %+v, %v", again, err)
				}
			}
		})
		fuzzcheck.Bounded(t, "DecodeValue", b, func(b []byte) { DecodeValue(b) })
	})
}
