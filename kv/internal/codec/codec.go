package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt marks bytes that do not decode: a bug or a damaged disk,
// never user input (requests are protobuf, checked at the API).
var ErrCorrupt = errors.New("kv: corrupt encoding")

// Enc appends fields to a byte slice: uvarints, and byte strings prefixed
// by their uvarint length. The formats built on it (log entries, commands,
// peer messages) start with a version byte so they can evolve.
type Enc struct{ Buf []byte }

func (e *Enc) Uint(v uint64)   { e.Buf = binary.AppendUvarint(e.Buf, v) }
func (e *Enc) Byte(v byte)     { e.Buf = append(e.Buf, v) }
func (e *Enc) Bytes(v []byte)  { e.Uint(uint64(len(v))); e.Buf = append(e.Buf, v...) }
func (e *Enc) String(v string) { e.Uint(uint64(len(v))); e.Buf = append(e.Buf, v...) }
func (e *Enc) Bool(v bool)     { e.Byte(boolByte(v)) }
func (e *Enc) Int(v int)       { e.Uint(uint64(v)) }
func boolByte(v bool) (b byte) {
	if v {
		b = 1
	}
	return b
}

// Dec reads what enc wrote. The first error sticks; check err at the end.
type Dec struct {
	Buf []byte
	Err error
}

func (d *Dec) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: truncated or bad %s", ErrCorrupt, what)
	}
	d.Buf = nil
}

func (d *Dec) Uint() uint64 {
	v, n := binary.Uvarint(d.Buf)
	if n <= 0 {
		d.Fail("uvarint")
		return 0
	}
	d.Buf = d.Buf[n:]
	return v
}

func (d *Dec) Byte() byte {
	if len(d.Buf) < 1 {
		d.Fail("byte")
		return 0
	}
	v := d.Buf[0]
	d.Buf = d.Buf[1:]
	return v
}

// Bytes returns a slice aliasing the input; callers that keep it past the
// input's lifetime copy it.
func (d *Dec) Bytes() []byte {
	n := d.Uint()
	if n > uint64(len(d.Buf)) {
		d.Fail("length")
		return nil
	}
	if n == 0 {
		return nil // as encoded from nil or empty: callers treat both alike
	}
	v := d.Buf[:n:n]
	d.Buf = d.Buf[n:]
	return v
}

func (d *Dec) String() string { return string(d.Bytes()) }
func (d *Dec) Bool() bool     { return d.Byte() != 0 }

func (d *Dec) Int() int {
	v := d.Uint()
	if v > math.MaxInt32 {
		d.Fail("int")
		return 0
	}
	return int(v)
}

// Count reads a count of elements that follow, each at least minBytes
// long, refusing one above limit or above what the rest of the input can
// hold: a count read from the input never sizes an allocation beyond it.
func (d *Dec) Count(what string, limit, minBytes int) int {
	n := d.Int()
	if n > limit || n > len(d.Buf)/max(minBytes, 1) {
		d.Fail(what)
		return 0
	}
	return n
}

// Done checks that everything was read and nothing went wrong.
func (d *Dec) Done() error {
	if d.Err == nil && len(d.Buf) != 0 {
		d.Err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.Buf))
	}
	return d.Err
}
