package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/kv/consensus"

	"github.com/quorumkv/quorumkv/kv/catalog"

	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

// op is what a command does to one key.
type op byte

const (
	opPut op = 1 + iota
	opDelete
	// opCAS writes only if the key is as the condition says, decided when
	// the command is applied: every replica applies the same log in the
	// same order, so every replica decides the same.
	opCAS
	// opCatalog changes the catalog (range meta only); value is a JSON
	// catalogOp.
	opCatalog
)

// cond is a compare-and-swap condition.
type cond byte

const (
	condValue   cond = 1 + iota // the key holds expectValue
	condAbsent                  // the key does not exist
	condVersion                 // the key was written at expectVersion
	condExists                  // the key exists
)

// command is a write to a range, as it travels in a log entry.
type command struct {
	// id identifies the proposal on the node that proposed it, so the
	// applying store can answer the waiting client; 0 when nobody waits.
	id    uint64
	op    op
	key   []byte
	value []byte

	cond          cond
	expectValue   []byte
	expectVersion uint64
	// del: an opCAS deletes the key when its condition holds, instead of
	// writing value.
	del bool

	// idemKey names the client's request across retries; empty for none.
	idemKey []byte
	// at and horizon are the proposer's time and dedup horizon, in Unix
	// nanoseconds (see dedup.go); 0 in commands that predate them.
	at, horizon int64
}

// commandV2 is the version byte of commands with the fields added after
// codecV1 (the delete flag, the idempotency key and the dedup stamps). Logs written before
// it hold codecV1 commands, which still decode.
const commandV2 = 2

func (c *command) encode() []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(c.key)+len(c.value)+len(c.expectValue)+len(c.idemKey)+32)}
	e.Byte(commandV2)
	e.Uint(c.id)
	e.Byte(byte(c.op))
	e.Bytes(c.key)
	e.Bytes(c.value)
	if c.op == opCAS {
		e.Byte(byte(c.cond))
		e.Bytes(c.expectValue)
		e.Uint(c.expectVersion)
		e.Bool(c.del)
	}
	e.Bytes(c.idemKey)
	e.Uint(uint64(max(c.at, 0)))
	e.Uint(uint64(max(c.horizon, 0)))
	return e.Buf
}

func decodeCommand(b []byte) (command, error) {
	d := codec.Dec{Buf: b}
	v := d.Byte()
	if v != consensus.CodecV1 && v != commandV2 {
		d.Fail("command version")
	}
	c := command{id: d.Uint(), op: op(d.Byte()), key: d.Bytes(), value: d.Bytes()}
	switch c.op {
	case opPut, opDelete, opCatalog:
	case opCAS:
		c.cond = cond(d.Byte())
		c.expectValue = d.Bytes()
		c.expectVersion = d.Uint()
		if c.cond < condValue || c.cond > condExists {
			d.Fail("condition")
		}
		if v == commandV2 {
			c.del = d.Bool()
		}
	default:
		d.Fail("op")
	}
	if v == commandV2 {
		c.idemKey = d.Bytes()
		c.at, c.horizon = int64(d.Uint()), int64(d.Uint())
		if c.at < 0 || c.horizon < 0 {
			d.Fail("dedup time")
		}
	}
	return c, d.Done()
}

// setCondition makes c's condition expect, of a key in range rangeID.
func (c *command) setCondition(rangeID uint64, expect catalog.Expect) error {
	switch {
	case expect.Absent:
		c.cond = condAbsent
	case expect.Exists:
		c.cond = condExists
	case expect.Version != "":
		v, err := parseVersion(rangeID, expect.Version)
		if err != nil {
			return err
		}
		c.cond, c.expectVersion = condVersion, v
	default:
		c.cond, c.expectValue = condValue, expect.Value
	}
	return nil
}

// value is a stored value and the version (Raft log index or Paxos slot)
// that wrote it.
type value struct {
	version uint64
	data    []byte
}

func (v value) encode() []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(v.data)+10)}
	e.Byte(consensus.CodecV1)
	e.Uint(v.version)
	e.Buf = append(e.Buf, v.data...)
	return e.Buf
}

func decodeValue(b []byte) (value, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != consensus.CodecV1 {
		d.Fail("value version")
	}
	v := value{version: d.Uint()}
	if d.Err != nil {
		return value{}, d.Err
	}
	v.data = d.Buf
	return v, nil
}

// ErrConditionFailed marks a compare-and-swap whose condition did not
// hold; nothing was written. The API maps it to FailedPrecondition (412).
var ErrConditionFailed = errors.New("condition failed")

// result is what applying a command tells the client that proposed it.
type result struct {
	version uint64
	existed bool
	// id is what a catalog command assigned (a node's ID).
	id  uint64
	err error
}

// apply evaluates c against the key's current value (found says whether
// it exists) at log index index, and returns the new value to store (nil
// to delete, same pointer as cur to leave it) and the client's result.
func (c *command) Apply(rangeID, index uint64, cur *value) (next *value, res result) {
	res.existed = cur != nil
	switch c.op {
	case opPut:
		return &value{version: index, data: c.value}, result{version: index, existed: cur != nil}
	case opDelete:
		return nil, result{version: index, existed: cur != nil}
	}
	// opCAS
	ok := false
	switch c.cond {
	case condAbsent:
		ok = cur == nil
	case condValue:
		ok = cur != nil && bytes.Equal(cur.data, c.expectValue)
	case condVersion:
		ok = cur != nil && cur.version == c.expectVersion
	case condExists:
		ok = cur != nil
	}
	if !ok {
		return cur, result{existed: cur != nil, err: c.conditionError(rangeID, cur)}
	}
	if c.del {
		return nil, result{version: index, existed: true}
	}
	return &value{version: index, data: c.value}, result{version: index, existed: cur != nil}
}

// conditionError says what the key held instead, so a client that lost
// the flash sale learns who has the phone.
func (c *command) conditionError(rangeID uint64, cur *value) error {
	var want string
	switch c.cond {
	case condAbsent:
		want = "to be absent"
	case condValue:
		want = fmt.Sprintf("to hold %q", abbreviate(c.expectValue))
	case condVersion:
		want = "to be at version " + formatVersion(rangeID, c.expectVersion)
	case condExists:
		want = "to exist"
	}
	if cur == nil {
		return fmt.Errorf("%w: expected key %q %s, but it does not exist", ErrConditionFailed, abbreviate(c.key), want)
	}
	return fmt.Errorf("%w: expected key %q %s, but it holds %q at version %s",
		ErrConditionFailed, abbreviate(c.key), want, abbreviate(cur.data), formatVersion(rangeID, cur.version))
}

// abbreviate keeps error messages short when keys and values are large.
func abbreviate(b []byte) string {
	const max = 64
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..."
}

// Versions are shown to clients as "RANGE.INDEX": the range and the log
// index (Raft) or slot (Multi-Paxos) of the write. Opaque to clients, but
// readable to operators.
func formatVersion(rangeID, index uint64) string {
	return strconv.FormatUint(rangeID, 10) + "." + strconv.FormatUint(index, 10)
}

// parseVersion reads a version of range rangeID.
func parseVersion(rangeID uint64, s string) (uint64, error) {
	r, idx, ok := strings.Cut(s, ".")
	rid, err1 := strconv.ParseUint(r, 10, 64)
	index, err2 := strconv.ParseUint(idx, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: version %q: want RANGE.INDEX as returned by a write", catalog.ErrInvalidArgument, s)
	}
	if rid != rangeID {
		return 0, fmt.Errorf("%w: version %q belongs to range %d, the key is in range %d", catalog.ErrInvalidArgument, s, rid, rangeID)
	}
	return index, nil
}
