package replsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/quorumkv/quorumkv/internal/sim"
)

// Command is a client write as it travels through the log. Seq numbers a
// client's operations; the state machine applies each (Client, Seq) at most
// once, however often a retried request was proposed.
type Command struct {
	Client uint64
	Seq    uint64
	In     sim.KVInput
}

// EncodeCommand encodes c for the log.
func EncodeCommand(c Command) []byte {
	b := make([]byte, 0, 32+len(c.In.Key)+len(c.In.Value)+len(c.In.Expect))
	b = binary.AppendUvarint(b, c.Client)
	b = binary.AppendUvarint(b, c.Seq)
	b = append(b, byte(c.In.Op))
	if c.In.ExpectAbsent {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, s := range []string{c.In.Key, c.In.Value, c.In.Expect} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errCorrupt = errors.New("replsim: corrupt encoding")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// DecodeCommand decodes what EncodeCommand wrote.
func DecodeCommand(b []byte) (Command, error) {
	r := reader{b: b}
	var c Command
	c.Client, c.Seq = r.uvarint(), r.uvarint()
	c.In.Op = sim.OpKind(r.byte())
	c.In.ExpectAbsent = r.byte() == 1
	c.In.Key, c.In.Value, c.In.Expect = r.string(), r.string(), r.string()
	if r.err != nil || len(r.b) != 0 {
		return Command{}, fmt.Errorf("%w: command", errCorrupt)
	}
	return c, nil
}

// session is what the state machine remembers of a client: its last
// applied command and that command's result, so a retry of it is answered
// without applying it twice.
type session struct {
	Seq   uint64
	Index uint64 // where it was applied
	Out   sim.KVOutput
}

// KV is the replicated state machine: a map of registers with get, put,
// delete and compare-and-set, evaluated when a command is applied, in log
// order. Hash is a running hash of every slot applied, so two nodes at the
// same index can be compared in O(1), snapshots included.
type KV struct {
	Applied  uint64
	Hash     uint64
	Data     map[string]string
	Sessions map[uint64]session
}

// NewKV returns the empty state machine.
func NewKV() *KV {
	return &KV{Data: map[string]string{}, Sessions: map[uint64]session{}}
}

// Applied is what applying one slot did, for the node to answer clients.
type Applied struct {
	Cmd   Command
	IsCmd bool
	Out   sim.KVOutput
	Index uint64 // where the command took effect (earlier, for a retry)
}

// Apply applies slot e, which must be the next one.
func (kv *KV) Apply(e Entry) (Applied, error) {
	if e.Index != kv.Applied+1 {
		return Applied{}, fmt.Errorf("replsim: applying slot %d after %d", e.Index, kv.Applied)
	}
	kv.Applied = e.Index
	h := fnv.New64a()
	var buf [17]byte
	binary.LittleEndian.PutUint64(buf[:8], kv.Hash)
	binary.LittleEndian.PutUint64(buf[8:16], e.Index)
	buf[16] = byte(e.Kind)
	h.Write(buf[:])
	h.Write(e.Data)
	kv.Hash = h.Sum64()
	if e.Kind != EntryCommand {
		return Applied{}, nil
	}
	c, err := DecodeCommand(e.Data)
	if err != nil {
		return Applied{}, fmt.Errorf("slot %d: %w", e.Index, err)
	}
	a := Applied{Cmd: c, IsCmd: true, Index: e.Index}
	if s, ok := kv.Sessions[c.Client]; ok && s.Seq >= c.Seq {
		if s.Seq == c.Seq {
			a.Out, a.Index = s.Out, s.Index
			return a, nil
		}
		// An older operation, given up on by its client: no effect.
		a.IsCmd = false
		return a, nil
	}
	a.Out = kv.exec(c.In)
	kv.Sessions[c.Client] = session{Seq: c.Seq, Index: e.Index, Out: a.Out}
	return a, nil
}

func (kv *KV) exec(in sim.KVInput) sim.KVOutput {
	cur, present := kv.Data[in.Key]
	switch in.Op {
	case sim.OpGet:
		return kv.Get(in.Key)
	case sim.OpPut:
		kv.Data[in.Key] = in.Value
	case sim.OpDelete:
		delete(kv.Data, in.Key)
	case sim.OpCAS:
		if (in.ExpectAbsent && !present) || (!in.ExpectAbsent && present && cur == in.Expect) {
			kv.Data[in.Key] = in.Value
			return sim.KVOutput{Swapped: true}
		}
	}
	return sim.KVOutput{}
}

// Get reads key from the applied state.
func (kv *KV) Get(key string) sim.KVOutput {
	v, ok := kv.Data[key]
	return sim.KVOutput{Value: v, Found: ok}
}

// Snapshot encodes the state machine.
func (kv *KV) Snapshot() []byte {
	b := binary.AppendUvarint(nil, kv.Applied)
	b = binary.LittleEndian.AppendUint64(b, kv.Hash)
	b = binary.AppendUvarint(b, uint64(len(kv.Data)))
	for _, k := range slices.Sorted(maps.Keys(kv.Data)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(kv.Data[k])))
		b = append(b, kv.Data[k]...)
	}
	b = binary.AppendUvarint(b, uint64(len(kv.Sessions)))
	for _, c := range slices.Sorted(maps.Keys(kv.Sessions)) {
		s := kv.Sessions[c]
		b = binary.AppendUvarint(b, c)
		b = binary.AppendUvarint(b, s.Seq)
		b = binary.AppendUvarint(b, s.Index)
		b = binary.AppendUvarint(b, uint64(len(s.Out.Value)))
		b = append(b, s.Out.Value...)
		var flags byte
		if s.Out.Found {
			flags |= 1
		}
		if s.Out.Swapped {
			flags |= 2
		}
		b = append(b, flags)
	}
	return b
}

// LoadKV decodes a snapshot taken at index (empty data: the empty state
// machine at index, as a core bootstraps).
func LoadKV(index uint64, data []byte) (*KV, error) {
	kv := NewKV()
	if len(data) == 0 {
		kv.Applied = index
		return kv, nil
	}
	r := reader{b: data}
	kv.Applied = r.uvarint()
	if len(r.b) < 8 {
		return nil, errCorrupt
	}
	kv.Hash = binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		k := r.string()
		kv.Data[k] = r.string()
	}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		c := r.uvarint()
		s := session{Seq: r.uvarint(), Index: r.uvarint()}
		s.Out.Value = r.string()
		flags := r.byte()
		s.Out.Found, s.Out.Swapped = flags&1 != 0, flags&2 != 0
		kv.Sessions[c] = s
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: snapshot", errCorrupt)
	}
	if kv.Applied != index {
		return nil, fmt.Errorf("replsim: snapshot of slot %d labelled %d", kv.Applied, index)
	}
	return kv, nil
}
