package command

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/kv/catalog"
	"github.com/quorumkv/quorumkv/kv/consensus"
	"github.com/quorumkv/quorumkv/kv/internal/codec"
)

// Op is what a command does to one key.
type Op byte

const (
	OpPut Op = 1 + iota
	OpDelete
	// OpCAS writes only if the key is as the condition says, decided when
	// the command is applied: every replica applies the same log in the
	// same order, so every replica decides the same.
	OpCAS
	// OpCatalog changes the catalog (range meta only); value is a JSON
	// catalog.CatalogOp.
	OpCatalog
	// OpSplit splits the range in two (kv/store/split.go); value is a
	// JSON Split.
	OpSplit
	// OpSubsume stops the range serving, for a merge into its left
	// neighbour (kv/store/merge.go); value is a JSON Subsume.
	OpSubsume
	// OpMerge merges the subsumed right neighbour into the range; value
	// is a JSON Merge.
	OpMerge
)

// Split is the value of an OpSplit command: the range, which its leader
// saw span [Lo, Hi), keeps [Lo, Mid), and range NewRange, whose ID meta
// reserved, takes [Mid, Hi), with the configuration Geometry over Voters
// (the range's Raft or Multi-Paxos configuration when its leader proposed
// the split).
type Split struct {
	Lo       uint64                      `json:"lo"`
	Hi       uint64                      `json:"hi"`
	Mid      uint64                      `json:"mid"`
	NewRange uint64                      `json:"new_range"`
	Geometry string                      `json:"geometry"`
	Voters   []catalog.ReplicaDescriptor `json:"voters"`
}

// Cond is a compare-and-swap condition.
type Cond byte

const (
	CondValue   Cond = 1 + iota // the key holds expectValue
	CondAbsent                  // the key does not exist
	CondVersion                 // the key was written at expectVersion
	CondExists                  // the key exists
)

// Command is a write to a range, as it travels in a log entry.
type Command struct {
	// ID identifies the proposal on the node that proposed it, so the
	// applying store can answer the waiting client; 0 when nobody waits.
	ID    uint64
	Op    Op
	Key   []byte
	Value []byte

	Cond          Cond
	ExpectValue   []byte
	ExpectVersion uint64
	// Del: an opCAS deletes the key when its condition holds, instead of
	// writing value.
	Del bool

	// IdemKey names the client's request across retries; empty for none.
	IdemKey []byte
	// At and horizon are the proposer's time and dedup horizon, in Unix
	// nanoseconds (see kv/store/dedup.go); 0 in commands that predate them.
	At, Horizon int64
}

// commandV2 is the version byte of commands with the fields added after
// codecV1 (the delete flag, the idempotency key and the dedup stamps). Logs written before
// it hold codecV1 commands, which still decode.
const commandV2 = 2

func (c *Command) Encode() []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(c.Key)+len(c.Value)+len(c.ExpectValue)+len(c.IdemKey)+32)}
	e.Byte(commandV2)
	e.Uint(c.ID)
	e.Byte(byte(c.Op))
	e.Bytes(c.Key)
	e.Bytes(c.Value)
	if c.Op == OpCAS {
		e.Byte(byte(c.Cond))
		e.Bytes(c.ExpectValue)
		e.Uint(c.ExpectVersion)
		e.Bool(c.Del)
	}
	e.Bytes(c.IdemKey)
	e.Uint(uint64(max(c.At, 0)))
	e.Uint(uint64(max(c.Horizon, 0)))
	return e.Buf
}

func DecodeCommand(b []byte) (Command, error) {
	d := codec.Dec{Buf: b}
	v := d.Byte()
	if v != consensus.CodecV1 && v != commandV2 {
		d.Fail("command version")
	}
	c := Command{ID: d.Uint(), Op: Op(d.Byte()), Key: d.Bytes(), Value: d.Bytes()}
	switch c.Op {
	case OpPut, OpDelete, OpCatalog, OpSplit, OpSubsume, OpMerge:
	case OpCAS:
		c.Cond = Cond(d.Byte())
		c.ExpectValue = d.Bytes()
		c.ExpectVersion = d.Uint()
		if c.Cond < CondValue || c.Cond > CondExists {
			d.Fail("condition")
		}
		if v == commandV2 {
			c.Del = d.Bool()
		}
	default:
		d.Fail("op")
	}
	if v == commandV2 {
		c.IdemKey = d.Bytes()
		c.At, c.Horizon = int64(d.Uint()), int64(d.Uint())
		if c.At < 0 || c.Horizon < 0 {
			d.Fail("dedup time")
		}
	}
	return c, d.Done()
}

// SetCondition makes c's condition expect, of a key in range rangeID.
func (c *Command) SetCondition(rangeID uint64, expect catalog.Expect) error {
	switch {
	case expect.Absent:
		c.Cond = CondAbsent
	case expect.Exists:
		c.Cond = CondExists
	case expect.Version != "":
		v, err := ParseVersion(rangeID, expect.Version)
		if err != nil {
			return err
		}
		c.Cond, c.ExpectVersion = CondVersion, v
	default:
		c.Cond, c.ExpectValue = CondValue, expect.Value
	}
	return nil
}

// Value is a stored value and the version (Raft log index or Paxos slot)
// that wrote it.
type Value struct {
	Version uint64
	Data    []byte
}

func (v Value) Encode() []byte {
	e := codec.Enc{Buf: make([]byte, 0, len(v.Data)+10)}
	e.Byte(consensus.CodecV1)
	e.Uint(v.Version)
	e.Buf = append(e.Buf, v.Data...)
	return e.Buf
}

func DecodeValue(b []byte) (Value, error) {
	d := codec.Dec{Buf: b}
	if d.Byte() != consensus.CodecV1 {
		d.Fail("value version")
	}
	v := Value{Version: d.Uint()}
	if d.Err != nil {
		return Value{}, d.Err
	}
	v.Data = d.Buf
	return v, nil
}

// ErrConditionFailed marks a compare-and-swap whose condition did not
// hold; nothing was written. The API maps it to FailedPrecondition (412).
var ErrConditionFailed = errors.New("condition failed")

// Result is what applying a command tells the client that proposed it.
type Result struct {
	Version uint64
	Existed bool
	// ID is what a catalog command assigned (a node's ID).
	ID  uint64
	Err error
}

// Apply evaluates c against the key's current value (found says whether
// it exists) at log index index, and returns the new value to store (nil
// to delete, same pointer as cur to leave it) and the client's result.
func (c *Command) Apply(rangeID, index uint64, cur *Value) (next *Value, res Result) {
	res.Existed = cur != nil
	switch c.Op {
	case OpPut:
		return &Value{Version: index, Data: c.Value}, Result{Version: index, Existed: cur != nil}
	case OpDelete:
		return nil, Result{Version: index, Existed: cur != nil}
	}
	// opCAS
	ok := false
	switch c.Cond {
	case CondAbsent:
		ok = cur == nil
	case CondValue:
		ok = cur != nil && bytes.Equal(cur.Data, c.ExpectValue)
	case CondVersion:
		ok = cur != nil && cur.Version == c.ExpectVersion
	case CondExists:
		ok = cur != nil
	}
	if !ok {
		return cur, Result{Existed: cur != nil, Err: c.conditionError(rangeID, cur)}
	}
	if c.Del {
		return nil, Result{Version: index, Existed: true}
	}
	return &Value{Version: index, Data: c.Value}, Result{Version: index, Existed: cur != nil}
}

// conditionError says what the key held instead, so a client that lost
// the flash sale learns who has the phone.
func (c *Command) conditionError(rangeID uint64, cur *Value) error {
	var want string
	switch c.Cond {
	case CondAbsent:
		want = "to be absent"
	case CondValue:
		want = fmt.Sprintf("to hold %q", Abbreviate(c.ExpectValue))
	case CondVersion:
		want = "to be at version " + FormatVersion(rangeID, c.ExpectVersion)
	case CondExists:
		want = "to exist"
	}
	if cur == nil {
		return fmt.Errorf("%w: expected key %q %s, but it does not exist", ErrConditionFailed, Abbreviate(c.Key), want)
	}
	return fmt.Errorf("%w: expected key %q %s, but it holds %q at version %s",
		ErrConditionFailed, Abbreviate(c.Key), want, Abbreviate(cur.Data), FormatVersion(rangeID, cur.Version))
}

// Abbreviate keeps error messages short when keys and values are large.
func Abbreviate(b []byte) string {
	const max = 64
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..."
}

// Versions are shown to clients as "RANGE.INDEX": the range and the log
// index (Raft) or slot (Multi-Paxos) of the write. Opaque to clients, but
// readable to operators.
func FormatVersion(rangeID, index uint64) string {
	return strconv.FormatUint(rangeID, 10) + "." + strconv.FormatUint(index, 10)
}

// ParseVersion reads a version of range rangeID.
func ParseVersion(rangeID uint64, s string) (uint64, error) {
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
