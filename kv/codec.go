package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt marks bytes that do not decode: a bug or a damaged disk,
// never user input (requests are protobuf, checked at the API).
var ErrCorrupt = errors.New("kv: corrupt encoding")

// enc appends fields to a byte slice: uvarints, and byte strings prefixed
// by their uvarint length. The formats built on it (log entries, commands,
// peer messages) start with a version byte so they can evolve.
type enc struct{ b []byte }

func (e *enc) uint(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) byte(v byte)     { e.b = append(e.b, v) }
func (e *enc) bytes(v []byte)  { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) string(v string) { e.uint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) bool(v bool)     { e.byte(boolByte(v)) }
func (e *enc) int(v int)       { e.uint(uint64(v)) }
func boolByte(v bool) (b byte) {
	if v {
		b = 1
	}
	return b
}

// dec reads what enc wrote. The first error sticks; check err at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// bytes returns a slice aliasing the input; callers that keep it past the
// input's lifetime copy it.
func (d *dec) bytes() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	if n == 0 {
		return nil // as encoded from nil or empty: callers treat both alike
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) string() string { return string(d.bytes()) }
func (d *dec) bool() bool     { return d.byte() != 0 }

func (d *dec) int() int {
	v := d.uint()
	if v > math.MaxInt32 {
		d.fail("int")
		return 0
	}
	return int(v)
}

// done checks that everything was read and nothing went wrong.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return d.err
}
