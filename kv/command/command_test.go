package command

import (
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

func TestCommandRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := Command{ID: rapid.Uint64().Draw(t, "id"), Op: Op(rapid.IntRange(1, 4).Draw(t, "op")), Key: genCommandBytes(t, "key"), Value: genCommandBytes(t, "value")}
		if c.Op == OpCAS {
			c.Cond = Cond(rapid.IntRange(1, 3).Draw(t, "cond"))
			c.ExpectValue = genCommandBytes(t, "expect")
			c.ExpectVersion = rapid.Uint64().Draw(t, "ev")
		}
		got, err := DecodeCommand(c.Encode())
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %+v, %v; want %+v", got, err, c)
		}
	})
}

// genCommandBytes draws a byte string of up to 40 bytes, nil when empty.
func genCommandBytes(t *rapid.T, label string) []byte {
	if b := rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, label); len(b) > 0 {
		return b
	}
	return nil
}
